"""Cells on the lab: services, TLS, each cell's cluster, the routing matrix from every DC, GNS moves, idempotence.

Expectations come from the topology (through the same platform variables the playbooks read).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
import testinfra

from hivestack.ansible.platform_vars import platform_vars
from hivestack.engines import engine_for
from hivestack.topology.model import Role
from tests.conftest import ROOT
from tests.lab.conftest import ETCDCTL

pytestmark = pytest.mark.lab
DEADLINE_S = 90


@pytest.fixture(scope="module")
def platform(lab) -> dict[str, Any]:
    return platform_vars(lab.topology)


@pytest.fixture(scope="module")
def remote(lab):
    return {
        h.name: testinfra.get_host(f"ssh://root@{lab.address(h.name)}", ssh_config=str(lab.ssh_config))
        for h in lab.topology.placement.hosts
    }


@pytest.fixture(scope="module")
def shell(remote):
    return lambda host, command: remote[host].check_output(command)


@pytest.fixture(scope="module")
def engine(platform):
    return engine_for(platform["hivestack_db_engine"])


def in_core(lab, script: str, *args: str) -> Any:
    """Run a Python snippet inside the stack's core namespace (where the DCs are reachable); it prints JSON."""
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.outputs["lab"]["core_ns"], sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


REQUESTS = """
import json, sys, time, urllib.request, urllib.error
out = []
for url, body in json.loads(sys.argv[1]):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST")
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            out.append([r.status, json.loads(r.read() or b"{}"), time.monotonic() - start])
    except urllib.error.HTTPError as e:
        out.append([e.code, json.loads(e.read() or b"{}"), time.monotonic() - start])
print(json.dumps(out))
"""


def post_all(lab, calls: list[tuple[str, dict | None]]) -> list[tuple[int, dict, float]]:
    """(status, JSON body, seconds) per request, sent in order from the core namespace."""
    return [tuple(r) for r in in_core(lab, REQUESTS, json.dumps(calls))]


def gateway_url(gateway: dict) -> str:
    return f"http://{gateway['address']}:8080"


def wait_for_cells(engine, shell, platform) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        states = [engine.state(m, shell) for c in platform["hivestack_all_cells"] for m in engine.members(c)]
        if all(s.safe_to_write for s in states) or time.monotonic() > deadline:
            return
        time.sleep(0.5)


def test_services_are_running_and_enabled(lab, remote, platform):
    units_by_role = {
        Role.etcd: ["etcd"],
        Role.gateway: ["haproxy", "hivestack-gns-agent"],
        Role.app: [f"hivestack-ledger@{c['name']}" for c in platform["hivestack_all_cells"]],
    }
    for host in lab.topology.placement.hosts:
        units = [u for role in host.roles for u in units_by_role.get(role, [])]
        if Role.db in host.roles:
            units += [f"hivestack-galera{kind}@{cell}" for cell in host.cells for kind in ("", "-health")]
        if host.arch.machine == remote[host.name].check_output("uname -m") and host.arch.value == "amd64":
            units.append("nftables")
        for unit in units:
            service = remote[host.name].service(unit)
            assert service.is_running and service.is_enabled, f"{host.name}: {unit}"


def test_firewall_drops_what_the_ports_matrix_does_not_allow(lab, remote, platform):
    edge = next(h for h in lab.topology.placement.hosts if Role.gateway in h.roles)
    db = next(h for h in lab.topology.placement.hosts if Role.db in h.roles and h.dc == edge.dc)
    ports = next(c["ports"] for c in platform["hivestack_all_cells"] if c["name"] == db.cells[0])
    # Gateways reach database health endpoints; a database host never reaches a gateway's database frontend port.
    ok = remote[edge.name].run(f"timeout 3 bash -c 'exec 3<>/dev/tcp/{db.address}/{ports['db-health']}'")
    refused = remote[db.name].run(f"timeout 3 bash -c 'exec 3<>/dev/tcp/{edge.address}/{ports['gateway-db']}'")
    assert ok.rc == 0 and refused.rc != 0


@pytest.fixture(scope="module")
def secrets(lab) -> dict[str, str]:
    return lab.generated_secrets()


def test_plaintext_clients_are_refused(lab, remote, shell, platform, engine, secrets):
    cell = platform["hivestack_all_cells"][0]
    member = engine.members(cell)[0]
    # The password is an option file read from stdin: never on a command line (ps shows ssh's and the host shell's).
    password = secrets[f"{cell['name']} database admin"]
    login = f"[client]\npassword={password}\n"
    base = (
        f"mariadb --defaults-extra-file=/dev/stdin -h {member.address} -P {member.port} -u hivestack_admin"
        " -N -e 'SELECT 1'"
    )
    # The same credentials: refused in plaintext (REQUIRE SSL answers 1045 before require_secure_transport
    # would), accepted over TLS with the platform CA.
    plain = lab.ssh(member.host, f"{base} --skip-ssl", stdin=login)
    refused = "insecure transport" in plain.stderr or "ERROR 1045" in plain.stderr
    assert plain.returncode != 0 and refused, plain.stderr
    tls = lab.ssh(member.host, f"{base} --ssl --ssl-ca=/etc/hivestack/tls/ca.pem", stdin=login)
    assert tls.stdout.strip() == "1", tls.stderr
    assert engine.query(member, shell, "SELECT @@require_secure_transport") == [["1"]]
    etcd = platform["hivestack_etcd_members"][0]
    client_port = platform["hivestack_ports"]["etcd-client"]
    assert remote[etcd["name"]].run(f"etcdctl --endpoints=http://{etcd['address']}:{client_port} get x").rc != 0


def test_each_cell_has_every_member_in_the_primary_component_and_writes_at_home(lab, shell, platform, engine):
    wait_for_cells(engine, shell, platform)
    for cell in platform["hivestack_all_cells"]:
        members = engine.members(cell)
        states = [engine.state(m, shell) for m in members]
        assert all(s.in_quorum and s.synced and s.safe_to_write for s in states), states
        assert {s.group_size for s in states} == {len(members)}
        assert len({m.dc for m in members}) == len(members), "one member per DC"
        writer = engine.writer(cell, shell)
        assert writer is not None and writer.dc == cell["home"]


def test_every_gateway_routes_every_cell_and_writes_land_in_that_cells_database(lab, shell, platform, engine):
    cells = platform["hivestack_all_cells"]
    calls, expected = [], []
    for g, gateway in enumerate(platform["hivestack_gateways"]):
        for cell in cells:
            customer = cell["range_start"] + 100 + g
            calls.append((f"{gateway_url(gateway)}/v1/customers/{customer}/accounts", {"account": f"m{g}"}))
            expected.append((gateway, cell, customer))
    results = post_all(lab, calls)
    wrong = []
    for (gateway, cell, _customer), (status, body, _) in zip(expected, results, strict=True):
        assert status in (200, 201), (gateway["name"], cell["name"], status, body)
        home = engine.members(cell)[0].host
        if (body["cell"], body["dc"], body["db_member"]) != (cell["name"], gateway["dc"], home):
            wrong.append((gateway["name"], cell["name"], body))
    assert wrong == [], "wrong-cell or wrong-member answers"
    # Each write is in its own cell's database and in no other cell's.
    for cell in cells:
        member = engine.members(cell)[-1]  # a backup: replication is synchronous
        rows = engine.query(member, shell, "SELECT customer FROM ledger.accounts WHERE account LIKE 'm%'")
        found = {int(r[0]) for r in rows}
        for _, other, customer in expected:
            assert (customer in found) == (other["name"] == cell["name"]), (cell["name"], customer)


def test_unknown_and_malformed_requests(lab, platform):
    gateway = gateway_url(platform["hivestack_gateways"][0])
    space = lab.topology.topology.routing.space
    results = post_all(
        lab,
        [
            (f"{gateway}/v1/customers/{space}/accounts", {"account": "x"}),
            (f"{gateway}/v1/customers/not-a-number/accounts", {"account": "x"}),
            (f"{gateway}/v1/customers/1/accounts", {"wrong": "field"}),
        ],
    )
    assert [status for status, _, _ in results] == [404, 400, 400]


def test_all_dcs_serve_writes_at_the_same_time(lab, platform):
    targets = [f"{g['dc']}={gateway_url(g)}" for g in platform["hivestack_gateways"]]
    script = (
        "import sys, runpy; sys.argv = ['load'] + sys.argv[1:]; "
        "runpy.run_module('hivestack.ledger.load', run_name='__main__')"
    )
    summary = in_core(
        lab,
        script,
        *[arg for t in targets for arg in ("--target", t)],
        "--customers",
        f"0-{lab.topology.topology.routing.space - 1}",
        "--sample",
        "60",
        "--setup-accounts",
        "--workers",
        "2",
        "--duration",
        "4",
    )
    for target, stats in summary["targets"].items():
        assert stats["ok"] > 0 and stats["errors"] == {}, (target, stats)
        assert set(stats["dcs"]) == {target}, "answered by the ledger in the gateway's own DC"
    assert len(summary["targets"]) == len(platform["hivestack_gateways"])


def served_cell(lab, gateways: list[dict], customer: int) -> set[str]:
    results = post_all(
        lab, [(f"{gateway_url(g)}/v1/customers/{customer}/accounts", {"account": "g"}) for g in gateways]
    )
    return {body.get("cell", f"status {status}") for status, body, _ in results}


def test_moving_a_range_in_etcd_reroutes_every_gateway_without_a_reload(lab, remote, platform, secrets):
    first, second = platform["hivestack_all_cells"][:2]
    gateways = platform["hivestack_gateways"]
    etcd = platform["hivestack_etcd_members"][0]["name"]
    login = f"{secrets['etcd root user']}\n"
    prefix = "/hivestack/gns/ranges/"
    start, end = first["range_start"], first["range_end"]
    split = end - 100

    def entry(a: int, b: int, cell: str) -> str:
        return f"put {prefix}{a:010d} " + json.dumps({"start": a, "end": b, "cell": cell}, separators=(",", ":"))

    def txn(*requests: str) -> None:
        body = "\n".join(["", *requests, "", ""]) + "\n"
        proc = lab.ssh(etcd, f"{ETCDCTL} --user=root txn", stdin=login + body)
        assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr

    pids = {g["name"]: remote[g["name"]].check_output("systemctl show -p MainPID --value haproxy") for g in gateways}
    moved = end - 50
    txn(entry(start, split, first["name"]), entry(split, end, second["name"]))
    began = time.monotonic()
    try:
        while served_cell(lab, gateways, moved) != {second["name"]}:
            assert time.monotonic() - began < 10, "the move did not reach every gateway"
            time.sleep(0.05)
        print(f"range move visible at every gateway after {time.monotonic() - began:.2f} s")
    finally:
        txn(entry(start, end, first["name"]), f"del {prefix}{split:010d}")
    deadline = time.monotonic() + 10
    while served_cell(lab, gateways, moved) != {first["name"]}:
        assert time.monotonic() < deadline, "the range did not move back"
        time.sleep(0.05)
    assert pids == {
        g["name"]: remote[g["name"]].check_output("systemctl show -p MainPID --value haproxy") for g in gateways
    }, "HAProxy was restarted"


def test_running_the_cell_stages_again_changes_nothing(lab):
    stages = ("database", "gateway", "ledger")
    assert lab.rerun_stages(*stages) == dict.fromkeys(stages, 0)


def drain(remote, member, on: bool) -> None:
    """The engine's maintenance lever: its health endpoint refuses, so the gateways move the cell's writes."""
    path = f"/run/hivestack/drain-{member.cell}"
    remote[member.host].check_output(f"touch {path}" if on else f"rm -f {path}")


def write_until(lab, gateway: dict, customer: int, accept, what: str) -> tuple[int, dict, float]:
    deadline = time.monotonic() + 15
    while True:
        status, body, took = post_all(
            lab, [(f"{gateway_url(gateway)}/v1/customers/{customer}/accounts", {"account": "f"})]
        )[0]
        if accept(status, body):
            return status, body, took
        assert time.monotonic() < deadline, f"{what}: last answer {status} {body}"
        time.sleep(0.1)


def test_writes_follow_the_cells_order_and_return_home(lab, remote, platform, engine):
    cell = platform["hivestack_all_cells"][-1]
    home, backup = engine.members(cell)[:2]
    gateway = platform["hivestack_gateways"][0]
    customer = cell["range_start"] + 7
    drain(remote, home, True)
    try:
        write_until(lab, gateway, customer, lambda s, b: b.get("db_member") == backup.host, "writes to the backup")
    finally:
        drain(remote, home, False)
    write_until(lab, gateway, customer, lambda s, b: b.get("db_member") == home.host, "writes back home")


def test_a_cell_without_a_safe_member_answers_503_fast(lab, remote, platform, engine):
    cell = platform["hivestack_all_cells"][-1]
    members = engine.members(cell)
    gateway = platform["hivestack_gateways"][0]
    customer = cell["range_start"] + 8
    for m in members:
        drain(remote, m, True)
    try:
        _, body, took = write_until(lab, gateway, customer, lambda s, b: s == 503, "a 503 once no member is safe")
        # Refused at once (the gateway has no member to connect to), never a hang.
        assert "unavailable" in body["error"] and took < 1.5, (body, took)
    finally:
        for m in members:
            drain(remote, m, False)
    write_until(lab, gateway, customer, lambda s, b: s in (200, 201), "writes again after the drain")
