"""The data layer: load a data set, split it, standardise it, cut it into mini-batches.

Shape: x (N, D_in) float64; y (N, D_out) float64 regression targets, or (N,)
int64 class indices into ``Dataset.classes``.

Sources: a ``.csv`` or ``.tsv`` file (header row, read with the stdlib ``csv``; comma,
semicolon or tab found in the header; categorical columns one-hot encoded), a ``.npy``
file (one 2-D array, targets picked by column), a ``.npz`` file (arrays ``x``
and ``y``), or a bundled name: ``digits``, ``iris``, ``diabetes`` (scikit-learn's
copies: ``pip install 'handprop[datasets]'``) and ``warmup`` (the tutorial's
data). Array files are read with ``allow_pickle=False``: nothing is unpickled.
Every problem a user can fix raises ``DataError`` with a one-line message.
"""

from handprop.data.csv_file import CsvFormat
from handprop.data.dataset import TASKS, DataError, Dataset
from handprop.data.encoding import Encoding
from handprop.data.images import digits_images, load_images
from handprop.data.load import (
    Columns,
    Features,
    Table,
    infer_task,
    load_dataset,
    load_features,
    read_features,
    read_table,
)
from handprop.data.named import DATASET_TASKS
from handprop.data.transform import Standardizer, train_validation_split

__all__ = [
    "DATASET_TASKS",
    "TASKS",
    "Columns",
    "CsvFormat",
    "DataError",
    "Dataset",
    "Encoding",
    "Features",
    "Standardizer",
    "Table",
    "digits_images",
    "infer_task",
    "load_dataset",
    "load_features",
    "load_images",
    "read_features",
    "read_table",
    "train_validation_split",
]
