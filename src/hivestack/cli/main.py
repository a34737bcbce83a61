"""Entry point of the `hivestack` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console

from hivestack.cli import drift_cmd, drill_cmd, kube_cmd, lab_cmd, plan_cmd, topology_cmd
from hivestack.cli.errors import CANNOT_RUN, CannotRun
from hivestack.topology.printable import printable


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hivestack", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="noun", required=True, metavar="NOUN")
    topology_cmd.register(sub)
    plan_cmd.register(sub)
    lab_cmd.register(sub)
    drift_cmd.register(sub)
    drill_cmd.register(sub)
    kube_cmd.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)  # usage errors exit 2 (docs/conventions.md)
    # Wide output when piped (CI logs), the terminal's width otherwise.
    width = None if sys.stdout.isatty() else 160
    out, err = Console(width=width), Console(stderr=True, width=width)
    try:
        return args.run(args, out, err)
    except CannotRun as e:
        if args.debug:
            raise
        # Its text often echoes what the user gave (a file name, a host): escaped, like every error below.
        err.print(f"error: {printable(str(e))}", markup=False, highlight=False, soft_wrap=True)
        return CANNOT_RUN
    except Exception as e:
        if args.debug:
            raise
        # Its text may echo anything (a host's answer, a file's content): escaped, so it stays one line that cannot
        # drive the terminal or forge a line of its own.
        err.print(
            f"error: {printable(f'{type(e).__name__}: {e}')} (run with --debug for the traceback)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return CANNOT_RUN


if __name__ == "__main__":
    sys.exit(main())
