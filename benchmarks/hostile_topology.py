"""Validating hostile topology files: each must be refused (or validated) in well under a second, with memory that
does not grow with what the file asks for. Prints a table: the time to the answer, the Python heap's peak while
validating (tracemalloc, in a second run so it does not slow the first) and the answer's first line.

Usage: `.venv/bin/python benchmarks/hostile_topology.py`.
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_topology import render, sample_shaped

from hivestack.topology import TopologyError, load_topology

ROOT = Path(__file__).resolve().parent.parent
LAB = (ROOT / "inventories" / "lab" / "topology.yaml").read_text()


def fifty_megabytes(path: Path) -> None:
    with path.open("w") as f:
        while f.tell() < 50 * 2**20:
            f.write(LAB)


def alias_bomb(path: Path) -> None:
    # Nine levels of nine aliases: 387 million strings once expanded, from under 1 KB.
    levels = ["a: &a [" + ", ".join(['"lol"'] * 9) + "]"]
    for below, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{below}"] * 9) + "]")
    path.write_text("\n".join(levels) + "\nname: *i\n")


def recursive_alias(path: Path) -> None:
    path.write_text("name: lab\ndatacenters: &dcs\n- *dcs\n")


def many_values(path: Path) -> None:
    path.write_text("name: lab\ncity: [" + "0," * 300_000 + "0]\n")


def huge_count(path: Path) -> None:
    path.write_text(
        LAB.replace(
            "c-worker, roles: [k8s-worker], arch: arm64, count: 1,",
            "c-worker, roles: [k8s-worker], arch: arm64, count: 1000000000,",
        )
    )


def sample(path: Path) -> None:
    path.write_text(render(1))


def sample_with_90x_servers(path: Path) -> None:
    """The largest kind of topology the model accepts: the sample's cells and DCs with about 93,000 servers."""
    doc = sample_shaped(1)
    doc["cells"] = [dict(c) for c in doc["cells"]]
    for i, dc in enumerate(doc["datacenters"]):
        dc["subnet"] = f"10.{64 + i}.0.0/16"
        dc["pools"] = [{**p, "count": p["count"] * (1 if "etcd" in p["roles"] else 90)} for p in dc["pools"]]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def largest_accepted(path: Path) -> None:
    """As large as the model allows: 64 DCs of 64 pools holding every role, 100 cells, 81,920 servers."""
    roles = "[etcd, db, gateway, app, storage, k8s-control, k8s-worker]"
    lines = [
        "name: largest\ncity: lab-city",
        "objectives: {rto_seconds: 3, rpo_writes: 0, peak_transactions_per_day: 2000000, accounts: 1000000, "
        "latency_budget_ms: 2}",
        "routing: {key: customer-id, space: 1000000}\ndatacenters:",
    ]
    for d in range(64):
        lines.append(f"- name: dc-{d:02d}\n  subnet: 10.{d}.0.0/16\n  pools:")
        lines.extend(
            f"  - {{name: p-{d:02d}-{p:02d}, roles: {roles}, arch: arm64, count: 20, cpu: 64, memory_gb: 256, "
            "unit_cost: 42000}"
            for p in range(64)
        )
    lines.append("cells:")
    lines.extend(
        f"- {{name: cell-{c:03d}, home: dc-{c % 64:02d}, replicas: [dc-{(c + 1) % 64:02d}, dc-{(c + 2) % 64:02d}], "
        f"range: {{start: {c * 10_000}, end: {(c + 1) * 10_000}}}, accounts: 10000}}"
        for c in range(100)
    )
    path.write_text("\n".join(lines) + "\n")


CASES: list[tuple[str, Callable[[Path], None]]] = [
    ("50 MB file", fifty_megabytes),
    ("alias bomb (1 KB, 387 million values)", alias_bomb),
    ("recursive alias", recursive_alias),
    ("300,000 values in 600 KB", many_values),
    ("count of 1,000,000,000 servers", huge_count),
    ("sample-sz (1,040 servers)", sample),
    ("sample-sz with 90x the servers", sample_with_90x_servers),
    ("largest the model accepts", largest_accepted),
]


def validate(path: Path) -> str:
    try:
        loaded = load_topology(path)
    except TopologyError as e:
        first = str(e.problems[0]).removeprefix(f"{path}:")
        more = f" (+{len(e.problems) - 1} more)" if len(e.problems) > 1 else ""
        return f"refused: {first}{more}"
    return f"valid: {len(loaded.placement.hosts):,} servers"


def main() -> None:
    table = Table(title="hostile topology files: validation time and peak Python heap")
    for col, justify in (("file", "left"), ("size", "right"), ("seconds", "right"), ("peak MB", "right")):
        table.add_column(col, justify=justify)
    table.add_column("answer")
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in CASES:
            path = Path(tmp) / "topology.yaml"
            write(path)
            start = time.perf_counter()
            answer = validate(path)
            seconds = time.perf_counter() - start
            tracemalloc.start()
            validate(path)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            size = path.stat().st_size
            table.add_row(
                name,
                f"{size / 2**20:.2f} MB" if size > 2**20 else f"{size / 1024:.1f} KB",
                f"{seconds:.3f}",
                f"{peak / 2**20:.1f}",
                Text(answer),  # not markup: paths hold [brackets]
            )
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
