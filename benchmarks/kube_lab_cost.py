"""What the Kubernetes control plane costs on a running lab: memory (PSS) and CPU of each of its processes per host.

Issue (Kubernetes step 1): the control plane's memory and CPU on the lab, printed by a benchmark. Every process of
the stack's hosts whose program lives under the control plane's directory is counted (its etcd, the API server,
controller-manager, scheduler and the kwok controllers that simulate the nodes; the nodes are simulated, so no
kubelet or container is in these figures). CPU is the share of one core each used over `--interval` seconds of an
otherwise idle lab; the hosts' other processes are summed for comparison. Needs the stack up (`make up`); do not run
it while the test suite runs. Usage: `.venv/bin/python benchmarks/kube_lab_cost.py [--stack lab] [--interval 30]`.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

from lab_lifecycle import pss_mb
from rich.console import Console
from rich.table import Table

from hivestack.lab import hosts
from hivestack.lab.names import LabNames

KUBE_BIN = "/usr/local/lib/hivestack/kube/bin/"
TICK = os.sysconf("SC_CLK_TCK")


def program(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return None


def cpu_ticks(pid: int) -> int | None:
    """User and system CPU ticks of a process (None: it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stack", default="lab")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds over which CPU is averaged")
    args = parser.parse_args()
    names = LabNames(args.stack)
    where: dict[int, tuple[str, str]] = {}  # pid -> (host, component, or "other")
    for pid in hosts.stack_pids(names):
        host, exe = hosts.host_of(names, pid), program(pid)
        if host and exe is not None:
            where[pid] = (host, exe.removeprefix(KUBE_BIN) if exe.startswith(KUBE_BIN) else "other")
    if not any(component != "other" for _, component in where.values()):
        raise SystemExit(f"stack {args.stack}: no control-plane process found (is it up, with `kubernetes`?)")
    before = {pid: cpu_ticks(pid) for pid in where}
    time.sleep(args.interval)  # the measurement window itself, not a wait for readiness
    cpu: dict[tuple[str, str], float] = defaultdict(float)
    memory: dict[tuple[str, str], float] = defaultdict(float)
    for pid, key in where.items():
        start, end = before[pid], cpu_ticks(pid)
        if start is None or end is None:
            continue  # came and went within the window (an SSH session, a probe): counted nowhere
        cpu[key] += (end - start) / TICK / args.interval * 100
        memory[key] += pss_mb([pid])

    table = Table(title=f"Kubernetes control plane on lab stack {args.stack} (simulated nodes), {args.interval:.0f} s")
    for col in ("host", "process", "PSS MB", "CPU % of a core"):
        table.add_column(col)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for host, component in sorted(memory, key=lambda k: (k[0], k[1] == "other", k[1])):
        key = (host, component)
        table.add_row(host, component, f"{memory[key]:.0f}", f"{cpu[key]:.1f}")
        group = "other processes" if component == "other" else "control plane"
        totals[group][0] += memory[key]
        totals[group][1] += cpu[key]
    for group, (mb, pct) in totals.items():
        table.add_row("all hosts", group, f"{mb:.0f}", f"{pct:.1f}", style="bold")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
