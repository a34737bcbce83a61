"""`hivestack drift` on the lab: clean when nothing changed; a hand-edited file, a stopped service, a node label,
an API server flag and a Kubernetes etcd member setting changed by hand and a host gone are each found and named;
exit codes 0 / 1 as docs/conventions.md defines them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import testinfra

from hivestack.ansible.platform_vars import platform_vars
from hivestack.drift import SOURCES
from hivestack.lab import hosts
from hivestack.topology.model import Role
from tests.lab.conftest import pulumi

pytestmark = [pytest.mark.lab, pytest.mark.full]  # make test-full
# On a control host, with the identity the roles themselves apply the platform's objects with.
KUBECTL = "/usr/local/lib/hivestack/kube/bin/kubectl --kubeconfig=/etc/hivestack/kube/apiserver/admin.kubeconfig"
# On a control host: (file, sed expression) changed by hand; each is put back from a copy kept beside /root.
APISERVER_UNIT = "/etc/systemd/system/hivestack-kube-apiserver.service"
KUBE_ETCD_SETTINGS = "/etc/default/hivestack-kube-etcd"
HAND_EDITS = {
    APISERVER_UNIT: "s/--anonymous-auth=false/--anonymous-auth=true/",
    KUBE_ETCD_SETTINGS: 's/^ETCD_HEARTBEAT_INTERVAL=.*/ETCD_HEARTBEAT_INTERVAL="999"/',
}


def drift(lab, *args: str) -> tuple[int, dict]:
    proc = lab.hivestack("drift", "--json", *args, check=False)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def test_drift_names_an_edited_file_a_stopped_service_and_a_relabelled_node_and_is_clean_otherwise(lab, tmp_path):
    # Each stage's check takes minutes on these 2 cores: the hand-made changes are looked for only in the stages
    # that own them, and one whole run after they are undone proves "clean otherwise" (none before the edits).
    edges = [h for h in lab.topology.placement.hosts if Role.gateway in h.roles and Role.app in h.roles]
    edited, stopped = edges[0], edges[1]
    control = next(h for h in lab.topology.placement.hosts if Role.k8s_control in h.roles)
    cell = lab.topology.topology.cells[0].name
    remote = {h.name: testinfra.get_host(f"ssh://root@{lab.address(h.name)}", ssh_config=str(lab.ssh_config))
              for h in (edited, stopped, control)}  # fmt: skip
    remote[edited.name].check_output("echo '# edited by hand' >> /etc/haproxy/haproxy.cfg")
    remote[stopped.name].check_output(f"systemctl stop hivestack-ledger@{cell}")
    for path, edit in HAND_EDITS.items():
        backup = f"/root/{path.replace('/', '_')}.drift-test"
        changed = f"cp -p {path} {backup} && sed -i '{edit}' {path} && ! cmp -s {path} {backup}"
        remote[control.name].check_output(changed)  # fails if the edit changed nothing
    node = lab.topology.placement.simulated_nodes[0]
    keeper = platform_vars(lab.topology)["hivestack_kwok_hosts"][node.dc]  # registers that DC's nodes

    def relabel(pool: str) -> None:
        proc = lab.ssh(keeper, f"{KUBECTL} label node {node.name} hivestack.io/pool={pool} --overwrite")
        assert proc.returncode == 0, proc.stderr

    relabel("changed-by-hand")
    try:
        junit = tmp_path / "drift.xml"
        only = ("gateway", "ledger", "kubernetes")
        rc, report = drift(lab, "--junit", str(junit), *(arg for source in only for arg in ("--only", source)))
        assert report["checked"] == [s for s in SOURCES if s in only], report["checked"]  # in SOURCES order
        found = {(d["source"], d["name"], d["detail"].split(" (")[0]) for d in report["drift"]}
        assert rc == 1 and report["status"] == "drifted"
        assert ("gateway", edited.name, "Write HAProxy's configuration") in found, found
        assert any(d["source"] == "gateway" and "/etc/haproxy/haproxy.cfg" in d["detail"] for d in report["drift"])
        assert ("ledger", stopped.name, "Run one ledger per cell") in found, found
        assert ("kubernetes", keeper, "Differs from nodes.yaml") in found, found
        assert any(d["source"] == "kubernetes" and d["detail"].endswith(f"Node..{node.name})") for d in report["drift"])
        for path in HAND_EDITS:
            assert any((d["source"], d["name"]) == ("kubernetes", control.name) and path in d["detail"]
                       for d in report["drift"]), (path, report["drift"])  # fmt: skip
        assert ET.parse(junit).getroot().get("failures") == "3"
    finally:
        remote[edited.name].check_output("sed -i '/^# edited by hand$/d' /etc/haproxy/haproxy.cfg")
        remote[stopped.name].check_output(f"systemctl start hivestack-ledger@{cell}")
        relabel(node.pool)
        for path in HAND_EDITS:
            backup = f"/root/{path.replace('/', '_')}.drift-test"
            remote[control.name].check_output(f"mv -f {backup} {path}")
        remote[control.name].check_output("systemctl daemon-reload")  # the unit file was touched on disk
    rc, report = drift(lab)
    assert (rc, report["status"], report["drift"]) == (0, "clean", []), report
    assert report["checked"] == list(SOURCES), report["checked"]


def test_drift_names_a_host_that_is_gone(lab):
    host = next(h.name for h in lab.topology.placement.hosts if Role.k8s_worker in h.roles)
    hosts.stop(lab.names, host)
    try:
        rc, report = drift(lab, "--only", "pulumi")  # the stages' view of a gone host is a unit test
        assert rc == 1 and {"source": "pulumi", "name": f"{host}-machine", "detail": "create"} in report["drift"]
    finally:
        # --refresh: drift's preview refreshed only in memory, so the state still lists the host as running.
        up = pulumi(
            "up", "--refresh", "--yes", "--stack", lab.stack, "--non-interactive", "--suppress-outputs",
            "--policy-pack", "policies",
        )  # fmt: skip
        # Pulumi's diagnostics (the provider's error) come before the summary: shown whole, not a tail.
        diagnostics = up.stdout[up.stdout.find("Diagnostics:") :] if "Diagnostics:" in up.stdout else up.stdout
        assert up.returncode == 0, diagnostics[-6000:] + up.stderr[-2000:]
    assert hosts.is_running(lab.names, host)
