"""Image data as (N, C, H, W) arrays, for convolutional networks.

``digits_images``: scikit-learn's 8x8 digits as (N, 1, 8, 8); ``load_images``:
``.npz`` files with ``x`` (N, C, H, W) and ``y``, or a ``.npy`` of images alone.
Read with ``allow_pickle=False``: nothing is unpickled.
"""

import importlib
from pathlib import Path

import numpy as np

from handprop._types import Array
from handprop.data.dataset import DataError


def digits_images() -> tuple[Array, Array]:
    """scikit-learn's digits as images: x (1797, 1, 8, 8) float64 in [0, 1], y (1797,) int64.

    The pixels (0 to 16 in scikit-learn) are divided by 16; the rows keep
    scikit-learn's order, so ``train_test_split(x, y, random_state=seed)`` splits as
    it does the flat data.
    """
    try:
        datasets = importlib.import_module("sklearn.datasets")
    except ImportError:
        raise DataError(
            "the data set 'digits' comes with scikit-learn, which is not installed; "
            "install it with: pip install 'handprop[datasets]'"
        ) from None
    bunch = datasets.load_digits()
    x = np.asarray(bunch.images, dtype=np.float64)[:, None, :, :] / 16.0
    return np.ascontiguousarray(x), np.asarray(bunch.target, dtype=np.int64)


def load_images(path: str | Path) -> tuple[Array, Array | None]:
    """Images (N, C, H, W) float64 and their targets from ``path``.

    ``.npz``: arrays ``x`` (N, C, H, W) and ``y`` ((N,) integer labels or (N, D_out)
    floats); ``.npy``: the images alone (targets None, e.g. for prediction). A file
    that does not fit raises DataError saying what was expected.
    """
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                missing = [name for name in ("x", "y") if name not in archive.files]
                if missing:
                    raise DataError(
                        f"{path} needs arrays 'x' (N, C, H, W) and 'y'; it lacks {missing} "
                        f"(it holds {archive.files})"
                    )
                x, y = archive["x"], archive["y"]
        elif path.suffix == ".npy":
            x, y = np.load(path, allow_pickle=False), None
        else:
            raise DataError(f"{path}: images are read from .npz (x and y) or .npy (x) files")
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read images from {path}: {error}") from None
    return _checked_images(path, x), None if y is None else _checked_targets(path, y, len(x))


def _checked_images(path: Path, x: Array) -> Array:
    if x.ndim != 4 or 0 in x.shape or x.dtype.kind not in "fiu":
        raise DataError(
            f"{path}: expected images of shape (N, C, H, W) with numbers, received "
            f"{x.shape} {x.dtype.name}"
        )
    images = np.ascontiguousarray(x, dtype=np.float64)
    if not np.all(np.isfinite(images)):
        raise DataError(f"{path}: the images hold NaN or infinite values")
    return images


def _checked_targets(path: Path, y: Array, n: int) -> Array:
    if len(y) != n or y.ndim not in (1, 2) or y.dtype.kind not in "fiu":
        raise DataError(
            f"{path}: expected targets y of shape ({n},) (labels) or ({n}, D_out), received "
            f"{y.shape} {y.dtype.name}"
        )
    if y.ndim == 1 and y.dtype.kind in "iu":
        return y.astype(np.int64)
    return np.asarray(y, dtype=np.float64).reshape(n, -1)
