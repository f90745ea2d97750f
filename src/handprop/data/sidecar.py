"""The names beside a converted ``.npy`` file: ``data.npy.json``, written by ``handprop convert``.

A ``.npy`` file holds numbers only. Its sidecar says what the columns are called, which
are the targets by default, and, for a target that held text labels, the labels its
codes stand for (code k is ``classes[k]``), so that training on ``data.npy`` names
things as training on the CSV did. A sidecar is checked like any input: a malformed
one is a DataError naming the field.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handprop.data.dataset import DataError

FORMAT = "handprop.columns/1"
#: Larger sidecars are refused before they are read (a million long column names fit).
MAX_BYTES = 2**26


@dataclass(frozen=True)
class Columns:
    """Every column's name in order; the default targets; text labels by target name."""

    names: tuple[str, ...]
    targets: tuple[str, ...]
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        data = {
            "format": FORMAT,
            "names": list(self.names),
            "targets": list(self.targets),
            "classes": {name: list(labels) for name, labels in self.classes.items()},
        }
        return json.dumps(data, ensure_ascii=False).encode() + b"\n"


def sidecar_path(path: str | Path) -> Path:
    """Where the column names of the .npy file ``path`` are: ``path`` + ``.json``."""
    return Path(str(path) + ".json")


def read_columns(path: str, width: int) -> Columns | None:
    """The sidecar of the .npy file ``path`` with ``width`` columns, or None if it has none."""
    where = sidecar_path(path)
    try:
        with open(where, "rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise DataError(f"cannot read {where}: {error.strerror or error}") from None
    if len(raw) > MAX_BYTES:
        raise DataError(f"{where} is larger than {MAX_BYTES} bytes; a sidecar lists names")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise DataError(f"{where} is not JSON; write it again with handprop convert") from None
    return _columns(str(where), data, width)


def _columns(where: str, data: Any, width: int) -> Columns:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f'{where}: expected a JSON object with "format": "{FORMAT}"')
    names: Any = data.get("names")
    targets: Any = data.get("targets")
    if not _strings(names) or len(names) != width or len(set(names)) != width:
        raise DataError(f'{where}: "names" must be {width} distinct strings, one per column')
    if not _strings(targets) or not set(targets) <= set(names) or not targets:
        raise DataError(f'{where}: "targets" must list one or more of the column names')
    classes = data.get("classes", {})
    if not isinstance(classes, dict) or not all(
        name in names and _strings(labels) for name, labels in classes.items()
    ):
        raise DataError(f'{where}: "classes" must map column names to lists of labels')
    return Columns(tuple(names), tuple(targets), {k: tuple(v) for k, v in classes.items()})


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
