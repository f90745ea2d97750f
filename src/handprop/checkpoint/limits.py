"""Bounds on the size of a network a file may describe, checked before anything is allocated.

A file's tensors bound its Linear layers (the bytes must be there), but not its activation
layers, which hold no tensors: a 1.1 MB file with 50,000 ReLU entries asked for 1.28 GB to
predict 400 rows. Each layer keeps a work buffer of (batch, its output width), so the bound
is on the number of layers and on the values those buffers hold together for one batch.
"""

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

from handprop.checkpoint.errors import ModelFileError

#: More layers than any tabular network needs.
MAX_LAYERS = 1_000
#: Values in all layers' work buffers for one batch: 2**28 is 2 GiB of float64.
MAX_WORK_VALUES = 2**28
#: Weights and biases of all Linear layers (a file's are bounded by its size; a network
#: about to be built is not): 2**28 is 2 GiB of float64.
MAX_PARAMETERS = 2**28
#: The batch a loaded model is checked for: ``Module.predict``'s, which the CLI uses.
BATCH = 4096


def check_architecture_size(layers: Sequence[Mapping[str, Any]], batch_size: int = BATCH) -> None:
    """Refuse ``layers`` (checked layer configs) beyond MAX_LAYERS, MAX_PARAMETERS or
    MAX_WORK_VALUES.

    Raises ModelFileError saying which bound, and by how much.
    """
    if len(layers) > MAX_LAYERS:
        raise ModelFileError(
            f"architecture has {len(layers)} layers, more than the {MAX_LAYERS} handprop accepts"
        )
    linears = [layer for layer in layers if layer["type"] == "Linear"]
    parameters = sum((int(la["in_features"]) + 1) * int(la["out_features"]) for la in linears)
    if parameters > MAX_PARAMETERS:
        raise ModelFileError(
            f"architecture has {parameters} parameters, more than the {MAX_PARAMETERS} "
            "handprop accepts"
        )
    width = int(linears[0]["in_features"]) if linears else 0
    per_row = 0
    for layer in layers:
        if layer["type"] == "Linear":
            width = int(layer["out_features"])
        per_row += width  # each layer's output, (batch, width)
    if per_row * batch_size > MAX_WORK_VALUES:
        raise ModelFileError(
            f"architecture needs work buffers of {per_row} values per row, "
            f"{per_row * batch_size} for a batch of {batch_size}: more than the "
            f"{MAX_WORK_VALUES} handprop accepts"
        )


def mlp_layers(d_in: int, hidden: Sequence[int], d_out: int) -> list[dict[str, Any]]:
    """The layer configs of ``handprop.mlp(d_in, hidden, d_out)``, to check before building it."""
    widths = [d_in, *hidden, d_out]
    layers: list[dict[str, Any]] = []
    for a, b in pairwise(widths):
        layers += [{"type": "Linear", "in_features": a, "out_features": b}, {"type": "ReLU"}]
    return layers[:-1]
