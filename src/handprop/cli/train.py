"""``handprop train``: its options; the job itself is in training.py."""

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handprop.cli.arguments import (
    DATA_HELP,
    add_backend_options,
    add_column_options,
    non_negative_float,
    non_negative_int,
    placement,
    positive_int,
    widths,
)
from handprop.layers import ACTIVATIONS
from handprop.losses import LOSSES
from handprop.optim import OPTIMIZERS

if TYPE_CHECKING:
    from handprop.distributed import Communicator


LAYERS_HELP = (
    "the whole network, layers separated by commas, instead of --hidden/--activation/"
    "--no-bias: conv C_OUT K [stride S] [pad P] [nobias], maxpool K [stride S], avgpool K "
    "[stride S], flatten, linear D_OUT [nobias], dropout P, batchnorm, layernorm, relu, tanh, "
    "sigmoid, identity, leaky_relu [SLOPE]; the last layer gives one output per class (or "
    "target). With conv, pooling or flatten the data are images: --data digits (1x8x8) or an "
    ".npz holding x (N, C, H, W) and y (N,) labels or (N, D_out) targets; each channel is "
    "standardised (one mean and scale per channel, --no-standardize: none). E.g. "
    '"conv 16 3 pad 1, relu, maxpool 2, flatten, linear 10"'
)


def add_parser(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train a network on a data set and save it",
        description=(
            "Train a fully-connected network on tabular data, or the network --layers "
            "describes (a convolutional one on images). The inputs (and regression targets) "
            "are standardised with statistics of the training part, which are saved with the "
            "model. A seeded validation part drives early stopping. Progress goes to stderr "
            "(a bar on a terminal), a summary to stdout."
        ),
    )
    train.add_argument("--data", help=DATA_HELP)
    train.add_argument("--target", help="target column(s): NAME[,NAME...] (CSV) or indices (.npy)")
    train.add_argument(
        "--task",
        choices=["regression", "classification"],
        help="default: inferred from the target (text, true/false or at most 20 distinct whole "
        "numbers: classification; else regression) and printed",
    )
    add_column_options(train)
    train.add_argument(
        "--impute",
        choices=["mean", "median", "most-frequent"],  # handprop.data.encoding.IMPUTE
        help="fill missing cells with the column's mean, median or most frequent value "
        "(categories: the most frequent), computed on the data and saved with the model",
    )
    train.add_argument("--hidden", type=widths, help="hidden widths, e.g. 100,50; default: 100")
    train.add_argument("--layers", metavar="SPEC", help=LAYERS_HELP)
    train.add_argument("--activation", choices=ACTIVATIONS.names(), help="default: relu")
    train.add_argument(
        "--no-bias",
        dest="bias",
        action="store_const",
        const=False,
        help="Linear layers without biases, as in the tutorial",
    )
    train.add_argument(
        "--loss",
        choices=LOSSES.names(),
        help="default: cross-entropy for classification, mse for regression",
    )
    train.add_argument(
        "--class-weight",
        choices=["balanced"],
        help="weigh each class's loss by N / (classes * its count in the training part), as "
        "scikit-learn's class_weight='balanced'; default: every sample alike",
    )
    train.add_argument("--optimizer", choices=OPTIMIZERS.names(), help="default: adam")
    train.add_argument(
        "--lr", type=non_negative_float, help="learning rate; default: 0.001 (adam), 0.01 (sgd)"
    )
    train.add_argument("--momentum", type=non_negative_float, help="SGD momentum; default: 0.9")
    train.add_argument(
        "--weight-decay",
        type=non_negative_float,
        help="L2 penalty added to the gradient (w * decay); default: 0",
    )
    train.add_argument("--batch-size", type=positive_int, help="default: 32")
    train.add_argument("--epochs", type=non_negative_int, help="default: 200")
    train.add_argument("--seed", type=non_negative_int, help="default: 0")
    train.add_argument(
        "--validation-fraction",
        type=non_negative_float,
        help="share held out for validation; default: 0.1 (0: none, and no early stopping)",
    )
    train.add_argument(
        "--test-fraction",
        type=non_negative_float,
        help="share held out before anything else (seeded) and scored once at the end, on "
        "data the model never trained on; default: 0",
    )
    train.add_argument(
        "--patience",
        type=non_negative_int,
        help="stop after this many epochs without a better --monitor value and keep the best "
        "weights; 0 turns it off; default: 20 (none without a validation part)",
    )
    train.add_argument(
        "--monitor",
        choices=["val-metric", "val-loss"],
        help="what early stopping watches and keeps the best epoch of: the validation metric "
        "(accuracy for classification, R² for regression) or the validation loss; "
        "default: val-metric",
    )
    train.add_argument("--schedule", choices=["none", "step", "cosine"], help="default: none")
    train.add_argument("--step-size", type=positive_int, help="--schedule step: epochs per step")
    train.add_argument("--gamma", type=non_negative_float, help="--schedule step: rate factor")
    train.add_argument(
        "--clip-norm", type=non_negative_float, help="rescale gradients whose L2 norm exceeds this"
    )
    train.add_argument(
        "--on-divergence",
        choices=["stop", "rollback"],
        help="on a NaN/inf loss: stop with the last finite weights (default; exit code 1; "
        "with --out they go to OUT.diverged and OUT is left as it was), or restore the "
        "epoch's start, halve the rate and go on (at most 3 times)",
    )
    train.add_argument(
        "--train-scores",
        choices=["steps", "full"],
        help="the training loss and metric reported each epoch: those of the predictions each "
        "step made on its batch before its update (default; as scikit-learn and Keras report; "
        "costs one batch's forward pass more), or one more pass over the "
        "training rows with the epoch's final weights, in evaluation mode (costs about a third "
        "of an epoch more at batch 32)",
    )
    train.add_argument(
        "--drop-nonfinite",
        action="store_const",
        const=True,
        help="drop rows with NaN, inf or empty cells instead of refusing the data",
    )
    train.add_argument("--no-standardize", dest="standardize", action="store_const", const=False)
    train.add_argument("--dtype", choices=["float64", "float32"], help="default: float64")
    train.add_argument("--out", help="where to save the model (.safetensors)")
    train.add_argument("--checkpoint", help="where to write checkpoints (.safetensors)")
    train.add_argument(
        "--checkpoint-every",
        type=positive_int,
        metavar="K",
        help="write a checkpoint every K epochs",
    )
    train.add_argument(
        "--resume",
        type=Path,
        metavar="CHECKPOINT",
        help="continue the run saved in CHECKPOINT, bit for bit, up to --epochs",
    )
    train.add_argument("--log", help="write one JSON line per epoch to this file")
    train.add_argument("--plot", help="draw the loss curves to this .png (needs matplotlib)")
    train.add_argument("--quiet", action="store_const", const=True, help="print nothing")
    add_backend_options(train)
    train.set_defaults(run=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Train; under ``mpiexec -n K`` (with the mpi extra), on K ranks, rank 0 writing.

    Each rank's work runs in a child process its launched process watches, so that a
    rank killed by a signal is named (``cli.ranks.watched``).
    """
    from handprop.distributed import MissingMPI, check_mpi, launched, mpi_installed

    place = launched()
    if place is None:
        return _train(args, None)
    try:
        check_mpi(*place)
    except MissingMPI as error:  # K copies would each train alone: one line, from rank 0
        if place[0] == 0:
            print(f"handprop: {error}", file=sys.stderr)
        return 2
    if not mpi_installed():  # mpiexec -n 1 without the extra: one process
        return _train(args, None)
    # with mpi4py, MPI says the size: a launcher's variables may not (PMIx's rank alone)
    if _mpi_started():  # MPI runs in this process already (a caller of main): no child
        return _on_every_rank(args)
    from handprop.cli.ranks import watched

    return watched(*place, lambda: _on_every_rank(args))


def _mpi_started() -> bool:
    mpi = sys.modules.get("mpi4py.MPI")
    return mpi is not None and bool(mpi.Is_initialized())


def _on_every_rank(args: argparse.Namespace) -> int:
    from handprop.cli.ranks import on_every_rank
    from handprop.distributed import world

    comm = world()  # initialises MPI
    if comm is None:
        return _train(args, None)
    return on_every_rank(comm, lambda: _train(args, comm))


def _train(args: argparse.Namespace, comm: "Communicator | None") -> int:
    from handprop.checkpoint import load_model
    from handprop.cli.config import config_from_args, resumed_config
    from handprop.cli.outputs import check_outputs, output_paths
    from handprop.cli.training import train

    if args.resume is None:
        config = config_from_args(args)
    else:  # outputs checked against the inputs before the checkpoint is read
        check_outputs(output_paths(args), args.data, args.resume)
        _, info = load_model(args.resume)
        config = resumed_config(str(args.resume), info.get("config"), args)
    return train(config, args.resume, sys.stdout, comm, placement(args))
