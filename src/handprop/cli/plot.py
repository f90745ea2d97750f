"""Loss curves with matplotlib (an optional extra, imported only when a plot is asked for)."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def check_plot(option: str, path: str | Path) -> None:
    """Before any work: matplotlib is installed and can write files with ``path``'s extension."""
    use_matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = FigureCanvasBase.get_supported_filetypes()
    extension = Path(path).suffix.lower().lstrip(".")
    if extension not in kinds:
        shown = extension or "files without an extension"
        raise ValueError(
            f"{option} {path}: matplotlib cannot write {shown!r}; "
            f"end the name in one of .{', .'.join(sorted(kinds))}"
        )


def use_matplotlib() -> None:
    """matplotlib with the Agg backend, or a ValueError that says how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ValueError(
            "--plot needs matplotlib: pip install 'handprop[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")


def plot_losses(
    path: Path, curves: Mapping[str, Sequence[float]], *, xlabel: str, ylabel: str, title: str,
    marked: tuple[int, str] | None = None,
) -> None:  # fmt: skip
    """Draw each curve against 1..n (or 0..n-1 for steps) and save the figure to ``path``;
    ``marked``: (x, label) of a vertical line, such as the epoch early stopping kept.

    The y axis is logarithmic when the values are positive and span more than two decades.
    """
    use_matplotlib()
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    start = 0 if xlabel == "step" else 1
    values = [v for curve in curves.values() for v in curve]
    for label, curve in curves.items():
        axes.plot(range(start, start + len(curve)), curve, label=label, linewidth=1.6)
    if values and min(values) > 0 and max(values) / min(values) > 100:
        axes.set_yscale("log")
    if marked is not None:
        axes.axvline(marked[0], color="0.4", linestyle="--", linewidth=1, label=marked[1])
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, which="major", alpha=0.3)
    if len(curves) > 1 or marked is not None:
        axes.legend()
    save_figure(figure, path)


def save_figure(figure: Any, path: Path) -> None:
    """Lay out, write and close ``figure``; an unwritable path is one ValueError."""
    from matplotlib import pyplot as plt

    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as error:
        raise ValueError(f"cannot write the plot {path}: {error}") from None
    finally:
        plt.close(figure)
