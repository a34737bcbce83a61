"""`hivestack topology validate|schema`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from hivestack.cli.errors import FOUND_PROBLEM, OK
from hivestack.cli.input_file import regular_file
from hivestack.topology import Topology, TopologyError, load_topology
from hivestack.topology.printable import printable


def register(topology: argparse.ArgumentParser) -> None:
    verbs = topology.add_subparsers(dest="verb", required=True, metavar="VERB")
    validate = verbs.add_parser("validate", help="type-check a topology and apply the survivability rules")
    validate.add_argument("file", type=Path)
    validate.add_argument("--json", action="store_true", help="machine-readable result")
    validate.set_defaults(run=run_validate)
    schema = verbs.add_parser("schema", help="print the topology JSON Schema (for editors)")
    schema.set_defaults(run=run_schema)


def run_validate(args: argparse.Namespace, out: Console, err: Console) -> int:
    path = regular_file(args.file)
    try:
        loaded = load_topology(path)
    except TopologyError as e:
        if args.json:
            problems = [{"file": p.file, "path": p.path, "line": p.line, "message": p.message} for p in e.problems]
            # ASCII only: JSON escapes C0 controls but would pass C1 controls and bidirectional overrides through.
            out.print_json(json.dumps({"valid": False, "problems": problems}), ensure_ascii=True)
        for p in e.problems:
            err.print(f"error: {p}", markup=False, highlight=False, soft_wrap=True)
        return FOUND_PROBLEM
    t, hosts, nodes = loaded.topology, loaded.placement.hosts, loaded.placement.simulated_nodes
    summary = {
        "valid": True,
        "file": str(args.file),
        "name": t.name,
        "city": t.city,
        "datacenters": len(t.datacenters),
        "servers": len(hosts),
        "simulated_nodes": len(nodes),
        "cells": len(t.cells),
    }
    if args.json:
        out.print_json(json.dumps(summary), ensure_ascii=True)
    else:
        simulated = f", {len(nodes)} simulated Kubernetes nodes" if nodes else ""
        out.print(
            f"{printable(str(args.file))}: valid — {t.name} in {t.city}: {len(t.datacenters)} DCs, "
            f"{len(hosts)} servers{simulated}, {len(t.cells)} cells; survives the loss of any one DC",
            markup=False,
            highlight=False,
        )
    return OK


def run_schema(args: argparse.Namespace, out: Console, err: Console) -> int:
    schema = Topology.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Hivestack topology"
    print(json.dumps(schema, indent=2))
    return OK
