"""Reading ``.npy`` arrays, alone or as ``.npz`` members, without trusting declared sizes.

numpy's reader allocates the whole array that a header declares before it reads
any of it: 100 bytes that claim shape (10**10, 10) cost 800 GB, or a MemoryError.
And an ``.npz`` member may decompress to a thousand times its size (a zip bomb),
or, read whole when it is not an array, to anything at all. So the header's
shape times the item size is checked against the bytes that follow it, and a
member's declared size against what it was compressed into, before reading.
"""

import math
import mmap
import os
import sys
import warnings
import weakref
import zipfile
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format

from handprop.data.dataset import DataError

#: A compressed .npz member may always decompress to this many bytes (sparse one-hot data
#: compresses ~500:1 and is real data)...
SMALL_MEMBER_BYTES = 2**30
#: ...and beyond, to at most this many times its compressed size: what a small hostile
#: file can make handprop allocate is bounded. np.savez_compressed of dense data stays
#: below (whole numbers ~15, one-hot rows over 100 classes ~250); np.zeros reach ~1000.
MAX_EXPANSION = 256

_MAGIC = npy_format.MAGIC_PREFIX
_CHUNK_BYTES = 2**24  # read a compressed member 16 MiB at a time
_MAX_HEADER_BYTES = 10_000  # numpy's own limit (max_header_size)
_HEADER_READERS = {
    (1, 0): npy_format.read_array_header_1_0,
    (2, 0): npy_format.read_array_header_2_0,
}
#: The compression methods np.savez (stored) and np.savez_compressed (deflated) write.
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_PICKLE = (
    "holds Python objects (an object array, stored as pickle data), which handprop did not "
    "unpickle: unpickling can run any code; save numeric arrays instead"
)


def read_npy(path: str) -> Any:
    """The array in the .npy file at ``path``, read once its header fits the file's size."""
    with open(path, "rb") as file:
        _check_header(file, os.fstat(file.fileno()).st_size, path)
        file.seek(0)
        return _read_array(file)


@dataclass(frozen=True, eq=False)
class MappedNpy:
    """A .npy file kept open: its array read-only over a memory map, and where the data start.

    Nothing is read until the array is. ``memory.madvise(MADV_DONTNEED)`` drops the
    pages this process touched (not the file); ``descriptor`` (closed with this object)
    serves reads that bypass the map.
    """

    array: Any
    memory: mmap.mmap
    descriptor: int
    offset: int

    def __post_init__(self) -> None:
        weakref.finalize(self, os.close, self.descriptor)


def map_npy(path: str) -> MappedNpy:
    """The .npy file at ``path`` over a memory map, once its header is checked as ``read_npy``'s."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        shape, fortran_order, dtype = _check_header(file, size, path)
        offset = file.tell()
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        descriptor = os.dup(file.fileno())
    array = np.frombuffer(mapped, dtype=dtype, count=math.prod(shape), offset=offset)
    array = array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)
    return MappedNpy(array, mapped, descriptor, offset)


def read_npz(path: str, wanted: tuple[str, ...]) -> tuple[list[str], dict[str, Any]]:
    """(the names of every member, the arrays among ``wanted`` that the .npz file has).

    A name ``x`` is the member ``x.npy``, or else ``x``, as np.load has it.
    """
    with open(path, "rb") as file, zipfile.ZipFile(file) as archive:
        size = os.fstat(file.fileno()).st_size
        members = {info.filename: info for info in archive.infolist()}
        arrays = {}
        for name in wanted:
            info = members.get(f"{name}.npy") or members.get(name)
            if info is not None:
                arrays[name] = _read_member(archive, info, size, f"{path}: {name}")
    return [name.removesuffix(".npy") for name in members], arrays


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, size: int, where: str) -> Any:
    if info.flag_bits & 0x1:
        raise DataError(f"{where} is encrypted; save the data with np.savez(path, x=x, y=y)")
    if info.compress_type not in _METHODS:
        raise DataError(
            f"{where} is compressed with zip method {info.compress_type}; handprop reads the "
            "stored and deflated members of np.savez and np.savez_compressed"
        )
    if info.compress_size > size:
        raise DataError(
            f"{where} is truncated: it declares {info.compress_size} compressed bytes, but the "
            f"whole file has {size}"
        )
    if info.file_size > max(SMALL_MEMBER_BYTES, MAX_EXPANSION * info.compress_size):
        raise DataError(
            f"{where} declares {info.file_size} bytes compressed into {info.compress_size}, "
            f"more than {MAX_EXPANSION} times as many, which data does not reach but a zip bomb "
            "does; if it is your data, save it uncompressed with np.savez"
        )
    with archive.open(info) as member:
        if member.read(len(_MAGIC)) != _MAGIC:
            raise DataError(
                f"{where} is not a .npy array; x and y must be arrays saved with "
                "np.savez(path, x=x, y=y)"
            )
    with archive.open(info) as member:
        shape, fortran_order, dtype = _check_header(member, info.file_size, where)
        return _read_data(member, shape, fortran_order, dtype, where)


def _read_data(
    stream: IO[bytes], shape: tuple[int, ...], fortran_order: bool, dtype: Any, where: str
) -> Any:
    """The array that follows a checked header, read in chunks as the data arrive.

    numpy's reader allocates the whole declared array first; a member whose zip entry
    lies about its size would make it allocate up to the limits above for nothing.
    Here memory grows only with the bytes that decompression actually yields.
    """
    count = math.prod(shape)
    needed = count * dtype.itemsize
    data = bytearray()
    while len(data) < needed:
        chunk = stream.read(min(_CHUNK_BYTES, needed - len(data)))
        if not chunk:
            raise DataError(
                f"{where} is not a valid .npy file: truncated, its header declares {needed} "
                f"bytes of data but {len(data)} follow it"
            )
        data += chunk
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)


def _check_header(stream: IO[bytes], size: int, where: str) -> tuple[tuple[int, ...], bool, Any]:
    """(shape, fortran_order, dtype) of the header at the start of ``stream``.

    Refuses a header whose array needs more bytes than the ``size`` bytes of ``stream``.
    """
    start = stream.tell()
    version = npy_format.read_magic(stream)
    if version not in _HEADER_READERS:  # 3.0 only for structured arrays' non-Latin-1 names
        raise DataError(
            f"{where} is .npy format version {version[0]}.{version[1]}; handprop reads "
            "versions 1.0 and 2.0, which np.save writes for numeric arrays"
        )
    _check_header_length(stream, size, where, 2 if version == (1, 0) else 4)
    stream.seek(start + len(_MAGIC) + 2)
    with warnings.catch_warnings():  # numpy warns when it reads a header written by Python 2
        warnings.simplefilter("ignore", UserWarning)
        shape, fortran_order, dtype = _HEADER_READERS[version](stream)
    if dtype.hasobject:
        raise DataError(f"{where} {_PICKLE}")
    if dtype.itemsize == 0:  # numpy then copies and converts 10**12 elements of no bytes
        raise DataError(
            f"{where} is not a valid .npy file: its header declares dtype {_short(dtype)}, of "
            "0 bytes an element, which no array of numbers has"
        )
    if any(length < 0 or length > sys.maxsize for length in shape):
        raise DataError(
            f"{where} is not a valid .npy file: its header declares shape {_short(shape)}"
        )
    needed, available = math.prod(shape) * dtype.itemsize, size - stream.tell()
    if needed > available:
        raise DataError(
            f"{where} is not a valid .npy file: truncated or corrupt, its header declares "
            f"shape {_short(shape)} of {dtype}, {needed} bytes, but {available} follow it"
        )
    return shape, fortran_order, dtype


def _check_header_length(stream: IO[bytes], size: int, where: str, width: int) -> None:
    """numpy reads (and allocates) all the header length claims before it looks."""
    length = int.from_bytes(stream.read(width), "little")
    follow = size - stream.tell()
    if length > follow:
        problem = f"only {follow} follow"
    elif length > _MAX_HEADER_BYTES:
        problem = f"numpy reads at most {_MAX_HEADER_BYTES}"
    else:
        return
    raise DataError(
        f"{where} is not a valid .npy file: its header length reads {length} bytes, but {problem}"
    )


def _read_array(stream: IO[bytes]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return npy_format.read_array(stream, allow_pickle=False)


def _short(value: object, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
