"""How soon a `hivestack lab fault` takes effect under a drill's load: each DC fault and its restore, N times.

Target (issue: fast feedback): every fault verb in effect within 1 s of being called, under the drills' load. The
load is what a drill runs: the reference load client writing through every DC's gateway from the lab's core
namespace for the whole measurement. Each verb prints how long after its process started the fault took effect
(`lab_cmd.since_start`: the interpreter's start-up included); the table shows that and the whole command's wall time
as seen from here, and checks after each call that `hivestack lab status` reads the fault back (a fault that did
not land fails the run). Needs the stack up (`make up`); every fault is restored. Do not run it while the test suite
runs. Usage: `.venv/bin/python benchmarks/fault_latency.py [--stack lab] [--dc dc-b] [--runs 5] [--workers 4]`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hivestack.topology.ports import BY_NAME
from hivestack.topology.trust import GATEWAY

ROOT = Path(__file__).resolve().parent.parent
HIVESTACK = ROOT / ".venv" / "bin" / "hivestack"
LOAD = ROOT / "src" / "hivestack" / "ledger" / "load.py"
TARGET_S = 1.0
LOAD_DEADLINE_S = 120
IN_EFFECT = re.compile(r"in effect at \S+ UTC, ([0-9.]+) s after the command started")
# verb, what `lab status --json` reads back for the DC afterwards (None: no fault)
ROUNDS = [("partition", "partition"), ("restore", None), ("gray", "gray:20"), ("restore", None), ("cut", "cut"),
          ("restore", None)]  # fmt: skip


def output(stack: str, name: str) -> Any:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "pulumi"), "stack", "output", name, "--json", "--stack", stack],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"stack {stack}: cannot read output {name}: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def fault(stack: str, verb: str, dc: str) -> tuple[float, float]:
    """(seconds after the command started that it says the fault took effect, the command's wall time)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [str(HIVESTACK), "lab", "fault", verb, dc, "--stack", stack], capture_output=True, text=True, timeout=60
    )
    wall = time.perf_counter() - start
    found = IN_EFFECT.search(proc.stdout)
    if proc.returncode != 0 or not found:
        sys.exit(f"lab fault {verb} {dc}: exit {proc.returncode}: {proc.stdout}{proc.stderr}")
    return float(found.group(1)), wall


def read_back(stack: str, dc: str) -> str | None:
    proc = subprocess.run(
        [str(HIVESTACK), "lab", "status", "--json", "--stack", stack], capture_output=True, text=True, timeout=60
    )
    return json.loads(proc.stdout)["faults"].get(dc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stack", default="lab")
    parser.add_argument("--dc", default="dc-b")
    parser.add_argument("--runs", type=int, default=5, help="rounds of every fault and its restore")
    parser.add_argument("--workers", type=int, default=4, help="load client workers per gateway")
    args = parser.parse_args()
    lab = output(args.stack, "lab")
    inventory = output(args.stack, "inventory")
    gateways = sorted({(h["dc"], h["address"]) for h in inventory.values() if "gateway" in h["roles"]})
    scratch = tempfile.TemporaryDirectory(prefix="hivestack-faults-")
    ca = Path(scratch.name) / "gateway-ca.pem"
    ca.write_text(output(args.stack, "ca_certs")[GATEWAY])
    acks = Path(scratch.name) / "acks.jsonl"
    port = BY_NAME["gateway-https"].port
    targets = [arg for dc, address in gateways for arg in ("--target", f"{dc}=https://{address}:{port}")]
    load = subprocess.Popen(
        ["ip", "netns", "exec", lab["core_ns"], sys.executable, str(LOAD), *targets, "--ca-file", str(ca),
         "--customers", "0-29999", "--sample", "300", "--setup-accounts", "--workers", str(args.workers),
         "--duration", "3600", "--ack-log", str(acks)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    times: dict[str, list[tuple[float, float]]] = {}
    try:
        deadline = time.monotonic() + LOAD_DEADLINE_S
        while not (acks.exists() and acks.stat().st_size > 0):  # its writes flow (the log is written in blocks)
            if load.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the load client wrote nothing within {LOAD_DEADLINE_S} s (exit {load.poll()})")
            time.sleep(0.2)
        for _ in range(args.runs):
            for verb, expected in ROUNDS:
                times.setdefault(verb, []).append(fault(args.stack, verb, args.dc))
                if (seen := read_back(args.stack, args.dc)) != expected:
                    sys.exit(f"after `lab fault {verb} {args.dc}` the lab reads back {seen!r}, not {expected!r}")
    finally:
        subprocess.run([str(HIVESTACK), "lab", "fault", "restore", args.dc, "--stack", args.stack], check=False,
                       capture_output=True, timeout=60)  # fmt: skip
        load.terminate()
        load.communicate(timeout=60)

    table = Table(title=f"lab fault on {args.dc} under load ({args.workers} workers per gateway), {args.runs} runs")
    for col in ("verb", "in effect after start: median / max", "command wall time: median / max", "target"):
        table.add_column(col)
    for verb, pairs in times.items():
        effect, wall = [p[0] for p in pairs], [p[1] for p in pairs]
        met = "met" if max(effect) <= TARGET_S else "MISSED"
        table.add_row(verb, f"{statistics.median(effect):.2f} / {max(effect):.2f} s",
                      f"{statistics.median(wall):.2f} / {max(wall):.2f} s", f"{TARGET_S:.0f} s: {met}")  # fmt: skip
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
