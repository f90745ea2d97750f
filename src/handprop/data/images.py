"""Image data as (N, C, H, W) arrays, for convolutional networks.

``digits_images``: scikit-learn's 8x8 digits as (N, 1, 8, 8); ``load_images``:
``.npz`` files with ``x`` (N, C, H, W) and ``y``, or a ``.npy`` of images alone;
``load_image_dataset``: either as a Dataset of flattened rows (what ``handprop train
--layers`` splits), with ``channel_scaler`` and ``standardize_channels`` to standardise
each channel (one mean and one scale per channel, not per pixel).
Read with ``allow_pickle=False``: nothing is unpickled.
"""

import importlib
from pathlib import Path

import numpy as np

from handprop._types import Array
from handprop.data.dataset import DataError, Dataset
from handprop.data.transform import Standardizer

Shape = tuple[int, int, int]


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


#: The shape of one sample of each bundled data set that has images.
BUNDLED_IMAGES = {"digits": (1, 8, 8)}


def load_image_dataset(source: str, task: str | None = None) -> tuple[Dataset, Shape]:
    """Images and their targets as a Dataset whose rows are the flattened images.

    ``source``: ``digits`` (``digits_images``) or an ``.npz`` with ``x`` (N, C, H, W)
    and ``y``. ``task`` None: integer labels (N,) are classes, anything else regression
    targets. Returns the Dataset (x (N, C * H * W)) and the image shape (C, H, W):
    ``dataset.x.reshape(-1, *shape)`` gives the images back.
    """
    if source in BUNDLED_IMAGES:
        x, y = digits_images()
        return _dataset(source, x, y, "classification" if task is None else task, "digit")
    if not source.lower().endswith(".npz"):
        raise DataError(
            f"{source}: images with targets are read from an .npz file holding x (N, C, H, W) "
            "and y, e.g. np.savez(path, x=x, y=y), or from the bundled digits"
        )
    x, targets = load_images(source)
    assert targets is not None  # an .npz has its y
    if task is None:
        task = "regression"
        if targets.ndim == 1 and targets.dtype.kind in "iu":
            task = "classification"
    return _dataset(source, x, targets, task, "y")


def load_image_features(source: str) -> tuple[Array, Shape]:
    """The images alone, flattened (N, C * H * W), and their shape (C, H, W): from
    ``digits``, an ``.npz`` (its ``x``) or a ``.npy`` holding (N, C, H, W)."""
    if source in BUNDLED_IMAGES:
        x, _ = digits_images()
    else:
        x, _ = load_images(source)
    return x.reshape(len(x), -1), _shape(x)


def channel_scaler(x: Array, shape: Shape) -> Standardizer:
    """The mean and standard deviation of each channel of the flattened images ``x``
    (over N, H and W), as a Standardizer of C values; 1 for a constant channel."""
    pixels = x.reshape(len(x), shape[0], -1).transpose(1, 0, 2).reshape(shape[0], -1)
    return Standardizer.fit(np.ascontiguousarray(pixels.T))


def standardize_channels(x: Array, scaler: Standardizer, shape: Shape) -> Array:
    """The flattened images ``x`` as images (N, C, H, W), each channel standardised."""
    images = x.reshape(len(x), *shape)
    if len(scaler.mean) != shape[0]:
        raise DataError(
            f"the image standardizer has {len(scaler.mean)} channels, the images {shape[0]}"
        )
    return (images - scaler.mean[:, None, None]) / scaler.scale[:, None, None]


def _shape(x: Array) -> Shape:
    return int(x.shape[1]), int(x.shape[2]), int(x.shape[3])


def _dataset(source: str, x: Array, y: Array, task: str, target: str) -> tuple[Dataset, Shape]:
    flat = np.ascontiguousarray(x.reshape(len(x), -1))
    c, h, w = _shape(x)
    names = tuple(f"pixel_{k}_{i}_{j}" for k in range(c) for i in range(h) for j in range(w))
    if task == "classification":
        if y.ndim != 1:
            raise DataError(
                f"{source}: classification needs labels y of shape (N,), received {y.shape}"
            )
        classes, indices = np.unique(y, return_inverse=True)
        labels = tuple(value.item() for value in classes)
        dataset = Dataset(flat, indices.astype(np.int64), names, (target,), labels, source)
    else:
        targets = np.ascontiguousarray(y.reshape(len(y), -1), dtype=np.float64)
        target_names = tuple(f"{target}{j}" for j in range(targets.shape[1]))
        dataset = Dataset(flat, targets, names, target_names, None, source)
    return dataset, (c, h, w)
