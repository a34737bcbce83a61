"""Validate, plan and mocked program construction for the sample topology and 10x / 100x larger ones.

A scale grows what the model allows (synthetic_topology.growth): the DCs up to 64, then the servers up to 100,000,
the cells up to 100; the table shows what each row holds and how many times the sample that is. Growth should stay
close to linear (the `per 1k servers` columns roughly flat), and the sample must validate and plan in under 2 s.

Building the mocked program costs about 5 s per 1,000 servers (Pulumi's SDK registering each resource), and grows
faster than the servers beyond a few thousand: Python's cyclic garbage collector walks the growing heap of
registered resources (measured 2026-12-02 at 8x: 48 s of CPU with it, 20 s with it disabled; at 20x it had not
finished after 200 s of CPU, at 100x not after 20 minutes with 6.5 GB resident). So by default it is built up to
10x only; `--program-max 100` builds it at every scale.
Usage: `.venv/bin/python benchmarks/topology_scale.py [--program-max SCALE] [SCALE ...]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import pulumi
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_topology import growth, render

from hivestack.plan import plan
from hivestack.topology import LoadedTopology, load_topology

# The committed sample is synthetic_topology's 1x (`python benchmarks/synthetic_topology.py 1` writes it).
SAMPLE = Path(__file__).resolve().parent.parent / "inventories" / "sample-sz" / "topology.yaml"


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


@dataclass(frozen=True)
class Sizes:
    """What a row of the table measured."""

    datacenters: int
    pools: int
    servers: int
    cells: int

    @classmethod
    def of(cls, loaded: LoadedTopology) -> Sizes:
        t = loaded.topology
        pools = sum(len(dc.pools) for dc in t.datacenters)
        return cls(len(t.datacenters), pools, len(loaded.placement.hosts), len(t.cells))

    def beside(self, sample: Sizes) -> list[str]:
        """Each size and how many times the sample's it is."""
        return [f"{n:,} ({n / base:.3g}x)" for n, base in zip(astuple(self), astuple(sample), strict=True)]


def main(scales: list[int], program_max: int) -> None:
    sample_seconds = None
    table = Table(
        title="topology scale benchmark (seconds; per 1k servers in brackets)",
        caption="each size beside how many times the sample's it is; the model allows at most 64 DCs, "
        "100,000 servers and 100 cells, and the load follows the cells",
    )
    for col in ("scale", "DCs", "pools", "servers", "cells", "validate", "plan", "mocked program", "resources"):
        table.add_column(col, justify="right")
    sample = Sizes.of(load_topology(SAMPLE))
    with tempfile.TemporaryDirectory() as tmp:
        for scale in scales:
            path = Path(tmp) / f"x{scale}.yaml"
            path.write_text(render(scale))
            t_validate, loaded = timed(load_topology, path)
            t_plan, _ = timed(lambda p: plan(load_topology(p)), path)
            if scale == 1:
                sample_seconds = t_validate + t_plan
            sizes = Sizes.of(loaded)
            assert sizes.servers == growth(scale).servers()  # the table reports what synthetic_topology meant
            k = sizes.servers / 1000
            if scale <= program_max:
                t_program, resources = timed(construct, path)
                program, count = f"{t_program:.1f} ({t_program / k:.2f})", f"{resources:,}"
            else:
                program, count = f"not built (over {program_max}x)", ""
            table.add_row(
                f"{scale}x",
                *sizes.beside(sample),
                f"{t_validate:.2f} ({t_validate / k:.3f})",
                f"{t_plan:.2f} ({t_plan / k:.3f})",
                program,
                count,
            )
    Console(width=160).print(table)
    if sample_seconds is not None:
        print(f"sample validate + plan: {sample_seconds:.2f} s (target: under 2 s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scales", nargs="*", type=int, default=[1, 10, 100], help="default: 1 10 100")
    parser.add_argument(
        "--program-max", type=int, default=10, help="largest scale whose mocked program is built (default 10)"
    )
    args = parser.parse_args()
    main(args.scales, args.program_max)
