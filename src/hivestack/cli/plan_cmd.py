"""`hivestack plan FILE`: capacity with one DC lost, headroom, and cost per account."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hivestack.cli.errors import FOUND_PROBLEM, OK
from hivestack.cli.input_file import regular_file
from hivestack.plan import Plan, plan
from hivestack.topology import TopologyError, load_topology


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable plan")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    path = regular_file(args.file)
    try:
        result = plan(load_topology(path))
    except TopologyError as e:
        for p in e.problems:
            err.print(f"error: {p}", markup=False, highlight=False, soft_wrap=True)
        return FOUND_PROBLEM
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        render(result, out)
    return OK


def render(result: Plan, out: Console) -> None:
    cur = result.currency
    pools = Table(title=f"{result.topology}: servers per pool (peak {result.peak_tps:,.0f} TPS, any one DC lost)")
    for col in ("DC", "pool", "roles", "arch", "servers", "needed", "basis", "headroom", f"{cur}/year"):
        pools.add_column(col, justify="right" if col in ("servers", "needed", "headroom", f"{cur}/year") else "left")
    for p in result.pools:
        pools.add_row(
            p.dc,
            p.pool,
            ",".join(p.roles),
            p.arch,
            str(p.servers),
            str(p.needed),
            p.basis,
            f"{p.headroom_pct:.0f}%",
            f"{p.cost_year:,.0f}",
        )
    out.print(pools)
    dcs = Table(title="per data center")
    for col in ("DC", "site", "servers", "needed", "cores", f"{cur}/year"):
        dcs.add_column(col, justify="left" if col in ("DC", "site") else "right")
    for d in result.dcs:
        dcs.add_row(
            d.dc,
            "remote DR" if d.remote else "same city",
            str(d.servers),
            str(d.needed),
            f"{d.cores:,}",
            f"{d.cost_year:,.0f}",
        )
    out.print(dcs)
    ref = result.reference
    summary = Table(title="cost and scale beside the yardstick")
    for col in ("", "peak-day transactions", "accounts", "servers", f"IT cost per account-year ({cur})"):
        summary.add_column(col, justify="left" if not col else "right")
    summary.add_row(
        result.topology,
        f"{result.peak_transactions_per_day:,}",
        f"{result.accounts:,}",
        f"{result.servers:,}",
        f"{result.cost_per_account_year:.2f}",
    )
    summary.add_row(
        str(ref["name"]),
        f"{ref['peak_transactions_per_day']:,}",
        "",
        "",
        f"{ref['cost_per_account_year']:.2f}",
    )
    out.print(summary)
    out.print(
        "servers only: the reference figure also covers network, software, staff and facilities.",
        style="dim",
    )
