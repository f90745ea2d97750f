"""The data of a training job, split and standardised, and what a model file records about it."""

import hashlib
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np

from handprop._types import Array
from handprop.backend import NUMPY
from handprop.cli.config import TrainConfig
from handprop.data import (
    Columns,
    CsvFormat,
    DataError,
    Dataset,
    Standardizer,
    read_table,
    train_validation_split,
)
from handprop.data.images import channel_scaler, load_image_dataset, standardize_channels
from handprop.data.transform import balanced_class_weights, hold_out
from handprop.distributed import Communicator, RowShard
from handprop.layers import Linear, Sequential
from handprop.layers.spec import takes_images
from handprop.moments import Moments


@dataclass(frozen=True)
class Prepared:
    """Training and validation arrays in the model's dtype; standardisers fitted on training."""

    dataset: Dataset
    train_x: Array
    train_y: Array
    validation: tuple[Array, Array] | None
    x_scaler: Standardizer | None
    y_scaler: Standardizer | None
    test: tuple[Array, Array] | None = None  # held out from training and validation alike
    # under K ranks, where each holds its own rows alone: what needs all of them
    digest: str | None = None  # validation_digest()
    class_weight: Array | None = None  # balanced_class_weights of every training label
    #: (C, H, W) when the samples are images (x (N, C, H, W); x_scaler: one value a channel)
    input_shape: tuple[int, int, int] | None = None

    @property
    def d_out(self) -> int:
        classes = self.dataset.classes
        return len(classes) if classes is not None else self.train_y.shape[1]

    def metadata(self, config: TrainConfig) -> dict[str, Any]:
        """What ``evaluate`` and ``predict`` need to use the model on new data."""
        data = self.dataset
        return {
            "task": data.task,
            "loss": config.loss,
            "feature_names": list(data.feature_names) if self.input_shape is None else None,
            "encoding": None if data.encoding is None else data.encoding.to_json(),
            "target_names": list(data.target_names),
            "classes": None if data.classes is None else [plain(c) for c in data.classes],
            "x_scaler": None if self.x_scaler is None else self.x_scaler.to_json(),
            "y_scaler": None if self.y_scaler is None else self.y_scaler.to_json(),
            "config": config.to_json(),
            **({} if self.input_shape is None else {"input_shape": list(self.input_shape)}),
        }

    def validation_digest(self) -> str:
        """A SHA-256 of the validation rows as the model sees them; a checkpoint records it.

        A resumed run whose digest differs would train on other rows, or on validation
        rows (another seed or validation fraction, another --data).
        """
        if self.digest is not None:
            return self.digest
        digest = hashlib.sha256()
        for array in self.validation or ():
            digest.update(str((array.shape, array.dtype.str)).encode())
            for start in range(0, len(array), 65536):  # a memory map, a chunk at a time
                digest.update(np.ascontiguousarray(array[start : start + 65536]).tobytes())
        return digest.hexdigest()

    def check_width(self, model: Sequential, source: str) -> None:
        check_input_width(model, self.train_x.shape[1], source, self.dataset.source)


def prepare(
    config: TrainConfig, saved: dict[str, Any] | None, comm: Communicator | None = None
) -> Prepared:
    """Load ``config.data``, split off the validation part, standardise with training statistics.

    ``saved``: a checkpoint's metadata, whose standardisers are reused when resuming.
    ``comm``: the ranks of a data-parallel run; each measures its share of the training
    rows and the statistics are merged. A ``.npy`` file is read through a memory map
    (``prepared_mapped``): its arrays are then MappedRows, gathered a batch at a time.
    """
    if config.layers is not None and takes_images(config.layers):
        return _prepare_images(config, saved, comm)
    if config.data.lower().endswith(".npy"):
        from handprop.cli.prepared_mapped import prepare_mapped

        return prepare_mapped(config, saved, comm)
    columns = Columns(config.features, config.drop, config.categorical, config.impute)
    table = read_table(
        config.data, target=config.target, task=config.task, drop_nonfinite=config.drop_nonfinite,
        columns=columns, form=csv_format(config.delimiter, config.decimal),
    )  # fmt: skip
    rows, test_rows = hold_out(  # the test rows first: never seen in training
        len(table), config.test_fraction, np.random.default_rng([config.seed, 3])
    )
    kept, held = hold_out(
        len(rows), config.validation_fraction, np.random.default_rng([config.seed, 0])
    )
    train_rows, validation_rows = rows[kept], None if held is None else rows[held]
    # the categories and imputed values from the training rows alone: nothing leaks
    dataset = table.dataset(fit_rows=train_rows)
    training = dataset.take(train_rows)
    validation = None if validation_rows is None else dataset.take(validation_rows)
    test = None if test_rows is None else dataset.take(test_rows)
    x_scaler = y_scaler = None
    if saved is not None:
        x_scaler = saved_scaler(saved.get("x_scaler"))
        y_scaler = saved_scaler(saved.get("y_scaler"))
    elif config.standardize:
        x_scaler = _fit_scaler(training.x, comm)
        y_scaler = _fit_scaler(training.y, comm) if dataset.classes is None else None
    train = _arrays(training, x_scaler, y_scaler, config.dtype)
    val = None if validation is None else _arrays(validation, x_scaler, y_scaler, config.dtype)
    held_out = None if test is None else _arrays(test, x_scaler, y_scaler, config.dtype)
    prepared = Prepared(dataset, train[0], train[1], val, x_scaler, y_scaler, held_out)
    return prepared if comm is None else _own_rows(prepared, comm, config)


def _own_rows(prepared: Prepared, comm: Communicator, config: TrainConfig) -> Prepared:
    """``prepared`` holding this rank's rows alone (``RowShard``); rank 0 keeps the test rows.

    Every rank read the whole file; keeping only its share afterwards divides the
    training memory by the ranks. What needs every row is measured first.
    """
    weight = None
    if config.class_weight == "balanced":
        weight = balanced_class_weights(prepared.train_y, prepared.d_out)

    def shards(data: tuple[Array, Array]) -> tuple[Array, Array]:
        return cast(Array, RowShard.of(data[0], comm)), cast(Array, RowShard.of(data[1], comm))

    x, y = shards((prepared.train_x, prepared.train_y))
    dataset = prepared.dataset
    return replace(
        prepared, dataset=replace(dataset, x=dataset.x[:0].copy(), y=dataset.y[:0].copy()),
        train_x=x, train_y=y,
        validation=None if prepared.validation is None else shards(prepared.validation),
        test=prepared.test if comm.rank == 0 else None,
        digest=prepared.validation_digest(), class_weight=weight,
    )  # fmt: skip


def _prepare_images(
    config: TrainConfig, saved: dict[str, Any] | None, comm: Communicator | None
) -> Prepared:
    """``prepare`` for images: x (N, C, H, W), each channel standardised (one mean and one
    scale per channel, fitted on the training images' pixels)."""
    dataset, shape = load_image_dataset(config.data, config.task)
    if saved is not None and saved.get("input_shape") != list(shape):
        raise DataError(
            f"{dataset.source} holds images of shape {shape}, the checkpoint's network takes "
            f"{tuple(saved.get('input_shape') or ())}: use the data it was trained with"
        )
    dataset, test = train_validation_split(
        dataset, config.test_fraction, np.random.default_rng([config.seed, 3])
    )
    training, validation = train_validation_split(
        dataset, config.validation_fraction, np.random.default_rng([config.seed, 0])
    )
    x_scaler = y_scaler = None
    if saved is not None:
        x_scaler = saved_scaler(saved.get("x_scaler"))
        y_scaler = saved_scaler(saved.get("y_scaler"))
    elif config.standardize:
        x_scaler = _channel_scaler(training.x, shape, comm)
        y_scaler = _fit_scaler(training.y, comm) if dataset.classes is None else None

    def arrays(part: Dataset | None) -> tuple[Array, Array] | None:
        if part is None:
            return None
        images = part.x.reshape(len(part.x), *shape)
        if x_scaler is not None:
            images = standardize_channels(part.x, x_scaler, shape)
        x = np.ascontiguousarray(images, dtype=config.dtype)
        y = part.y if y_scaler is None else y_scaler.transform(part.y)
        if part.classes is None:
            y = _finite(np.ascontiguousarray(y, dtype=config.dtype), "targets", config.dtype,
                        part.source)  # fmt: skip
        return _finite(x, "inputs", config.dtype, part.source), y

    train = arrays(training)
    assert train is not None
    prepared = Prepared(
        dataset, *train, arrays(validation), x_scaler, y_scaler, arrays(test), input_shape=shape
    )
    return prepared if comm is None else _own_rows(prepared, comm, config)


def _channel_scaler(
    x: Array, shape: tuple[int, int, int], comm: Communicator | None
) -> Standardizer:
    """One mean and one scale per channel of the flattened images ``x``; over K ranks, each
    measures its share of the pixels."""
    if comm is None:
        return channel_scaler(x, shape)
    pixels = x.reshape(len(x), shape[0], -1).transpose(0, 2, 1).reshape(-1, shape[0])
    return _fit_scaler(np.ascontiguousarray(pixels), comm)


def csv_format(delimiter: str | None, decimal: str | None) -> CsvFormat:
    return CsvFormat(delimiter, decimal or ".")


def _fit_scaler(a: Array, comm: Communicator | None) -> Standardizer:
    """``Standardizer.fit(a)``; over K ranks, from the merged moments of their slices of ``a``."""
    if comm is None:
        return Standardizer.fit(a)
    return scaler_from_moments(comm.merge_moments(Moments.of_chunks(a, comm.rows(len(a)))), "")


def scaler_from_moments(moments: Moments, source: str) -> Standardizer:
    """The Standardizer of merged moments: a constant column gets scale 1, as in ``fit``.

    The streamed moments hold squared deviations, which overflow for values beyond
    ~1e154 (``Standardizer.fit`` rescales them first): such data is refused, not
    standardised into zeros.
    """
    if not (np.isfinite(moments.mean).all() and np.isfinite(moments.m2).all()):
        where = f"{source}: " if source else ""
        raise DataError(
            f"{where}values too large to standardise a chunk at a time (squares overflow "
            "float64): rescale the data, or train on one process from a .csv file"
        )
    constant = (moments.high == moments.low) | (moments.m2 == 0)
    return Standardizer(moments.mean, np.where(constant, 1.0, moments.std))


def check_input_width(model: Sequential, width: int, model_source: str, data_source: str) -> None:
    """A ValueError unless the model's first layer takes ``width`` features."""
    first = model[0] if len(model) else None
    if isinstance(first, Linear) and first.in_features != width:
        raise ValueError(
            f"{model_source} expects {first.in_features} input features, but {data_source} "
            f"has {width}; use the data (and --target) the model was trained with"
        )


def _arrays(
    data: Dataset, x_scaler: Standardizer | None, y_scaler: Standardizer | None, dtype: str
) -> tuple[Array, Array]:
    with np.errstate(over="ignore"):  # checked below, with a message that says what happened
        x = data.x if x_scaler is None else x_scaler.transform(data.x)
        x = _finite(np.ascontiguousarray(x, dtype=dtype), "inputs", dtype, data.source)
        if data.classes is not None:
            return x, data.y
        y = data.y if y_scaler is None else y_scaler.transform(data.y)
        return x, _finite(np.ascontiguousarray(y, dtype=dtype), "targets", dtype, data.source)


def _finite(a: Array, what: str, dtype: str, source: str) -> Array:
    """``a``, unless standardising or converting to ``dtype`` overflowed to infinity."""
    if not np.isfinite(a).all():
        raise DataError(
            f"the {what} of {source} overflow {dtype} once standardised with the training "
            "statistics (values near the float64 limit?): rescale the data, or use float64"
        )
    return a


def saved_scaler(saved: object) -> Standardizer | None:
    """The Standardizer a model file's metadata describes, or None."""
    return None if saved is None else Standardizer.from_json(saved)  # type: ignore[arg-type]


def plain(value: object) -> object:
    """numpy scalars as Python numbers, for JSON."""
    return value.item() if isinstance(value, np.generic) else value


def collapse_warning(model: Sequential, prepared: Prepared, class_weighted: bool = False) -> str:
    """A warning when the model predicts one class for every validation row, though the data
    has several (on 95/5 data, an accuracy of 0.95 that means nothing); else "".

    ``class_weighted``: the loss already weighs the classes, so the warning suggests the
    other ways out instead of ``--class-weight balanced``.
    """
    classes = prepared.dataset.classes
    if classes is None or prepared.validation is None:
        return ""
    x, _ = prepared.validation
    if isinstance(x, RowShard):  # under K ranks, rank 0's share of them
        x = x.rows
    xp = model.xp  # a model on torch predicts from tensors on its device
    scores = model.predict(x if xp is NUMPY else xp.from_host(x[:]))
    predicted = np.unique(np.argmax(xp.to_numpy(scores), axis=1))
    if len(predicted) != 1 or len(classes) < 2:
        return ""
    remedy = (
        "more --epochs or another --lr (the features may not tell the classes apart)"
        if class_weighted
        else "--class-weight balanced"
    )
    return (
        f"warning: the model predicts class {classes[int(predicted[0])]!r} for every validation "
        f"row; its accuracy says nothing: see handprop evaluate's per-class recall, and try "
        f"{remedy}"
    )
