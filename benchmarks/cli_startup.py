"""How long each `hivestack` verb takes to start: the whole command, on inputs that make it stop at once (a missing
stack, the lab topology), so what is timed is Python, the imports and the parsing, not the verb's own work.

Target (issue: fast feedback): every verb within 0.3 s on these machines. With `--baseline REV` the same verbs are
timed, in the same run, from a checkout of REV (a temporary git worktree run with this virtualenv), for a before
and after. Usage: `.venv/bin/python benchmarks/cli_startup.py [--runs 15] [--baseline 07956d4]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 0.3
VERBS = [
    ["--help"],
    ["topology", "validate", "inventories/lab/topology.yaml"],
    ["plan", "inventories/lab/topology.yaml"],
    ["lab", "status", "--stack", "no-such-stack"],
    ["lab", "fault", "restore", "dc-a", "--stack", "no-such-stack"],
    ["drift", "--stack", "no-such-stack", "--only", "no-such-source"],
    ["drill", "list"],
    ["kubeconfig", "--output", "/dev/null", "--stack", "no-such-stack"],
]


def timed(src: Path, argv: list[str], runs: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "hivestack.cli.main", *argv],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15, help="runs per verb (default 15)")
    parser.add_argument("--baseline", help="a git revision to time too, for a before and after")
    args = parser.parse_args()
    trees = {"now": ROOT / "src"}
    scratch = tempfile.TemporaryDirectory(prefix="hivestack-cli-baseline-")
    if args.baseline:
        worktree = Path(scratch.name) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline], cwd=ROOT, check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        trees = {args.baseline: worktree / "src", **trees}
    try:
        table = Table(title=f"hivestack start-up, {args.runs} runs per verb (median / max, s; target {TARGET_S} s)")
        table.add_column("verb")
        for label in trees:
            table.add_column(label)
        for argv in VERBS:
            row = [" ".join(argv)]
            for src in trees.values():
                t = timed(src, argv, args.runs)
                row.append(f"{statistics.median(t):.3f} / {max(t):.3f}")
            table.add_row(*row)
        Console(width=140).print(table)
    finally:
        if args.baseline:
            subprocess.run(["git", "worktree", "remove", "--force", str(Path(scratch.name) / "tree")], cwd=ROOT,
                           check=False, capture_output=True, timeout=120)  # fmt: skip
        scratch.cleanup()


if __name__ == "__main__":
    main()
