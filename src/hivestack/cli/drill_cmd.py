"""`hivestack drill list|run|report`: disaster-recovery drills with measured RTO and RPO."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hivestack.cli import project
from hivestack.cli.errors import FOUND_PROBLEM, OK, CannotRun
from hivestack.drills.catalog import DRILLS, INJECTOR_NAMES, Scope, drill

# The runbook, its injectors and reports (the lab, Ansible, matplotlib) are imported by the verbs that run or show a
# drill, not by `drill list` and the command line's parsing.

DEFAULT_STACK = "lab"


def register(p: argparse.ArgumentParser) -> None:
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("list", help="the drills").set_defaults(run=run_list)
    r = verbs.add_parser("run", help="run one drill; exit 1 when a target is missed")
    r.add_argument("name", metavar="DRILL", help=f"one of: {', '.join(DRILLS)}")
    where = r.add_mutually_exclusive_group(required=True)
    where.add_argument("--dc", help="the data center to take away (DC drills)")
    where.add_argument("--host", help="the database host to take away (host-loss)")
    r.add_argument("--stack", default=DEFAULT_STACK, help=f"stack to drill (default: {DEFAULT_STACK})")
    r.add_argument("--injector", choices=INJECTOR_NAMES, default="lab", help="lab primitives or the playbooks")
    r.add_argument("--hold", type=float, default=12.0, help="seconds the fault is held (default 12)")
    r.add_argument("--loss", type=int, default=20, help="gray-failure packet loss, percent 1-100 (default 20)")
    r.add_argument("--reports", type=Path, default=None, help="reports directory (default: <checkout>/reports)")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.set_defaults(run=run_drill)
    s = verbs.add_parser("report", help="show a drill report")
    s.add_argument("dir", nargs="?", type=Path, help="a report directory (default: the latest)")
    s.set_defaults(run=run_report)


def run_list(args: argparse.Namespace, out: Console, err: Console) -> int:
    table = Table(title="drills")
    for col in ("drill", "takes away", "what it is", "kind"):
        table.add_column(col)
    for d in DRILLS.values():
        table.add_row(d.name, f"--{d.scope.value}", d.summary, "planned" if d.planned else "failure")
    out.print(table)
    return OK


def run_drill(args: argparse.Namespace, out: Console, err: Console) -> int:
    from hivestack.drills.runbook import Options, Run
    from hivestack.drills.stack import Stack
    from hivestack.topology import load_topology

    try:
        chosen = drill(args.name)
    except ValueError as e:
        raise CannotRun(str(e)) from None
    target = args.dc if chosen.scope is Scope.DC else args.host
    if target is None:
        raise CannotRun(f"{chosen.name} takes away a {chosen.scope.value}: give --{chosen.scope.value}")
    root = project.root()
    loaded = load_topology(project.topology_path(args.stack), survivability=False)
    stack = Stack(root, args.stack, loaded, {})
    try:
        # Before reading any output: nothing is touched on a wrong target or option.
        stack.validate_target(chosen, target)
        options = Options(args.hold, args.loss, args.injector, args.reports or root / "reports")
        options.validate()
        stack.outputs = project.stack_outputs(args.stack)
        run = Run(stack, chosen, target, options, lambda msg: err.print(f"[dim]{msg}[/dim]"))
    except ValueError as e:
        raise CannotRun(str(e)) from None
    if not stack.outputs.get("inventory"):
        raise CannotRun(f"stack {args.stack!r} has no hosts (is it up? hivestack lab up --stack {args.stack})")
    result = run.execute()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result, out)
        out.print(f"report: {run.out_dir}")
    return OK if result["targets_met"] else FOUND_PROBLEM


def show(result: dict, out: Console) -> None:
    from hivestack.drills import report as reports

    table = Table(title=f"{result['drill']} on {result['target']} ({result['injector']})")
    for col in ("cell", "writer inside", "RTO", "longest pause", "errors", "lost", "diverged", "split-brain"):
        table.add_column(col)
    for c in result["cells"]:
        table.add_row(
            c["cell"],
            "yes" if c["led_from_inside"] else "no",
            reports.fmt(c["rto_s"]),
            reports.fmt(c["max_pause_s"]),
            str(c["errors"]),
            reports.lost(c),
            reports.flag(c["diverged"], "not checked"),
            reports.flag(c["split_brain"], "not measured"),
        )
    out.print(table)
    for v in result["verdicts"]:
        if v["outcome"] != "met":
            out.print(f"{v['outcome']}: {v['cell']}: {v['target']}: {v['value']}", style="red", markup=False)
    for e in result["errors"]:
        out.print(f"error: {e}", style="red", markup=False)
    out.print(
        "targets met" if result["targets_met"] else "targets MISSED", style="green" if result["targets_met"] else "red"
    )


def run_report(args: argparse.Namespace, out: Console, err: Console) -> int:
    directory = args.dir
    if directory is None:
        found = sorted((project.root() / "reports").glob("*/*/report.json"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise CannotRun("no drill report yet (hivestack drill run ...)")
        directory = found[-1].parent
    path = Path(directory) / "report.md"
    if not path.is_file():
        raise CannotRun(f"{path}: no such report")
    print(path.read_text(), end="")
    return OK
