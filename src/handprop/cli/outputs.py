"""Checks on the paths a command writes to, made before any work."""

from pathlib import Path


def check_output(option: str, name: str | Path) -> None:
    """Refuse an output path whose folder does not exist, or that is a folder itself.

    Commands call this before any work, so that a typo costs no training run.
    """
    path = Path(name)
    if path.is_dir():
        raise ValueError(f"{option} {name} is a folder; give a file name in it")
    if not path.parent.is_dir():
        raise ValueError(f"{option} {name}: the folder {path.parent} does not exist")
