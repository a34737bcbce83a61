"""`hivestack drift`: does the platform still match the code and the stack's state?"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hivestack import drift
from hivestack.cli import project

DEFAULT_STACK = "lab"


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", default=DEFAULT_STACK, help=f"stack to check (default: {DEFAULT_STACK})")
    p.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    p.add_argument("--junit", type=Path, metavar="FILE", help="also write a JUnit XML report for CI")
    p.add_argument(
        "--only",
        action="append",
        choices=drift.SOURCES,
        metavar="SOURCE",
        help=f"check only this source (repeatable; default: all of {', '.join(drift.SOURCES)})",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    project.stack_config(args.stack)  # an unknown stack is a usage error, before anything runs
    progress = (lambda _: None) if args.json else (lambda msg: err.print(f"[dim]{msg}[/dim]"))
    report = drift.check(project.root(), partial(project.pulumi, capture=True), args.stack, progress, args.only)
    if args.junit:
        args.junit.write_text(report.to_junit())
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return report.status
    if report.drift:
        table = Table(title=f"drift in stack {args.stack}")
        for col in ("found by", "resource or host", "what differs"):
            table.add_column(col)
        for d in report.drift:
            table.add_row(d.source, d.name, d.detail)
        out.print(table)
    for error in report.errors:
        err.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
    verdict = {drift.OK: "no drift", drift.DRIFTED: "drifted", drift.CANNOT_CHECK: "could not check"}[report.status]
    out.print(f"stack {args.stack}: {verdict} (checked: {', '.join(report.checked) or 'nothing'})")
    return report.status
