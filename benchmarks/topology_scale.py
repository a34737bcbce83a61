"""Validate, plan and mocked program construction for the sample topology and 10x / 100x larger ones.

Prints a table; growth should stay close to linear (the `per 1k servers` columns roughly flat), and the sample
must validate and plan in under 2 s. Usage: `.venv/bin/python benchmarks/topology_scale.py [SCALE ...]`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pulumi
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_topology import render

from hivestack.plan import plan
from hivestack.topology import load_topology


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


def construct(path: Path) -> int:
    """Build the Platform under mocks and wait until every resource is registered; returns the resource count."""
    pulumi.runtime.set_mocks(_Mocks(), project="bench", stack="bench", preview=False)
    from hivestack.components import Platform, PlatformArgs

    count = 0

    @pulumi.runtime.test
    def run() -> pulumi.Output:
        nonlocal count
        p = Platform("bench", PlatformArgs(topology=load_topology(path)))
        children = [*p.hosts.values(), *p.cells.values(), *p.firewall, *p.secrets.values()]
        count = len(children) + len(p.datacenters) + 1
        return pulumi.Output.all(*[r.urn for r in children])

    run()
    return count


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main(scales: list[int]) -> None:
    sample_seconds = None
    table = Table(title="topology scale benchmark (seconds; per 1k servers in brackets)")
    for col in ("scale", "servers", "cells", "validate", "plan", "mocked program", "resources"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for scale in scales:
            path = Path(tmp) / f"x{scale}.yaml"
            path.write_text(render(scale))
            t_validate, loaded = timed(load_topology, path)
            t_plan, _ = timed(lambda p: plan(load_topology(p)), path)
            t_program, resources = timed(construct, path)
            if scale == 1:
                sample_seconds = t_validate + t_plan
            servers = len(loaded.placement.hosts)
            k = servers / 1000
            table.add_row(
                f"{scale}x",
                f"{servers:,}",
                f"{len(loaded.topology.cells):,}",
                f"{t_validate:.2f} ({t_validate / k:.3f})",
                f"{t_plan:.2f} ({t_plan / k:.3f})",
                f"{t_program:.1f} ({t_program / k:.2f})",
                f"{resources:,}",
            )
            Console(width=130).print(table) if scale == scales[-1] else None
    if sample_seconds is not None:
        print(f"sample validate + plan: {sample_seconds:.2f} s (target: under 2 s)")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 10, 100])
