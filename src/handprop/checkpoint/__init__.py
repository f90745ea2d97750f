"""Model files and training checkpoints: safetensors in PyTorch's layout, written atomically.

A model file holds one tensor per parameter, named and shaped as in
``torch.nn.Sequential`` (``0.weight`` of shape (D_out, D_in), ``0.bias`` of
shape (D_out,)) and in the model's dtype, so that
``torch_model.load_state_dict(safetensors.torch.load_file(path))`` accepts it.
Its safetensors metadata holds, under ``"handprop"``, JSON with the file
format, the handprop version, the architecture (``model_config``) and what the
caller adds (preprocessing statistics, class names...).

A checkpoint is a model file plus an optimizer: extra tensors
``optimizer.<i>.<slot>`` and, in the metadata, the optimizer's type,
hyper-parameters and step count. Every array round-trips exactly, so training
resumes bit for bit; the extra tensors make PyTorch's strict
``load_state_dict`` refuse it, so hand PyTorch the ``save_model`` file.

Every 2-D array is stored transposed (PyTorch's layout) and copied back in
place on loading, so optimizers holding the Parameters keep working. A file
that cannot be read or written raises ModelFileError, with a one-line reason.
"""

from handprop.checkpoint.architecture import TensorSpec, build_model, model_config
from handprop.checkpoint.errors import ModelFileError
from handprop.checkpoint.files import MAX_HEADER_BYTES, PathLike, write_atomically
from handprop.checkpoint.model_file import FORMAT, load, load_model, save_model
from handprop.checkpoint.optimizer_state import (
    OptimizerState,
    build_optimizer,
    load_checkpoint,
    restore_optimizer,
    save_checkpoint,
)

__all__ = [
    "FORMAT",
    "MAX_HEADER_BYTES",
    "ModelFileError",
    "OptimizerState",
    "PathLike",
    "TensorSpec",
    "build_model",
    "build_optimizer",
    "load",
    "load_checkpoint",
    "load_model",
    "model_config",
    "restore_optimizer",
    "save_checkpoint",
    "save_model",
    "write_atomically",
]
