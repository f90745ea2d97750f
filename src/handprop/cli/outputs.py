"""Checks on the paths a command writes to, made before anything is read or trained.

A command never writes over one of its inputs, nor two outputs over each other: paths are
compared after resolving symlinks, and by device and inode where the file exists (hard links).
"""

import contextlib
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from handprop.cli.plot import check_plot

#: The extensions of a data file; other --data values name bundled data sets.
DATA_FILE_EXTENSIONS = (".csv", ".npy", ".npz")


def check_output(option: str, name: str | Path) -> None:
    """Refuse an output path whose folder does not exist or cannot be written, or a folder.

    Commands call this before any work, so that a typo costs no training run. Whether
    the folder takes a new file is tried (a file created and removed there), which also
    finds read-only and immutable folders.
    """
    path = Path(name)
    if path.is_dir():
        raise ValueError(f"{option} {name} is a folder; give a file name in it")
    if not path.parent.is_dir():
        raise ValueError(f"{option} {name}: the folder {path.parent} does not exist")
    import tempfile  # here: warmup, gradcheck and explain never check an output

    try:
        descriptor, probe = tempfile.mkstemp(prefix=".handprop-probe-", dir=path.parent)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(
            f"{option} {name}: cannot write in the folder {path.parent} ({reason})"
        ) from None
    os.close(descriptor)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def data_file(source: str | None) -> str | None:
    """``--data`` as a path when it names a file (not a bundled data set), else None."""
    if source is None or os.path.splitext(source)[1].lower() not in DATA_FILE_EXTENSIONS:
        return None
    return source


def check_distinct(
    outputs: Mapping[str, str | Path | None],
    inputs: Mapping[str, str | Path | None],
    allowed: Collection[tuple[str, str]] = (),
) -> None:
    """Refuse an output (option -> path) that is an input or another output.

    One line names both options. None stands for an option not given; ``allowed`` lists
    the (output, input) pairs that may be one file.
    """
    given_outputs = [(option, path) for option, path in outputs.items() if path is not None]
    given_inputs = [(option, path) for option, path in inputs.items() if path is not None]
    for position, (option, path) in enumerate(given_outputs):
        for other, other_path in given_inputs + given_outputs[:position]:
            if (option, other) not in allowed and same_file(path, other_path):
                raise ValueError(
                    f"{option} {path} is the same file as {other} {other_path}; handprop "
                    f"would overwrite it: give {option} another path"
                )


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` are one file: one resolved path, or one device and inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def output_paths(settings: Any) -> dict[str, str | Path | None]:
    """What ``handprop train`` writes, by option: its outputs and the files beside them.

    ``settings``: a TrainConfig, or the command line's Namespace (before a resume's
    config is read).
    """
    out, checkpoint = settings.out, settings.checkpoint
    return {
        "--out": out,
        "--checkpoint": checkpoint,
        "--log": settings.log,
        "--plot": settings.plot,
        "--out's OUT.diverged": None if out is None else diverged_path(out),
        "--checkpoint's CHECKPOINT.best": None if checkpoint is None else best_path(checkpoint),
    }


def check_outputs(
    outputs: dict[str, str | Path | None], data: str | None, resume: Path | None
) -> None:
    """Refuse, before any work, an output that cannot be written or would destroy a file.

    Each output's folder must exist and take files; no output may be the --data file,
    the --resume checkpoint or another output (a run may go on writing the checkpoint
    it resumed from: --checkpoint equal to --resume, and its .best, are allowed).
    """
    for option in ("--out", "--checkpoint", "--log", "--plot"):
        if outputs[option] is not None:
            check_output(option, outputs[option])  # type: ignore[arg-type]
    for option, sidecar in _SIDECARS:  # written beside them: OUT.diverged, CHECKPOINT.best
        path = outputs[sidecar]
        if path is not None and Path(path).is_dir():
            raise ValueError(
                f"{option} {outputs[option]}: {path} is a folder, and handprop writes a file there"
            )
    if outputs["--plot"] is not None:
        check_plot("--plot", outputs["--plot"])
    best = None if resume is None else best_path(resume)
    check_distinct(
        outputs,
        {"--data": data_file(data), "--resume": resume, "--resume's CHECKPOINT.best": best},
        allowed=_CONTINUED,
    )


_SIDECARS = (("--out", "--out's OUT.diverged"), ("--checkpoint", "--checkpoint's CHECKPOINT.best"))
#: A run may go on writing the checkpoint it resumed from (and its best weights).
_CONTINUED = (
    ("--checkpoint", "--resume"),
    ("--checkpoint's CHECKPOINT.best", "--resume's CHECKPOINT.best"),
)


def diverged_path(out: str | Path) -> Path:
    """Where a diverged run leaves its last finite weights: OUT.diverged."""
    path = Path(out)
    return path.with_name(path.name + ".diverged")


def best_path(checkpoint: str | Path) -> Path:
    """Where early stopping's best weights go beside a checkpoint: CHECKPOINT.best."""
    path = Path(checkpoint)
    return path.with_name(path.name + ".best")
