"""`hivestack lab up|down|clean|status|fault`: the embedded multi-DC lab."""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console
from rich.table import Table

from hivestack.ansible import STAGES
from hivestack.cli import project
from hivestack.cli.errors import CANNOT_RUN, FOUND_PROBLEM, OK, CannotRun
from hivestack.lab import cleanup, faults, hosts, network
from hivestack.lab.names import LabNames

if TYPE_CHECKING:
    from hivestack.topology import LoadedTopology

DEFAULT_STACK = "lab"
# Said of a stack whose network exists but whose last `up` stopped before making everything.
UNFINISHED = "(its last `up` did not finish: run `hivestack lab up --stack {stack}` again)"
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")  # what a host's state directory can be named after


def register(lab: argparse.ArgumentParser) -> None:
    verbs = lab.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, help_: str, run: Any) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help_)
        p.add_argument("--stack", default=DEFAULT_STACK, help=f"lab stack (default: {DEFAULT_STACK})")
        p.set_defaults(run=run)
        return p

    verb("up", "bring the lab up (pulumi up with the policy pack) and print where things are", run_up)
    verb("down", "destroy the lab stack: every process, mount, namespace and file it made", run_down)
    clean = verb("clean", "remove what a crashed or interrupted run left behind", run_clean)
    clean.add_argument("--all", action="store_true", help="every lab stack this machine has traces of")
    status = verb("status", "hosts, network and active faults", run_status)
    status.add_argument("--json", action="store_true")
    fault = verb("fault", "inject or restore a fault", run_fault)
    fault.add_argument("kind", choices=["cut", "partition", "gray", "restore", "stop", "kill", "start"])
    fault.add_argument("target", help="a DC name (cut, partition, gray, restore), a host name (stop, kill, start)")
    fault.add_argument("--loss", type=float, default=20.0, help="gray failure: percent of packets dropped")


def run_up(args: argparse.Namespace, out: Console, err: Console) -> int:
    project.topology_path(args.stack)  # fails early and clearly on an unknown stack
    project.select_stack(args.stack)
    _clear_stale_locks(args.stack, out)
    start, began = time.monotonic(), time.time()
    outputs = _outputs_if_up(args.stack)
    if outputs and _plans_nothing(args.stack):
        out.print("nothing to change: the preview (refresh and policy pack included) plans no operation")
    else:
        proc = project.pulumi("up", "--yes", "--refresh", "--policy-pack", "policies", "--stack", args.stack)
        if proc.returncode != 0:
            err.print(f"error: pulumi up of stack {args.stack!r} failed (exit {proc.returncode}); see above")
            return CANNOT_RUN
        outputs = project.stack_outputs(args.stack)
    out.print(f"lab stack {args.stack!r} up in {time.monotonic() - start:.0f} s", style="bold")
    _print_stages(stage_times(outputs.get("stage_times", {}), began), out)
    _print_where(args.stack, outputs, out)
    return OK


def _outputs_if_up(stack: str) -> dict[str, Any]:
    """The stack's outputs; empty for a stack never brought up."""
    try:
        return project.stack_outputs(stack)
    except CannotRun:
        return {}


def _plans_nothing(stack: str) -> bool:
    """Whether an `up` would change nothing, from the preview it would run first, run alone. A no-op `up` is then
    that one preview: the update would repeat the program, the refresh and the policy pack, twice the time. Anything
    else, a failure included, goes on to the `up`, which shows it."""
    proc = project.pulumi(
        "preview", "--refresh", "--expect-no-changes", "--policy-pack", "policies", "--non-interactive",
        "--stack", stack, capture=True,
    )  # fmt: skip
    return proc.returncode == 0


@dataclass(frozen=True)
class StageTime:
    stage: str
    seconds: float
    started_s: float | None  # after the `up` began; None when the stage did not run in it (nothing changed)


def stage_times(exported: dict[str, dict[str, float]], began: float) -> list[StageTime]:
    """The stack's `stage_times` output read against the wall-clock time this `up` began, in `STAGES` order (the
    output's keys come back sorted by name)."""
    rows = []
    for stage, t in sorted(exported.items(), key=lambda item: list(STAGES).index(item[0]) if item[0] in STAGES else 99):
        ran = t.get("finished_at") is not None and t["finished_at"] >= began
        seconds = float(t.get("seconds") or 0.0)
        rows.append(StageTime(stage, seconds, t["finished_at"] - seconds - began if ran else None))
    return rows


def _print_stages(rows: list[StageTime], out: Console) -> None:
    if not rows:
        return
    table = Table(title="playbook stages (side by side where their spans overlap)")
    for col in ("stage", "took", "from - to (s after the up began)"):
        table.add_column(col)
    for r in rows:
        if r.started_s is None:
            table.add_row(r.stage, "-", "unchanged: not run")
        else:
            table.add_row(r.stage, f"{r.seconds:.0f} s", f"{r.started_s:.0f} - {r.started_s + r.seconds:.0f}")
    out.print(table)


def _print_where(stack: str, outputs: dict[str, Any], out: Console) -> None:
    table = Table(title="hosts")
    for col in ("host", "DC", "address", "arch", "roles"):
        table.add_column(col)
    for name, h in sorted(outputs.get("inventory", {}).items()):
        table.add_row(name, h["dc"], h["address"], h["arch"], ",".join(h["roles"]))
    out.print(table)
    lab = outputs.get("lab")
    if lab:
        first = next(iter(sorted(outputs["inventory"].items())), None)
        out.print(f"management path: ip netns exec {lab['core_ns']} ... (management address {lab['mgmt']})")
        out.print(f"SSH key: {lab['ssh_key_file']}")
        if first:
            out.print(
                f"ssh: ip netns exec {lab['core_ns']} ssh -i {lab['ssh_key_file']} root@{first[1]['address']}",
                highlight=False,
            )
        out.print(f"inventory: HIVESTACK_STACK={stack} .venv/bin/ansible-inventory -i inventories/lab --graph")


def _clear_stale_locks(stack: str, out: Console) -> None:
    """A run that was killed leaves its lock behind, and Pulumi would refuse every later run: the next one goes on."""
    for lock in project.clear_stale_locks(stack):
        out.print(f"removed the lock of an interrupted run (pid {lock.pid}, {lock.timestamp}, gone): {lock.path}")


def run_down(args: argparse.Namespace, out: Console, err: Console) -> int:
    project.topology_path(args.stack)
    project.select_stack(args.stack)
    _clear_stale_locks(args.stack, out)
    proc = project.pulumi("destroy", "--yes", "--stack", args.stack)
    if proc.returncode != 0:
        err.print(f"error: pulumi destroy failed (exit {proc.returncode}); `hivestack lab clean` removes leftovers")
        return CANNOT_RUN
    # Whatever a failed create left that the state never knew of.
    done = cleanup.clean(project.root(), args.stack)
    if done.hosts or done.mounts or done.namespaces:
        out.print(f"also removed leftovers: {done.hosts} {done.mounts} {done.namespaces}")
    return OK


def run_clean(args: argparse.Namespace, out: Console, err: Console) -> int:
    done = cleanup.clean(project.root(), None if args.all else args.stack)
    out.print(
        f"removed: {len(done.hosts)} host(s) {done.hosts}, {len(done.mounts)} mount(s), "
        f"{len(done.namespaces)} stray namespace(s)"
    )
    return OK


def _load(stack: str) -> LoadedTopology:
    """The stack's topology, model and placement. Imported here: the model's libraries take seconds to import on a
    loaded machine, and the DC fault verbs do without them."""
    from hivestack.topology import load_topology

    return load_topology(project.topology_path(stack), survivability=False)


def _dc_names(stack: str) -> list[str]:
    """The stack's DCs in topology order (a DC's index names its router), read from the file without building the
    model: a fault is typed in the middle of a drill, on a loaded machine, and must land at once. A file this cannot
    read goes through the full loader, whose errors say where."""
    path = project.topology_path(stack)
    try:
        document = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        return [dc["name"] for dc in document["datacenters"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return [d.name for d in _load(stack).topology.datacenters]


def _dc_index(stack: str, names: LabNames, dc: str) -> int:
    dcs = _dc_names(stack)
    if dc not in dcs:
        raise CannotRun(f"unknown data center {dc!r} in stack {stack!r} (valid: {', '.join(dcs)})")
    index = dcs.index(dc)
    if index not in network.router_indexes(names):
        raise CannotRun(
            f"stack {stack!r} is partly made: {dc}'s router namespace is missing " + UNFINISHED.format(stack=stack)
        )
    return index


def _host_address(stack: str, host: str) -> str:
    """Where the host answers: the topology says, so a stack whose outputs were never written can still be served."""
    placed = {h.name: h for h in _load(stack).placement.hosts}
    if host not in placed:
        raise CannotRun(f"no host {host!r} in stack {stack!r}'s topology (valid: {', '.join(sorted(placed))})")
    return str(placed[host].address)


def run_fault(args: argparse.Namespace, out: Console, err: Console) -> int:
    names = LabNames(args.stack)
    if not network.network_exists(names):
        raise CannotRun(f"lab stack {args.stack!r} is not up (hivestack lab up --stack {args.stack})")
    kind, target = args.kind, args.target
    if kind in ("cut", "partition", "gray", "restore"):
        index = _dc_index(args.stack, names, target)
        {
            "cut": lambda: faults.cut_dc(names, index),
            "partition": lambda: faults.partition_dc(names, index),
            "gray": lambda: faults.gray_failure(names, index, args.loss),
            "restore": lambda: faults.restore_dc(names, index),
        }[kind]()
    else:
        root = project.root()
        # A host this stack made has its state directory: then stop and kill need nothing of the topology.
        if not (_HOST_NAME.fullmatch(target) and hosts.state_dir(root, args.stack, target).is_dir()):
            _host_address(args.stack, target)  # an unknown host: the error names the topology's hosts
            raise CannotRun(
                f"stack {args.stack!r} is partly made: host {target!r} was never created "
                + UNFINISHED.format(stack=args.stack)
            )
        if kind == "stop":
            hosts.stop(names, target)
        elif kind == "kill":
            hosts.kill(names, target)
        else:
            hosts.restart(names, root, target)
            hosts.wait_ready(network.mgmt_command(names), names, root, target, _host_address(args.stack, target))
    took = since_start()
    stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
    out.print(f"{kind} {target}: in effect at {stamp} UTC, {took:.2f} s after the command started", highlight=False)
    return OK


def since_start() -> float:
    """Seconds since this process was started (its exec, the interpreter's start-up included), from /proc: what an
    operator who typed the command waited for. Kernel ticks: 10 ms resolution."""
    starttime = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22, after comm
    return time.clock_gettime(time.CLOCK_BOOTTIME) - starttime / os.sysconf("SC_CLK_TCK")


def _host_state(root: Path, names: LabNames, host: str) -> str:
    if hosts.is_running(names, host):
        return "running"
    return "stopped" if hosts.state_dir(root, names.stack, host).is_dir() else "never created"


def run_status(args: argparse.Namespace, out: Console, err: Console) -> int:
    names = LabNames(args.stack)
    up = network.network_exists(names)
    topology = _load(args.stack)
    dcs = [dc.name for dc in topology.topology.datacenters]
    routers = set(network.router_indexes(names)) if up else set()
    state = {
        "stack": args.stack,
        "network": up,
        "routers_missing": [dc for i, dc in enumerate(dcs) if up and i not in routers],
        "hosts": {h.name: _host_state(project.root(), names, h.name) for h in topology.placement.hosts},
        "faults": {dcs[i]: kind for i, kind in faults.active_faults(names).items()} if up else {},
    }
    if args.json:
        print(json.dumps(state, indent=2))
    else:
        out.print(f"stack {args.stack}: network {'up' if up else 'down'}")
        if state["routers_missing"]:
            missing = ", ".join(state["routers_missing"])
            out.print(f"  partly made: no router for {missing} " + UNFINISHED.format(stack=args.stack), style="red")
        for host, host_state in state["hosts"].items():
            out.print(f"  {host}: {host_state}")
        for dc, kind in state["faults"].items():
            out.print(f"  fault: {dc} {kind}", style="red")
    healthy = up and not state["routers_missing"] and all(s == "running" for s in state["hosts"].values())
    return OK if healthy and not state["faults"] else FOUND_PROBLEM
