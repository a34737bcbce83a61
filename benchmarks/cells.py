"""Cells on the lab: `pulumi up` from zero to serving, a no-op `up`, gateway overhead, writes/s from every DC, and
how fast a gateway answers 503 for a cell with no safe member (target 1.5 s; the lab test checks only the answer).

Everything goes over HTTPS, verified as customers and gateways verify it. Gateway overhead runs the load client on
an edge host against its own gateway's front door and straight against the ledger of cell 0 on the same host (with
the gateway's client certificate, as HAProxy calls it), so both paths share everything but the hop through HAProxy:
its TLS termination, routing and its own TLS to the ledger. The all-DCs run drives every gateway at once from the
lab's core namespace. Uses the `lab` stack by default (it is destroyed and rebuilt); do not point it at `labtest`
while the test suite runs.
The 503 measure drains every member of the last cell (the engine's maintenance lever, as the lab test does), then
writes through the first gateway every 50 ms from the core namespace: it reports the time from the last member
drained to the first 503, and from the home member's drain lifted to the first write accepted again (upper bounds:
the probe's start-up counts).
Usage: `.venv/bin/python benchmarks/cells.py [--stack lab] [--duration 10] [--keep] [--runs 5]`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hivestack.ansible.platform_vars import platform_vars
from hivestack.engines import engine_for
from hivestack.topology import load_topology
from hivestack.topology.ports import BY_NAME
from hivestack.topology.trust import GATEWAY

ROOT = Path(__file__).resolve().parent.parent
HIVESTACK = ROOT / ".venv" / "bin" / "hivestack"
LOAD = ROOT / "src" / "hivestack" / "ledger" / "load.py"
SERVING_DEADLINE_S = 120
FRONT_DOOR = BY_NAME["gateway-https"].port
# On an edge host (see playbooks/roles/gateway/defaults/main.yml): the CA its customers check it with, and the
# identity HAProxy presents to ledgers, with the CA it checks them with.
EDGE_GATEWAY_CA = "/etc/hivestack/tls/gateway/frontend/ca.pem"
EDGE_LEDGER_CLIENT = "/etc/hivestack/tls/ledger/gateway"
SWITCH_DEADLINE_S = 30
# Writes one customer's account through a gateway every 50 ms until the answer's status is argv[4] (or, with
# "2xx", any success); prints the wall-clock time of that answer (the clock is shared with the benchmark's process).
PROBE = """
import json, ssl, sys, time, urllib.error, urllib.request
url, ca, deadline, want = sys.argv[1], sys.argv[2], time.time() + float(sys.argv[3]), sys.argv[4]
tls = ssl.create_default_context(cafile=ca)
status = None
while time.time() < deadline:
    req = urllib.request.Request(url, data=json.dumps({"account": "bench"}).encode(), method="POST")
    try:
        status = urllib.request.urlopen(req, context=tls, timeout=5).status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError:
        status = 0
    if str(status) == want or (want == "2xx" and 200 <= status < 300):
        print(time.time())
        sys.exit(0)
    time.sleep(0.05)
sys.exit(f"no {want} answer within the deadline; last status {status}")
"""


def pulumi(stack: str, *args: str) -> str:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "pulumi"), *args, "--stack", stack], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"pulumi {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return proc.stdout


def in_core(core_ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", core_ns, *argv], capture_output=True, text=True, check=False)


def load_summary(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    if proc.returncode != 0:
        sys.exit(f"load client failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def gateway_ca(stack: str, directory: Path) -> str:
    """The gateways' CA (a public stack output) in a file the load client reads."""
    path = directory / "gateway-ca.pem"
    path.write_text(json.loads(pulumi(stack, "stack", "output", "ca_certs", "--json"))[GATEWAY])
    return str(path)


def front_door(gateway: dict) -> str:
    return f"https://{gateway['address']}:{FRONT_DOOR}"


def serving(core_ns: str, gateways: list[dict], customer: int, ca_file: str) -> bool:
    """Every gateway answers a write for `customer` with 2xx."""
    for g in gateways:
        probe = in_core(
            core_ns,
            sys.executable,
            str(LOAD),
            "--ca-file",
            ca_file,
            "--target",
            f"{g['dc']}={front_door(g)}",
            "--customers",
            f"{customer}-{customer}",
            "--setup-accounts",
            "--workers",
            "1",
            "--duration",
            "0.2",
        )
        if probe.returncode != 0 or json.loads(probe.stdout)["total"]["errors"]:
            return False
    return True


def switch_times(lab: dict, variables: dict[str, Any], ca_file: str, runs: int) -> list[tuple[float, float]]:
    """(seconds from the last member drained to the first 503, from the home member's drain lifted to the first
    2xx) per run."""
    cell = variables["hivestack_all_cells"][-1]
    members = engine_for(variables["hivestack_db_engine"]).members(cell)
    url = f"{front_door(variables['hivestack_gateways'][0])}/v1/customers/{cell['range_start'] + 9}/accounts"
    marker = f"/run/hivestack/drain-{cell['name']}"

    def on_members(command: str, which: list) -> float:
        """Run the command on these members in turn; when the last one was done."""
        for m in which:
            proc = in_core(lab["core_ns"], *ssh_to(lab, m.address), command)
            if proc.returncode != 0:
                sys.exit(f"{command} on {m.host} failed: {proc.stderr[-500:]}")
        return time.time()

    def until(want: str, command: str, which: list) -> float:
        """Seconds from the command done on these members to the first `want` answer. The probe starts once the
        change is made, so an answer of the moment before it (a write the home member's drain cut short answers 503
        while a backup still takes over) is never taken; its start-up counts: an upper bound."""
        changed = on_members(command, which)
        probe = subprocess.run(
            ["ip", "netns", "exec", lab["core_ns"], sys.executable, "-c", PROBE, url, ca_file,
             str(SWITCH_DEADLINE_S), want],
            capture_output=True, text=True, timeout=SWITCH_DEADLINE_S + 10, check=False,
        )  # fmt: skip
        if probe.returncode != 0:
            on_members(f"rm -f {marker}", members)
            sys.exit(f"waiting for {want} after `{command}`: {probe.stderr.strip()}")
        return float(probe.stdout) - changed

    times = []
    for _ in range(runs):
        # From the last member drained (a member left is safe), and from the home member lifted (it is safe again).
        drained = until("503", f"touch {marker}", members)
        lifted = until("2xx", f"rm -f {marker}", members[:1])
        on_members(f"rm -f {marker}", members[1:])
        times.append((drained, lifted))
    return times


def ssh_to(lab: dict, address: str) -> list[str]:
    return ["ssh", "-i", lab["ssh_key_file"], "-o", "StrictHostKeyChecking=yes", "-o",
            f"UserKnownHostsFile={lab['known_hosts_file']}", "-o", "LogLevel=ERROR", f"root@{address}"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stack", default="lab")
    parser.add_argument("--duration", type=float, default=10, help="seconds per load run")
    parser.add_argument("--workers", type=int, default=4, help="per target")
    parser.add_argument("--keep", action="store_true", help="reuse a running stack: skip the zero-to-serving run")
    parser.add_argument("--runs", type=int, default=5, help="drain/undrain rounds for the 503 measure")
    args = parser.parse_args()
    loaded = load_topology(ROOT / "inventories" / "lab" / "topology.yaml")
    variables = platform_vars(loaded)
    gateways = variables["hivestack_gateways"]
    first_cell = variables["hivestack_all_cells"][0]
    rows: list[tuple[str, str]] = []
    scratch = tempfile.TemporaryDirectory(prefix="hivestack-cells-")  # removed when the run ends

    if not args.keep:
        subprocess.run([str(HIVESTACK), "lab", "down", "--stack", args.stack], stdout=subprocess.DEVNULL, check=False)
        start = time.monotonic()
        subprocess.run([str(HIVESTACK), "lab", "up", "--stack", args.stack], stdout=subprocess.DEVNULL, check=True)
        core_ns = json.loads(pulumi(args.stack, "stack", "output", "lab", "--json"))["core_ns"]
        ca_file = gateway_ca(args.stack, Path(scratch.name))
        deadline = time.monotonic() + SERVING_DEADLINE_S
        while not serving(core_ns, gateways, first_cell["range_start"], ca_file):
            if time.monotonic() > deadline:
                sys.exit("pulumi up finished but the platform does not serve")
            time.sleep(0.5)
        rows.append(("pulumi up: zero to serving (hosts, 5 playbook stages, first write from every DC)",
                     f"{time.monotonic() - start:.0f} s"))  # fmt: skip
    lab = json.loads(pulumi(args.stack, "stack", "output", "lab", "--json"))
    core_ns = lab["core_ns"]
    ca_file = gateway_ca(args.stack, Path(scratch.name))

    start = time.monotonic()
    out = pulumi(args.stack, "up", "--yes", "--non-interactive", "--policy-pack", "policies")
    unchanged = next((line.strip() for line in out.splitlines() if "unchanged" in line), "?")
    rows.append(("pulumi up with no change", f"{time.monotonic() - start:.1f} s ({unchanged})"))

    times = switch_times(lab, variables, ca_file, args.runs)
    for label, values in (("no safe member: drained to 503 (target 1.5 s)", [t[0] for t in times]),
                          ("home member lifted: to the first write accepted", [t[1] for t in times])):  # fmt: skip
        ordered = sorted(values)
        rows.append((f"{label}: min / median / max of {len(ordered)}",
                     f"{ordered[0]:.2f} / {ordered[len(ordered) // 2]:.2f} / {ordered[-1]:.2f} s"))  # fmt: skip

    # Gateway overhead, measured on the edge host of the first cell's home DC.
    edge = next(g for g in gateways if g["dc"] == first_cell["home"])
    ssh = ssh_to(lab, edge["address"])
    subprocess.run(["ip", "netns", "exec", core_ns, *ssh, "cat > /tmp/hivestack-load.py"], input=LOAD.read_text(),
                   text=True, check=True)  # fmt: skip
    customers = f"{first_cell['range_start']}-{first_cell['range_end'] - 1}"
    paths = {  # the host's own address: its certificates name no loopback address
        "through the gateway (HTTPS)": f"--target x={front_door(edge)} --ca-file {EDGE_GATEWAY_CA}",
        "straight to the ledger (HTTPS)": (
            f"--target x=https://{edge['address']}:{first_cell['ports']['ledger-http']} "
            f"--ca-file {EDGE_LEDGER_CLIENT}/ca.pem --cert-file {EDGE_LEDGER_CLIENT}/host-bundle.pem"
        ),
    }
    for label, target in paths.items():
        summary = load_summary(
            in_core(core_ns, *ssh, f"python3 /tmp/hivestack-load.py {target} --customers {customers} "
                    f"--sample 200 --setup-accounts --workers {args.workers} --duration {args.duration}")
        )["total"]  # fmt: skip
        rows.append((f"{edge['name']} {label}: p50 / p99 / throughput",
                     f"{summary['p50_ms']:.1f} / {summary['p99_ms']:.1f} ms / {summary['ok_rps']:.0f} writes/s"
                     f" ({summary['count'] - summary['ok']} errors)"))  # fmt: skip

    targets = [arg for g in gateways for arg in ("--target", f"{g['dc']}={front_door(g)}")]
    space = loaded.topology.routing.space
    everywhere = load_summary(
        in_core(core_ns, sys.executable, str(LOAD), *targets, "--ca-file", ca_file, "--customers", f"0-{space - 1}",
                "--sample", "600", "--setup-accounts", "--workers", str(args.workers), "--duration", str(args.duration))
    )  # fmt: skip
    for dc, stats in everywhere["targets"].items():
        rows.append((f"all DCs at once, via the {dc} gateway: writes/s (p50 / p99)",
                     f"{stats['ok_rps']:.0f} ({stats['p50_ms']:.1f} / {stats['p99_ms']:.1f} ms), "
                     f"{stats['count'] - stats['ok']} errors"))  # fmt: skip
    total = everywhere["total"]
    rows.append(("all DCs at once: total writes/s", f"{total['ok_rps']:.0f}"))

    table = Table(title=f"cells on the lab (stack {args.stack}, {args.workers} workers per target)")
    table.add_column("measure")
    table.add_column("value")
    for row in rows:
        table.add_row(*row)
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
