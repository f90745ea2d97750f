"""One contender on a saved problem, in this process only (see isolation.py).

python -m benchmarks.child FOLDER KEY LABEL --plan JSON --out PATH [--threads N]
"""

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from threadpoolctl import threadpool_limits

from benchmarks.isolation import load_group
from benchmarks.measure_one import measure_here
from benchmarks.timing import Plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.child", description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("key")
    parser.add_argument("label")
    parser.add_argument("--plan", type=json.loads, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    problem, reference = load_group(args.folder)
    with threadpool_limits(limits=args.threads):
        result = measure_here(args.key, args.label, problem, reference, Plan(**args.plan))
    args.out.write_text(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
