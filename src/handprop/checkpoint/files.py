"""Safetensors bytes on disk: atomic writes, and reads that check the header before decoding."""

import contextlib
import json
import os
import re
import socket
import stat
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from handprop._text import one_line
from handprop._types import Array
from handprop.checkpoint.errors import ModelFileError

PathLike: TypeAlias = str | os.PathLike[str]

#: Larger safetensors headers are refused before they are read.
MAX_HEADER_BYTES = 100_000_000

_DTYPES: dict[str, np.dtype[Any]] = {"F32": np.dtype(np.float32), "F64": np.dtype(np.float64)}
#: Integer tensors a model may hold besides its floats (BatchNorm's num_batches_tracked).
_INTEGER_DTYPES = {"I64": np.dtype(np.int64)}
#: What a file may start with instead of safetensors, and what to do about it.
_LOOKALIKES = {
    b"\x80": "a pickle; handprop never unpickles, which can run code: save with safetensors",
    b"PK\x03\x04": "a torch.save archive; save with safetensors.torch.save_file(state_dict, path)",
}


def serialize(tensors: dict[str, Array], metadata: dict[str, str]) -> bytes:
    import safetensors.numpy

    return safetensors.numpy.save(tensors, metadata=metadata)


#: Which machine wrote a temporary file: a process id means something only there.
_HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"


def write_atomically(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, rename it onto ``path``.

    ``data``: the bytes, or an iterable of chunks written as they come (memory then grows
    with a chunk, not the file); an exception raised while producing them is re-raised.
    Whatever fails, the file already at ``path`` stays as it was; an OSError
    becomes a ModelFileError (a ValueError) that names the path and the reason.
    The temporary's name, ``.NAME.PID-HOST.RANDOM.tmp``, says who writes it: those
    of ``path`` whose process has died on this host (a SIGKILL mid-write) go first.
    """
    _remove_stale_temporaries(path)
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=_temporary_prefix(path, os.getpid()), suffix=".tmp", dir=path.parent
        )
    except OSError as error:
        raise ModelFileError(f"cannot write {path}: {_reason(error)}") from error
    try:
        try:
            for chunk in [data] if isinstance(data, bytes) else data:
                _write_all(descriptor, chunk)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.chmod(temporary, _mode(path))
        os.replace(temporary, path)
    except BaseException as error:  # even KeyboardInterrupt: leave no temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise ModelFileError(f"cannot write {path}: {_reason(error)}") from error
        raise
    _fsync_directory(path.parent)


def _temporary_prefix(path: Path, pid: int) -> str:
    return f".{path.name}.{pid}-{_HOST}."


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporary files of ``path`` left by processes of this host that have died.

    Never a live writer's (its process runs), another host's, or any other file.
    """
    if os.name != "posix":  # elsewhere os.kill(pid, 0) does not merely probe
        return
    stale = re.compile(re.escape(f".{path.name}.") + r"(\d+)-" + _HOST + r"\.[^.]+\.tmp")
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            match = stale.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False) and not _running(int(match[1])):
                with contextlib.suppress(OSError):  # another writer removed it first
                    os.unlink(entry.path)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists on this host; True when unsure."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: it runs, as another user
        return True
    return True


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def _mode(path: Path) -> int:
    """The permissions of the file being replaced, or rw-r--r-- for a new one."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o644


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable. Best effort: some platforms cannot open a folder."""
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _reason(error: OSError) -> str:
    if error.errno is not None and error.strerror:
        return f"[Errno {error.errno}] {error.strerror}"
    return one_line(str(error) or type(error).__name__)


def read_file(path: PathLike) -> tuple[dict[str, Any], bytes]:
    """The parsed header and the whole content of ``path``, after checking the header is sane."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            prefix = file.read(8)
            header = _parse_header(path, file.read(_header_length(path, prefix, size)))
            file.seek(0)
            return header, file.read()
    except OSError as error:
        raise ModelFileError(f"cannot read {path}: {_reason(error)}") from error


def _header_length(path: PathLike, prefix: bytes, size: int) -> int:
    hint = _lookalike(prefix)
    if len(prefix) < 8:
        raise ModelFileError(
            f"{path} is not a safetensors file: {size} bytes is too short for the "
            f"8-byte header length{hint}"
        )
    length = int.from_bytes(prefix, "little")
    if length > MAX_HEADER_BYTES:
        problem = (
            f"its header length reads {length} bytes, more than the {MAX_HEADER_BYTES} accepted"
        )
    elif length > size - 8:
        problem = f"its header length reads {length} bytes, but only {size - 8} follow"
    else:
        return length
    raise ModelFileError(f"{path} is not a safetensors file, or is truncated: {problem}{hint}")


def _lookalike(prefix: bytes) -> str:
    """What a file that starts with ``prefix`` seems to be instead of safetensors, if known."""
    for magic, what in _LOOKALIKES.items():
        if prefix.startswith(magic):
            return f" (it looks like {what})"
    return ""


def _parse_header(path: PathLike, raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError
        raise ModelFileError(
            f"{path} is not a safetensors file: its header is not JSON ({one_line(str(error))})"
        ) from None
    if not isinstance(header, dict):
        raise ModelFileError(
            f"{path} is not a safetensors file: its header is a JSON {type(header).__name__}, "
            "expected an object"
        )
    return header


def check_header(path: PathLike, header: dict[str, Any], data: bytes) -> str:
    """Check the tensors' dtypes and extent before decoding them; return the float dtype's name.

    The floating tensors share one dtype; int64 ones (counters) may sit beside them.
    """
    dtypes: dict[str, str] = {}  # dtype -> the first tensor that has it
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise ModelFileError(
                f"{path}: header entry {name!r} is not a tensor description (an object with "
                "dtype, shape and data_offsets)"
            )
        found = entry.get("dtype")
        if not isinstance(found, str) or found not in {**_DTYPES, **_INTEGER_DTYPES}:
            raise ModelFileError(
                f"{path}: tensor {name!r} has dtype {found!r:.40}; handprop reads F32 "
                "(float32) and F64 (float64) tensors, and I64 (int64) counters"
            )
        if found in _DTYPES:
            dtypes.setdefault(found, name)
        offsets = entry.get("data_offsets")
        if isinstance(offsets, list) and len(offsets) == 2 and isinstance(offsets[1], int):
            end = max(end, offsets[1])
    if len(dtypes) > 1:
        mixed = ", ".join(f"{name!r} is {dtype}" for dtype, name in dtypes.items())
        raise ModelFileError(f"{path} mixes dtypes ({mixed}); handprop models use one dtype")
    available = len(data) - 8 - int.from_bytes(data[:8], "little")
    if end > available:
        raise ModelFileError(
            f"{path} is truncated: its tensors need {end} bytes after the header, "
            f"{available} follow"
        )
    return _DTYPES[next(iter(dtypes))].name if dtypes else "float64"


def deserialize(path: PathLike, data: bytes) -> dict[str, Array]:
    import safetensors.numpy

    try:
        return safetensors.numpy.load(data)
    except Exception as error:  # SafetensorError, or whatever a malformed header provokes
        reason = one_line(str(error))
        raise ModelFileError(f"{path} is not a valid safetensors file: {reason}") from error
