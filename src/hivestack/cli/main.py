"""Entry point of the `hivestack` command.

Each noun's verbs live in a module of their own, imported only when that noun is asked for: a verb pays for the
libraries it uses (Pulumi, Ansible, the drills) and no other's, so an operator's `hivestack lab fault ...` in the
middle of a drill starts at once. `benchmarks/cli_startup.py` times it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rich.console import Console

from hivestack.cli.errors import CANNOT_RUN, CannotRun
from hivestack.topology.printable import printable

# noun -> (the module whose `register(parser)` adds its verbs, one line for `hivestack --help`)
NOUNS = {
    "topology": ("hivestack.cli.topology_cmd", "check and describe topology files"),
    "plan": ("hivestack.cli.plan_cmd", "servers needed with any one DC lost, headroom, cost per account"),
    "lab": ("hivestack.cli.lab_cmd", "the embedded multi-DC lab on this machine"),
    "drift": ("hivestack.cli.drift_cmd", "resources, hosts, files and services that no longer match (exit 1)"),
    "drill": ("hivestack.cli.drill_cmd", "disaster-recovery drills: cut a DC under load, measure RTO/RPO"),
    "kubeconfig": ("hivestack.cli.kubeconfig_cmd", "write a stack's operator kubeconfig (0600): a context per DC"),
}


def parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line; of the nouns, only the one `argv` names gets its verbs (all of them when `argv` is None)."""
    asked = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    p = argparse.ArgumentParser(prog="hivestack", description=__doc__.split("\n\n")[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="noun", required=True, metavar="NOUN")
    for noun, (module, summary) in NOUNS.items():
        noun_parser = sub.add_parser(noun, help=summary, description=summary)
        if asked is None or noun == asked:
            importlib.import_module(module).register(noun_parser)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser(argv).parse_args(argv)  # usage errors exit 2 (docs/conventions.md)
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
