"""``handprop explain``: a training step as the tutorial's lines, with shapes, FLOPs and time."""

import argparse
import json
from pathlib import Path
from typing import Any

from handprop.cli.arguments import non_negative_float, positive_int


def add_parser(commands: Any) -> None:
    explain = commands.add_parser(
        "explain",
        help="print a training step as the tutorial's lines, with shapes, FLOPs and time",
        description=(
            "Print the forward and backward passes and the SGD update of one training step "
            "as the tutorial writes them, each line with its shapes, its FLOPs and its measured "
            "share of the step's time, then the totals against this machine's matrix-product "
            "rate. The tutorial's network (N, D_in, H, D_out = 64, 1000, 100, 10) unless "
            "--model names a model file; x and y are drawn from the standard normal."
        ),
    )
    explain.add_argument("--model", type=Path, metavar="FILE", help="a handprop model file")
    explain.add_argument(
        "--batch-size", type=positive_int, default=64, metavar="N", help="default: 64"
    )
    explain.add_argument("--loss", choices=["sse", "mse"], default="sse", help="default: sse")
    explain.add_argument(
        "--seconds",
        type=non_negative_float,
        default=1.0,
        help="rough time budget of the measurements; 0 skips them; default: 1",
    )
    explain.add_argument("--json", action="store_true", help="print JSON for tools instead")
    explain.add_argument(
        "--plot", type=Path, metavar="PNG", help="draw the network with its shapes (matplotlib)"
    )
    explain.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from handprop.explainer import explain

    model = None
    if args.model is not None:
        from handprop.checkpoint import load_model

        model, _ = load_model(args.model)
    explanation = explain(
        model,
        batch_size=args.batch_size,
        loss=args.loss,
        measure=args.seconds > 0,
        seconds=args.seconds,
    )
    if args.plot is not None:
        from handprop.cli.explain_plot import plot_explanation

        plot_explanation(explanation, args.plot)
    if args.json:
        print(json.dumps(explanation.to_dict(), indent=2))
    else:
        print(explanation.format())
    return 0
