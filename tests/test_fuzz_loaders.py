"""Fuzzed data files: every loader either loads what it promises or raises one DataError.

Hypothesis mutates valid .csv, .npy and .npz files (byte flips, truncations,
inserted and deleted bytes, edited .npy headers and zip size fields, random
cells) and writes random ones, then reads each through ``load_dataset`` (both
tasks, with and without a target) and ``load_features``, which is what
``handprop train``, ``evaluate`` and ``predict`` call. The only outcomes
allowed: a load that keeps the loader's promises (finite float64 features of
consistent shapes), or a DataError whose message is one line naming the file.
Anything else fails: another exception, more than ``MEMORY_LIMIT`` bytes
allocated (numpy's allocations are traced), or more than ``TIME_LIMIT`` seconds.

Every test is derandomized. ``HANDPROP_FUZZ_EXAMPLES=100000 pytest
tests/test_fuzz_loaders.py`` runs that many examples per test instead of the
few hundred that keep CI fast.
"""

import contextlib
import io
import os
import re
import signal
import struct
import tempfile
import tracemalloc
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format

from handprop.data import DataError, Dataset, load_dataset, load_features

MEMORY_LIMIT = 64 * 2**20  # bytes a fuzzed file (at most a few kB) may make a loader allocate
TIME_LIMIT = 10  # seconds one file's loads may take: generous, a hang is what it catches
MESSAGE_LIMIT = 600  # characters: one clear line, not a dump of the file


def fuzz(examples: int) -> settings:
    """Derandomized settings; HANDPROP_FUZZ_EXAMPLES overrides the number of examples."""
    return settings(
        max_examples=int(os.environ.get("HANDPROP_FUZZ_EXAMPLES", examples)),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


# ---- the outcomes allowed -------------------------------------------------------------------


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise Hang(f"a load took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def bounded(memory: int, what: str = "the load") -> Iterator[None]:
    """Fail if the block allocates more than ``memory`` bytes at its peak (numpy's arrays
    included: tracemalloc sees them) or runs for more than TIME_LIMIT seconds."""
    tracing = tracemalloc.is_tracing()
    if tracing:
        tracemalloc.reset_peak()
    else:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    try:
        with time_limit(TIME_LIMIT):
            yield
    finally:
        peak = tracemalloc.get_traced_memory()[1] - before
        if not tracing:
            tracemalloc.stop()
    assert peak <= memory, f"{what} allocated {peak} bytes"


def check_refusal(error: DataError, path: str) -> None:
    message = str(error)
    assert path in message, message
    assert "\n" not in message and "\r" not in message, message
    assert len(message) <= MESSAGE_LIMIT, message[:MESSAGE_LIMIT]


def check_dataset(data: Dataset, task: str) -> None:
    """What load_dataset promises, beyond what Dataset checks itself."""
    n, d_in = data.x.shape
    assert n >= 1 and d_in >= 1
    assert np.isfinite(data.x).all()
    if task == "classification":
        assert data.classes is not None and len(data.classes) >= 1
        assert list(data.classes) == sorted(set(data.classes))
        assert data.y.min() >= 0 and data.y.max() < len(data.classes)
    else:
        assert data.classes is None and data.y.shape[1] >= 1
        assert np.isfinite(data.y).all()


def check_features(x: Any) -> None:
    assert isinstance(x, np.ndarray) and x.dtype == np.float64 and x.flags.c_contiguous
    assert x.ndim == 2 and x.shape[0] >= 1 and x.shape[1] >= 1
    assert np.isfinite(x).all()


def loads(path: str, targets: tuple[str, ...]) -> Iterator[tuple[str, Callable[[], None]]]:
    """(what, a load and the check of its result) for every way the commands read ``path``."""
    for task in ("regression", "classification"):
        for target in (None, *targets):

            def load(task: str = task, target: str | None = target) -> None:
                check_dataset(load_dataset(path, target=target, task=task), task)

            yield f"load_dataset(task={task!r}, target={target!r})", load
    yield "load_features()", lambda: check_features(load_features(path))


def check_loaders(path: Path, content: bytes, targets: tuple[str, ...] = ()) -> None:
    """Write ``content`` to ``path``; each load succeeds as promised or raises one DataError."""
    path.write_bytes(content)
    for what, load in loads(str(path), targets):
        with bounded(MEMORY_LIMIT, f"{what} of {len(content)} bytes"):
            try:
                load()
            except DataError as error:
                check_refusal(error, str(path))
            except Exception as error:
                raise AssertionError(f"{what} of {content[:300]!r} raised {error!r}") from error
    check_agreement(path)


def check_agreement(path: Path) -> None:
    """Where training data loads, prediction reads the same features from the file."""
    try:
        data = load_dataset(str(path))
    except DataError:
        return
    if path.suffix == ".csv":
        x = load_features(str(path), data.feature_names, encoding=data.encoding)
    else:  # a .npy file's last column is the default target
        x = load_features(str(path))[:, : -1 if path.suffix == ".npy" else None]
    np.testing.assert_array_equal(x, data.x)


# ---- mutations ------------------------------------------------------------------------------

POSITIONS = st.integers(0, 2**16)
EDITS = st.one_of(
    st.tuples(st.just("flip"), POSITIONS, st.integers(1, 255)),
    st.tuples(st.just("insert"), POSITIONS, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), POSITIONS, st.integers(1, 16)),
    st.tuples(st.just("overwrite"), POSITIONS, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), POSITIONS, st.just(b"")),
)


def mutate(content: bytes, edits: list[tuple[str, int, Any]]) -> bytes:
    """``content`` with each edit applied in turn, at its position modulo the length."""
    data = bytearray(content)
    for kind, position, value in edits:
        at = position % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= value
        elif kind == "insert":
            data[at:at] = value
        elif kind == "delete":
            del data[at : at + value]
        elif kind == "overwrite":
            data[at : at + len(value)] = value
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


# ---- valid files, drawn from a seed ---------------------------------------------------------

DTYPES = ["<f8", "<f4", ">f8", "<i8", "|i1", "|u1", "|b1", "<f2", "<c16", "<U3", "|S2"]


def random_array(seed: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    values = np.random.default_rng(seed).standard_normal(shape) * 3
    return values.round().astype(dtype) if dtype[1] in "iub" else values.astype(dtype)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@st.composite
def valid_npy(draw: st.DrawFn) -> bytes:
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 5)))
    array = random_array(draw(st.integers(0, 99)), shape, draw(st.sampled_from(DTYPES[:8])))
    if draw(st.booleans()):
        array = np.asfortranarray(array)
    return npy_bytes(array)


HEADER_VALUES = st.one_of(
    st.tuples(st.integers(-2, 6), st.integers(-2, 6)),
    st.lists(st.integers(-(2**63), 2**64), max_size=3).map(tuple),
    st.sampled_from([(), (3,), (2, 3, 1), (10**9, 10), (2**62, 4), (2**31, 2**31), "x"]),
)


@st.composite
def edited_header_npy(draw: st.DrawFn) -> bytes:
    """A .npy file whose header's shape, dtype or order was edited, or is random text."""
    fields = {
        "descr": draw(st.sampled_from([*DTYPES, "O", "V8", "<M8[s]", "f8", "q", "zz"])),
        "fortran_order": draw(st.sampled_from([False, True, 0, "no"])),
        "shape": draw(HEADER_VALUES),
    }
    if draw(st.booleans()):
        del fields[draw(st.sampled_from(sorted(fields)))]
    text = repr(fields) if draw(st.integers(0, 9)) else draw(st.text(max_size=80))
    version = draw(st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x09\x00"]))
    length = struct.pack("<H" if version == b"\x01\x00" else "<I", len(text.encode()) + 1)
    payload = draw(st.sampled_from([b"", bytes(8), bytes(64), bytes(range(256))]))
    return b"\x93NUMPY" + version + length + text.encode() + b"\n" + payload


@st.composite
def valid_npz(draw: st.DrawFn) -> bytes:
    seed = draw(st.integers(0, 99))
    n, d = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    x = random_array(seed, (n, d), draw(st.sampled_from(DTYPES[:8])))
    y_shape = draw(st.sampled_from([(n,), (n, 1), (n, 2)]))
    y = random_array(seed + 1, y_shape, draw(st.sampled_from([*DTYPES[:8], "<U3"])))
    buffer = io.BytesIO()
    (np.savez_compressed if draw(st.booleans()) else np.savez)(buffer, x=x, y=y)
    return buffer.getvalue()


MEMBERS = st.sampled_from(["x.npy", "y.npy", "x", "y", "z.npy"])
METHODS = st.sampled_from(
    [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
)


@st.composite
def edited_npz(draw: st.DrawFn) -> bytes:
    """An archive of members drawn from valid, edited and random .npy bytes, any compression,
    then with size fields of its headers overwritten."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name": wanted here
        for _ in range(draw(st.integers(0, 3))):
            content = draw(st.one_of(valid_npy(), edited_header_npy(), st.binary(max_size=64)))
            archive.writestr(draw(MEMBERS), content, compress_type=draw(METHODS))
    data = bytearray(buffer.getvalue())
    for _ in range(draw(st.integers(0, 3))):
        signature = draw(st.sampled_from([b"PK\x01\x02", b"PK\x03\x04"]))
        starts = [i for i in range(len(data)) if data.startswith(signature, i)]
        if starts:  # sizes, compression method or flags of one header
            offset = draw(st.sampled_from([8, 10, 20, 24] if signature == b"PK\x01\x02" else
                                          [6, 8, 18, 22]))  # fmt: skip
            value = draw(st.sampled_from([0, 1, 2**16 - 1, 2**31, 2**32 - 1]))
            at = draw(st.sampled_from(starts)) + offset
            width = 2 if offset in (6, 8, 10) else 4
            data[at : at + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")
    return bytes(data)


CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", " ", "nan", "-inf", "1e999", "0x10", "1_0", "a", '"', '""', "\x00"]),
    st.text(max_size=6),
)


@st.composite
def random_csv(draw: st.DrawFn) -> bytes:
    width = draw(st.integers(1, 5))
    header = draw(st.lists(st.sampled_from(["a", "b", "c", "", " a", "a\nb"]) | st.text(max_size=4),
                           min_size=width, max_size=width))  # fmt: skip
    rows = draw(st.lists(st.lists(CELLS, min_size=width - 1, max_size=width + 1), max_size=6))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [",".join(_quoted(cell) for cell in row) for row in [header, *rows]]
    return newline.join(lines).encode("utf-8", "surrogatepass")


def _quoted(cell: str) -> str:
    return f'"{cell.replace(chr(34), chr(34) * 2)}"' if any(c in cell for c in ',"\n\r') else cell


@st.composite
def valid_csv(draw: st.DrawFn) -> bytes:
    seed, n, d = draw(st.integers(0, 99)), draw(st.integers(1, 6)), draw(st.integers(2, 4))
    values = random_array(seed, (n, d), "<f8")
    labels = draw(st.sampled_from([None, ["cat", "dog"], ["1", "2"]]))
    header = ["a", "b", "c", "d"][:d] + ([] if labels is None else ["label"])
    lines = [",".join(header)]
    for i, row in enumerate(values):
        cells = [repr(float(v)) for v in row] + ([] if labels is None else [labels[i % 2]])
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()


# ---- the tests ------------------------------------------------------------------------------


@fuzz(200)
@given(content=valid_npy(), edits=st.lists(EDITS, max_size=4))
def test_mutated_npy(folder: Path, content: bytes, edits: list[Any]) -> None:
    check_loaders(folder / "data.npy", mutate(content, edits), ("0", "1,0", "-1"))


@fuzz(200)
@given(content=edited_header_npy(), edits=st.lists(EDITS, max_size=2))
def test_npy_with_edited_headers(folder: Path, content: bytes, edits: list[Any]) -> None:
    check_loaders(folder / "data.npy", mutate(content, edits), ("0",))


@fuzz(150)
@given(content=valid_npz(), edits=st.lists(EDITS, max_size=4))
def test_mutated_npz(folder: Path, content: bytes, edits: list[Any]) -> None:
    check_loaders(folder / "data.npz", mutate(content, edits))


@fuzz(150)
@given(content=edited_npz())
def test_npz_with_edited_members_and_sizes(folder: Path, content: bytes) -> None:
    check_loaders(folder / "data.npz", content)


@fuzz(150)
@given(content=valid_csv(), edits=st.lists(EDITS, max_size=4))
def test_mutated_csv(folder: Path, content: bytes, edits: list[Any]) -> None:
    check_loaders(folder / "data.csv", mutate(content, edits), ("a", "label", "a,b"))


@fuzz(150)
@given(content=random_csv())
def test_random_csv(folder: Path, content: bytes) -> None:
    check_loaders(folder / "data.csv", content, ("a", "b,c"))


@fuzz(100)
@given(
    extension=st.sampled_from([".csv", ".npy", ".npz"]),
    start=st.sampled_from([b"", b"\x93NUMPY\x01\x00", b"PK\x03\x04", b"\xef\xbb\xbf"]),
    rest=st.binary(max_size=200),
)
def test_random_bytes(folder: Path, extension: str, start: bytes, rest: bytes) -> None:
    check_loaders(folder / f"data{extension}", start + rest)


# ---- regressions: what the fuzzing found, and the blow-ups looked for on purpose ------------

SMALL = 8 * 2**20  # bytes: what loading any of the files below may allocate


def refused(path: Path, message: str) -> None:
    """Both loaders raise a DataError matching ``message``, fast and allocating little."""
    for call in (load_dataset, load_features):
        with bounded(SMALL), pytest.raises(DataError, match=message) as error:
            call(str(path))
        check_refusal(error.value, str(path))


def npy_header(shape: object, descr: str = "<f8", version: int = 1) -> bytes:
    buffer = io.BytesIO()
    fields = {"descr": descr, "fortran_order": False, "shape": shape}
    writer = (
        npy_format.write_array_header_1_0 if version == 1 else npy_format.write_array_header_2_0
    )
    writer(buffer, fields)
    return buffer.getvalue()


def write_npz(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content, compress_type=method)
    return path


def y_member(n: int = 1) -> bytes:
    return npy_bytes(np.zeros(n))


def test_npy_claiming_a_huge_shape_is_refused_before_allocating(tmp_path: Path) -> None:
    # numpy's reader allocated the declared 80 GB first: a MemoryError, or 8 GB at (10**8, 10).
    path = tmp_path / "huge.npy"
    path.write_bytes(npy_header((10**9, 10)) + bytes(80))
    refused(
        path,
        r"huge\.npy is not a valid \.npy file: truncated or corrupt, its header "
        r"declares shape \(1000000000, 10\) of float64, 80000000000 bytes, but 80 follow it",
    )


@pytest.mark.parametrize(
    ("descr", "shape", "message"),
    [
        ("|S0", (2**40, 3), r"declares dtype \|S0, of 0 bytes an element"),
        ("|V0", (10**4, 10**4), r"declares dtype \|V0, of 0 bytes an element"),
        ("<f8", (2**63, 0), r"declares shape \(9223372036854775808, 0\)"),
    ],
)
def test_npy_header_that_no_array_fits_is_refused(
    tmp_path: Path, descr: str, shape: tuple[int, ...], message: str
) -> None:
    # Elements of 0 bytes pass the size check: load_dataset's column selection then
    # allocated 2 TiB (|S0 becomes |S1: a MemoryError) or walked 10**8 empty elements
    # (|V0; 10**12 never ended); a dimension past 2**63 - 1 made numpy warn.
    path = tmp_path / "empty.npy"
    path.write_bytes(npy_header(shape, descr) + bytes(48))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refused(path, rf"empty\.npy is not a valid \.npy file: its header {message}")


def test_npy_header_length_of_4_gb_is_refused_before_reading(tmp_path: Path) -> None:
    # numpy read (and allocated) the whole header length a version 2.0 file declares.
    path = tmp_path / "long.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00" + (2**32 - 1).to_bytes(4, "little") + b"{}\n")
    refused(path, r"header length reads 4294967295 bytes, but only 3 follow")


def test_npy_header_that_breaks_numpys_parser(tmp_path: Path) -> None:
    # numpy let tokenize.TokenError out of its fallback parser for Python 2 headers.
    path = tmp_path / "brace.npy"
    path.write_bytes(npy_bytes(np.zeros((1, 2))).replace(b"}", b"|"))
    refused(path, r"brace\.npy is not a valid \.npy file: .*EOF in multi-line statement")


def test_npy_without_rows_or_columns_is_refused(tmp_path: Path) -> None:
    # load_features returned an (N, 0) array, and blamed NaN for an empty one.
    for shape in [(3, 0), (0, 3)]:
        path = tmp_path / "empty.npy"
        path.write_bytes(npy_bytes(np.zeros(shape)))
        with pytest.raises(
            DataError, match=rf"N, features >= 1, received shape {re.escape(str(shape))}"
        ):
            load_features(str(path))


def test_bool_features_load_for_prediction_as_for_training(tmp_path: Path) -> None:
    # load_dataset took bool columns, load_features refused the same file.
    path = tmp_path / "flags.npy"
    path.write_bytes(npy_bytes(np.array([[True, False, True], [False, False, True]])))
    np.testing.assert_array_equal(load_features(str(path))[:, :2], load_dataset(str(path)).x)


def test_float16_class_labels_load_without_a_warning(tmp_path: Path) -> None:
    # Comparing float16 labels with 2**53 overflowed: a RuntimeWarning on every load.
    path = tmp_path / "half.npz"
    np.savez(path, x=np.zeros((4, 2)), y=np.array([0, 2, 1, 2], dtype=np.float16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_dataset(str(path), task="classification")
    assert data.classes == (0, 1, 2) and data.y.tolist() == [0, 2, 1, 2]


def test_npz_member_claiming_a_huge_shape_is_refused(tmp_path: Path) -> None:
    member = npy_header((10**9, 10)) + bytes(80)  # numpy allocated the 80 GB first
    path = write_npz(tmp_path / "claim.npz", {"x.npy": member, "y.npy": y_member()},
                     zipfile.ZIP_DEFLATED)  # fmt: skip
    refused(path, r"claim\.npz: x is not a valid \.npy file: truncated or corrupt")


def test_npz_zip_bomb_is_refused_before_decompressing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 80 MiB of zeros deflate to 80 kB: they were decompressed, whatever the ratio. Members
    # up to 1 GiB are always read (real one-hot data compresses ~500:1); lowered here to 64
    # MiB so that the test need not deflate a gigabyte.
    monkeypatch.setattr("handprop.data.npy_file.SMALL_MEMBER_BYTES", 64 * 2**20)
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w") as member:
            member.write(npy_header((10 * 2**20, 1)))
            for _ in range(80):
                member.write(bytes(2**20))
        archive.writestr("y.npy", y_member(10 * 2**20))
    assert path.stat().st_size < 200_000
    refused(path, r"bomb\.npz: x declares \d+ bytes compressed into \d+, more than 256 "
                  r"times as many.*zip bomb.*save it uncompressed with np\.savez")  # fmt: skip


def test_npz_member_that_lies_about_its_size_allocates_only_what_arrives(tmp_path: Path) -> None:
    # A member whose zip entry and .npy header both claim 900 MB, with 1 kB of data: numpy's
    # reader allocated the 900 MB before reading (within the 1 GiB any member may have).
    body = npy_header((112_500_000,)) + bytes(1000)
    path = write_npz(tmp_path / "lie.npz", {"x.npy": body, "y.npy": y_member()},
                     zipfile.ZIP_DEFLATED)  # fmt: skip
    data = path.read_bytes()
    fake = struct.pack("<I", len(npy_header((112_500_000,))) + 900_000_000)
    assert data.count(struct.pack("<I", len(body))) == 2  # local header, central directory
    path.write_bytes(data.replace(struct.pack("<I", len(body)), fake))
    refused(path, r"lie\.npz: x is not a valid \.npy file: truncated, its header declares "
                  r"900000000 bytes of data but 1000 follow it")  # fmt: skip


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_npz_members_read_in_chunks_keep_order_and_byte_order(tmp_path: Path, method: int) -> None:
    # handprop reads .npz members itself (above): Fortran order, big-endian and float32 arrays
    # must come back as np.load gives them, across the 16 MiB chunks too.
    rng = np.random.default_rng(0)
    x = np.asfortranarray(rng.standard_normal((2**20 // 8 * 3, 8)).astype(">f8"))  # 24 MiB
    y = rng.standard_normal(x.shape[0]).astype(np.float32)
    path = tmp_path / "ok.npz"
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, array in (("x.npy", x), ("y.npy", y)):
            with archive.open(name, "w") as member:
                npy_format.write_array(member, array)
    dataset = load_dataset(str(path))
    np.testing.assert_array_equal(dataset.x, x)
    np.testing.assert_array_equal(dataset.y, y.reshape(-1, 1))  # regression targets: (N, 1)


def test_npz_member_that_is_not_an_array_is_not_read_whole(tmp_path: Path) -> None:
    # np.load returned such a member as bytes, read whole: 2 GB from a 2 MB file; and
    # load_features then raised AttributeError on the bytes.
    zeros = bytes(32 * 2**20)
    path = write_npz(tmp_path / "raw.npz", {"x": zeros, "y": zeros}, zipfile.ZIP_DEFLATED)
    refused(path, r"raw\.npz: x is not a \.npy array; x and y must be arrays saved with np\.savez")


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_npz_with_compression_numpy_does_not_write(tmp_path: Path, method: int) -> None:
    # zipfile inflates bzip2 and lzma a whole compressed chunk at a time: reading the first 6
    # bytes of a 437-byte archive took 829 MB (400 MB of zeros, bzip2).
    members = {"x.npy": npy_bytes(np.zeros((2, 2))), "y.npy": y_member(2)}
    path = write_npz(tmp_path / "other.npz", members, method)
    refused(path, rf"x is compressed with zip method {method}; handprop reads the stored")


@pytest.mark.parametrize(
    ("bit", "message"),
    [(0x1, r"x is encrypted"), (0x20, r"is not a valid \.npz file: compressed patched data")],
)
def test_npz_flags_zipfile_cannot_read(tmp_path: Path, bit: int, message: str) -> None:
    # zipfile raised RuntimeError (encrypted) and NotImplementedError (patched data).
    members = {"x.npy": npy_bytes(np.zeros((2, 2))), "y.npy": y_member(2)}
    content = bytearray(write_npz(tmp_path / "flags.npz", members).read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = content.index(signature) + offset
        content[at : at + 2] = (bit).to_bytes(2, "little")
    (tmp_path / "flags.npz").write_bytes(content)
    refused(tmp_path / "flags.npz", message)


def test_csv_long_label_in_many_rows_stays_small(tmp_path: Path) -> None:
    # Labels were numpy text, every cell as wide as the longest: here 0.8 GB, 8 GB at 20k rows.
    path = tmp_path / "labels.csv"
    path.write_text("a,label\n1," + "x" * 100_000 + "\n" + "2,y\n" * 500)
    with bounded(SMALL):
        data = load_dataset(str(path), task="classification")
    assert data.classes == ("x" * 100_000, "y") and data.y.tolist() == [0] + [1] * 500


def test_csv_features_of_50_000_columns_in_linear_time(tmp_path: Path) -> None:
    # Each column was looked up with list.index: 20,000 columns took 3 s, 100,000 never ended.
    path = tmp_path / "wide.csv"
    columns = range(50_000)
    path.write_text(",".join(f"c{j}" for j in columns) + "\n" + ",".join("1" for _ in columns))
    with time_limit(TIME_LIMIT):
        assert load_features(str(path)).shape == (1, 50_000)


def test_csv_of_one_line_with_a_million_cells(tmp_path: Path) -> None:
    # No cap on the width: it loads in memory linear in the file (Python strings, then floats).
    path = tmp_path / "line.csv"
    path.write_text(",".join(f"c{j}" for j in range(200_000)) + "\n" + "1," * 199_999 + "2\n")
    with time_limit(TIME_LIMIT):
        data = load_dataset(str(path))
    assert data.x.shape == (1, 199_999) and data.y.tolist() == [[2.0]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('"a\nb","a\nb"\n1,2\n', r'the header names column "a\\nb" twice'),
        # (two numbers above it: a text column alone would be taken for categories or an ID)
        ("a,b\n1,1\n2,1\n" + "x" * 100_000 + ",1\n",
         r"column \"a\": 'x{60}'\.\.\. is not a number"),
        (",".join(f"c{j}" for j in range(10_000)) + "\n" + "1," * 9_999 + "1\n",
         r'no column "z"; its columns are "c0", .* "c19" and 9980 more'),
    ],
)  # fmt: skip
def test_csv_messages_stay_one_short_line(tmp_path: Path, content: str, message: str) -> None:
    # Header names were printed raw (a newline broke the line) and whole (all the columns).
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as error:
        load_dataset(str(path), target="z" if "c19" in message else None)
    check_refusal(error.value, str(path))
