"""``handprop convert data.csv data.npy``: a CSV file as a .npy file that training maps."""

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> None:
    convert = commands.add_parser(
        "convert",
        help="convert a CSV file to a .npy file (and its column names) for large data",
        description=(
            "Read a CSV file in chunks (memory stays bounded whatever its size) and write its "
            "rows as float64 to a .npy file, with OUTPUT.json beside it: the column names, the "
            "targets and the text labels of a target. handprop train --data OUTPUT reads it "
            "through a memory map, as it read the CSV file, without loading it whole."
        ),
    )
    convert.add_argument("input", help="a .csv file with a header row")
    convert.add_argument("output", help="the .npy file to write (OUTPUT.json goes beside it)")
    convert.add_argument(
        "--target", help="target column(s): NAME[,NAME...]; default: the last column"
    )
    convert.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from handprop.cli.outputs import check_distinct, check_output
    from handprop.data.convert import convert_csv
    from handprop.data.sidecar import sidecar_path

    if not args.output.lower().endswith(".npy"):
        raise ValueError(f"the output {args.output} must end with .npy")
    check_output("output", args.output)
    sidecar = sidecar_path(args.output)
    if sidecar.is_dir():
        raise ValueError(f"output {args.output}: {sidecar} is a folder, where its names go")
    check_distinct({"output": args.output, "output's OUTPUT.json": sidecar}, {"input": args.input})
    columns = convert_csv(args.input, args.output, args.target)
    labels = "".join(f"; {name}: {len(found)} classes" for name, found in columns.classes.items())
    print(
        f"wrote {args.output} ({len(columns.names)} columns, targets "
        f"{', '.join(columns.targets)}{labels}) and {sidecar}",
        file=sys.stdout,
    )
    return 0
