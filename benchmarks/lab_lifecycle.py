"""Lab lifecycle: hosts from zero to SSH-ready with a warm base, destroy time, idle memory per host, round trips.

Targets (issue: the lab): up < 60 s, destroy < 15 s, idle PSS per host < 60 MB; inside a DC a round trip under
1 ms, between two DCs the delayer's floor (twice the two DCs' one-way latency) plus under 1 ms, no ping lost.
Uses the `labpeer` stack, whose hosts are left unconfigured (`hivestack:configureHosts: false`), so this times the
hosts alone; do not run it while the test suite runs. Usage: `.venv/bin/python benchmarks/lab_lifecycle.py [--idle 20]`.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hivestack.lab import hosts, rootfs
from hivestack.lab.names import LabNames
from hivestack.topology import load_topology

ROOT = Path(__file__).resolve().parent.parent
STACK = "labpeer"
HIVESTACK = ROOT / ".venv" / "bin" / "hivestack"


def pss_mb(pids: list[int]) -> float:
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue  # exited meanwhile
    return total_kb / 1024


def ping(names: LabNames, src: str, dst_address: str, count: int = 100) -> tuple[float, float, int]:
    """(min, avg) round trip in ms and how many of `count` pings answered, from one host's namespace."""
    out = subprocess.run(
        ["ip", "netns", "exec", names.host_ns(src), "ping", "-n", "-q", "-c", str(count), "-i", "0.01", dst_address],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout
    received = int(out.split(" received")[0].rsplit(" ", 1)[1]) if " received" in out else 0
    if "rtt" not in out:
        return float("nan"), float("nan"), received
    low, avg = (float(v) for v in out.rsplit("=", 1)[1].split("/")[:2])
    return low, avg, received


def timed(*args: str) -> float:
    start = time.monotonic()
    subprocess.run([str(HIVESTACK), *args, "--stack", STACK], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=float, default=20, help="seconds to let hosts settle before measuring memory")
    args = parser.parse_args()
    loaded = load_topology(ROOT / "inventories" / "lab" / "topology.yaml")
    names = LabNames(STACK)
    start = time.monotonic()
    for arch in sorted({h.arch.value for h in loaded.placement.hosts}):
        rootfs.ensure_base(arch)
    warm_base = time.monotonic() - start
    subprocess.run([str(HIVESTACK), "lab", "down", "--stack", STACK], stdout=subprocess.DEVNULL, check=False)
    up = timed("lab", "up")
    time.sleep(args.idle)  # a measurement window, not a readiness wait: hosts are already SSH-ready
    memory = {h.name: pss_mb(hosts.cgroup_pids(names, h.name)) for h in loaded.placement.hosts}
    address = {h.name: str(h.address) for h in loaded.placement.hosts}
    latency = {dc.name: dc.latency_ms for dc in loaded.topology.datacenters}
    pairs = [("c-edge-1", "c-db-1", 0.0), ("a-edge-1", "b-edge-1", 2 * (latency["dc-a"] + latency["dc-b"]))]
    rtts = [(src, dst, floor, *ping(names, src, address[dst])) for src, dst, floor in pairs]
    down = timed("lab", "down")

    table = Table(title=f"lab lifecycle ({len(memory)} hosts, stack {STACK})")
    for col in ("measure", "value", "target"):
        table.add_column(col)
    table.add_row("base root filesystems (warm)", f"{warm_base:.2f} s", "")
    table.add_row("lab up: zero to every host SSH-ready", f"{up:.1f} s", "< 60 s")
    table.add_row("lab down: destroy everything", f"{down:.1f} s", "< 15 s")
    for host, mb in memory.items():
        arch = next(h.arch.value for h in loaded.placement.hosts if h.name == host)
        table.add_row(f"idle PSS {host} ({arch})", f"{mb:.1f} MB", "< 60 MB")
    for src, dst, floor, low, avg, received in rtts:
        table.add_row(
            f"round trip {src} -> {dst} (min / avg, answered)",
            f"{low:.2f} / {avg:.2f} ms, {received}/100",
            f">= {floor:.1f} and < {floor + 1:.1f} ms, 100/100",
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
