"""Every drill on a running lab stack, N runs each: RTO, longest write pause and client errors per cell, lost
writes, split-brain and whether the targets were met, in one table.

Needs the stack up (`make up`); each run heals what it broke. Do not point it at `labtest` while the suite runs.
Usage: `.venv/bin/python benchmarks/drills.py [--stack lab] [--runs 2] [--hold 8] [--only dc-outage,...]`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
HIVESTACK = ROOT / ".venv" / "bin" / "hivestack"
# (drill, where, injector): the writer's DC, a DC leading no cell of interest, both injectors.
PLAN = [
    ("dc-outage", ["--dc", "dc-a"], "lab"),
    ("dc-partition", ["--dc", "dc-b"], "lab"),
    ("dc-partition", ["--dc", "dc-c"], "playbook"),
    ("gray-failure", ["--dc", "dc-c"], "lab"),
    ("host-loss", ["--host", "b-db-1"], "lab"),
    ("dc-evacuation", ["--dc", "dc-a"], "playbook"),
    ("failback", ["--dc", "dc-a"], "playbook"),
]


def cell_text(cell: dict) -> str:
    rto = "never" if cell["rto_s"] is None else f"{cell['rto_s']:.2f}"
    text = f"{rto} ({cell['max_pause_s']:.2f}, {cell['errors']})"
    return f"[bold]{text}[/bold]" if cell["led_from_inside"] else text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stack", default="lab")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--hold", type=float, default=8.0)
    p.add_argument("--only", help="comma-separated drill names")
    args = p.parse_args()
    only = set(args.only.split(",")) if args.only else None
    console = Console(width=200)  # the table is wide; CI logs are not terminals
    results: list[tuple[str, str, str, list[dict]]] = []
    with tempfile.TemporaryDirectory(prefix="hivestack-bench-drills-") as reports:
        for name, where, injector in PLAN:
            if only and name not in only:
                continue
            runs = []
            for i in range(args.runs):
                console.print(f"[dim]{name} {' '.join(where)} ({injector}) run {i + 1}/{args.runs}[/dim]")
                argv = [str(HIVESTACK), "drill", "run", name, *where, "--stack", args.stack, "--injector", injector]
                argv += ["--hold", str(args.hold), "--reports", reports, "--json"]
                proc = subprocess.run(argv, capture_output=True, text=True, check=False)
                if proc.returncode not in (0, 1):
                    sys.exit(f"{name} could not run:\n{proc.stderr[-3000:]}")
                runs.append(json.loads(proc.stdout))
            results.append((name, where[1], injector, runs))
    cells = [c["cell"] for c in results[0][3][0]["cells"]] if results else []
    table = Table(title=f"drills on {args.stack}: RTO s (longest pause s, errors) per run; bold: writer inside")
    for col in ("drill", "target", "injector", *cells, "writes lost", "split-brain", "targets"):
        table.add_column(col)
    for name, target, injector, runs in results:
        per_cell = ["; ".join(cell_text(r["cells"][i]) for r in runs) for i in range(len(cells))]
        table.add_row(name, target, injector, *per_cell, lost_text(runs), split_text(runs), targets_text(runs))
    console.print(table)
    return 0


def lost_text(runs: list[dict]) -> str:
    """Writes lost over the runs; a run with a cell not checked makes the sum unknown, and says so."""
    unknown = [r for r in runs if r["rpo"]["lost"] is None]
    if unknown:
        cells = sorted({c for r in unknown for c in r["rpo"]["not_checked"]})
        return f"not checked ({', '.join(cells)})"
    return str(sum(r["rpo"]["lost"] for r in runs))


def split_text(runs: list[dict]) -> str:
    """Split-brain is measured only where a side is cut off completely."""
    measured = [c["split_brain"] for r in runs for c in r["cells"] if c["split_brain"] is not None]
    if not measured:
        return "not measured"
    return "yes" if any(measured) else "no"


def targets_text(runs: list[dict]) -> str:
    return f"{sum(r['targets_met'] for r in runs)}/{len(runs)} met"


if __name__ == "__main__":
    sys.exit(main())
