"""The ``handprop`` command: ``warmup`` runs the tutorial, ``gradcheck`` checks every backward,
``train``/``evaluate``/``predict`` work with data sets and model files, ``bench`` times a step,
``convert`` turns a CSV file into a .npy file that training reads through a memory map.

One module per command, each with its parser (``add_parser``) and what runs it (``run``).
``main`` imports and builds only the command it runs (``--help`` lists them all), so that
``handprop warmup`` does not pay for the parsers of ``train`` and the others.
``main(argv)`` returns the exit code: 0 on success, 1 when a gradient check
fails or training diverges, 2 for bad input (one line on stderr, no traceback),
130 for Ctrl-C (one line: what was saved, how to go on).
"""

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from handprop import __version__
from handprop.cli.errors import Interrupted, TrainingFailed
from handprop.cli.flags import as_flags

__all__ = ["COMMANDS", "build_parser", "main"]

#: The commands in --help's order, each the module ``handprop.cli.<name>``.
COMMANDS = ("warmup", "gradcheck", "train", "evaluate", "predict", "explain", "bench", "convert")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(commands: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    """The parser of ``commands`` (each a name in COMMANDS; default: all of them)."""
    parser = Parser(
        prog="handprop",
        description="Neural networks whose backward pass is written by hand.",
    )
    parser.add_argument("--version", action="version", version=f"handprop {__version__}")
    unknown = [name for name in commands if name not in COMMANDS]
    if unknown:
        raise ValueError(f"unknown command(s) {unknown}; valid: {', '.join(COMMANDS)}")
    subparsers = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for name in commands:
        importlib.import_module(f"handprop.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["bench"]:  # the harness parses its own options
        from handprop.cli import bench

        return bench.run(arguments[1:])
    # `handprop warmup ...` parses alike with warmup's parser alone: the others are for --help
    named = arguments[:1] if arguments[:1] and arguments[0] in COMMANDS else COMMANDS
    parser = build_parser(named)
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exit_:  # --help, --version, or a usage error (code 2)
        return exit_.code if isinstance(exit_.code, int) else 0
    command: Callable[[argparse.Namespace], int] = args.run
    try:
        return command(args)
    except TrainingFailed as error:
        print(f"handprop: {as_flags(str(error))}", file=sys.stderr)
        return 1
    except Interrupted as error:
        print(f"handprop: {error}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("handprop: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError) as error:  # the library's messages name flags here
        print(f"handprop: error: {as_flags(str(error))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `handprop warmup | head`: stop quietly
        sys.stderr.close()
        return 0
    except OSError as error:  # e.g. a --log or --plot path in a folder that does not exist
        where = f": {error.filename}" if error.filename else ""
        print(f"handprop: error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
