"""The Kubernetes layer on the lab: the API through every DC's gateway, its own etcd, the simulated nodes, RBAC,
Secrets encrypted at rest, one leader per controller. That a second run of the stage changes nothing is checked
with the other stages' second run, in test_no_secrets_in_argv.py.

The worker nodes are simulated by kwok (no kubelet, no containers): what these tests say of nodes is what the
API says of them. Expectations come from the topology, through the same platform variables the playbooks read.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.utils import parse_quantity

from hivestack.ansible.platform_vars import platform_vars
from hivestack.topology.ports import BY_NAME
from hivestack.topology.trust import KUBE_API, kube_api_name

pytestmark = pytest.mark.lab
DEADLINE_S = 120
ETCD_TLS = "/etc/hivestack/tls/k8s-etcd-client/admin"
ETCDCTL = "/usr/local/lib/hivestack/kube/bin/etcdctl"
ETCD_AUTH = f"--cacert={ETCD_TLS}/ca.pem --cert={ETCD_TLS}/host.pem --key={ETCD_TLS}/host-key.pem"

# Through the kubernetes client, in the core namespace, once per context of the operator's kubeconfig (one per DC).
NODES_PER_CONTEXT = """
import json, sys
from kubernetes import client, config
out = {}
for context in json.loads(sys.argv[2]):
    api = client.CoreV1Api(config.new_client_from_config(config_file=sys.argv[1], context=context))
    out[context] = [
        {"name": n.metadata.name, "labels": n.metadata.labels, "capacity": n.status.capacity,
         "ready": next((c.status for c in n.status.conditions or [] if c.type == "Ready"), None)}
        for n in api.list_node().items
    ]
print(json.dumps(out))
"""

# A request with no client certificate, the API's CA and name checked: who is anonymous gets nothing.
ANONYMOUS = """
import json, socket, ssl, sys
tls = ssl.create_default_context(cadata=sys.argv[2])  # the API's CA, and its name (argv[3]) checked
request = (f"GET /api/v1/namespaces/kube-system/secrets HTTP/1.1\\r\\nHost: {sys.argv[3]}\\r\\n"
           "Connection: close\\r\\n\\r\\n")
out = []
for host, port in json.loads(sys.argv[1]):
    with socket.create_connection((host, port), timeout=10) as raw:
        with tls.wrap_socket(raw, server_hostname=sys.argv[3]) as conn:
            conn.sendall(request.encode())
            out.append(int(conn.recv(64).split()[1]))
print(json.dumps(out))
"""

SECRET_ROUNDTRIP = """
import json, sys
from kubernetes import client, config
api = client.CoreV1Api(config.new_client_from_config(config_file=sys.argv[1]))
body = client.V1Secret(metadata=client.V1ObjectMeta(name=sys.argv[2]), string_data={"value": sys.argv[3]})
api.create_namespaced_secret("default", body)
print(json.dumps("created"))
"""

LEASES = """
import json, sys
from kubernetes import client, config
api = client.CoordinationV1Api(config.new_client_from_config(config_file=sys.argv[1]))
print(json.dumps({n: api.read_namespaced_lease(n, "kube-system").spec.holder_identity
                  for n in ("kube-controller-manager", "kube-scheduler")}))
"""


@pytest.fixture(scope="module")
def platform(lab) -> dict[str, Any]:
    return platform_vars(lab.topology)


@pytest.fixture(scope="module")
def kubeconfig(lab, tmp_path_factory) -> Path:
    """The operator's kubeconfig, written by the CLI verb an operator would use."""
    path = tmp_path_factory.mktemp("kube") / "config"
    lab.hivestack("kubeconfig", "--output", str(path))
    assert path.stat().st_mode & 0o777 == 0o600
    return path


def contexts(kubeconfig: Path) -> list[str]:
    return [c["name"] for c in yaml.safe_load(kubeconfig.read_text())["contexts"]]


def nodes_by_context(lab, kubeconfig: Path) -> dict[str, list[dict[str, Any]]]:
    return lab.in_core(NODES_PER_CONTEXT, str(kubeconfig), json.dumps(contexts(kubeconfig)))


def test_the_api_answers_through_every_dcs_gateway(lab, kubeconfig, platform):
    dcs = sorted({g["dc"] for g in platform["hivestack_gateways"]})
    assert sorted(contexts(kubeconfig)) == sorted(f"{lab.topology.topology.name}-{dc}" for dc in dcs)
    seen = nodes_by_context(lab, kubeconfig)
    # Every gateway shows the same cluster: the same nodes, whichever DC's API server answered.
    assert len({json.dumps(sorted(n["name"] for n in nodes)) for nodes in seen.values()}) == 1, seen


def test_kubernetes_etcd_has_one_healthy_member_per_dc(lab, platform):
    control = platform["hivestack_k8s_control"]
    port = platform["hivestack_ports"]["kube-etcd-client"]
    endpoints = ",".join(f"https://{m['address']}:{port}" for m in control)
    flags = f"--endpoints={endpoints} {ETCD_AUTH}"
    host = control[0]["name"]
    members = json.loads(lab.ssh(host, f"{ETCDCTL} {flags} member list -w json").stdout)["members"]
    assert sorted(m["name"] for m in members) == sorted(m["name"] for m in control)
    assert len({m["dc"] for m in control}) == len(control), "one member per DC"
    health = json.loads(lab.ssh(host, f"{ETCDCTL} {flags} endpoint health -w json").stdout)
    assert [h for h in health if not h["health"]] == [], health
    # Not the GNS cluster: its own members, on its own ports.
    assert all(f":{port}" in url for m in members for url in m["clientURLs"])


def test_every_simulated_node_is_ready_with_the_topologys_labels_and_capacity(lab, kubeconfig):
    expected = {n.name: n for n in lab.topology.placement.simulated_nodes}
    city = lab.topology.topology.city
    deadline = time.monotonic() + DEADLINE_S
    while True:
        nodes = {n["name"]: n for n in next(iter(nodes_by_context(lab, kubeconfig).values()))}
        # Awaited: every node the topology simulates registered and Ready (kwok registers them one by one).
        if set(nodes) == set(expected) and all(n["ready"] == "True" for n in nodes.values()):
            break
        unready = sorted(set(expected) - {name for name, n in nodes.items() if n["ready"] == "True"})
        assert time.monotonic() < deadline, f"nodes not registered and Ready after {DEADLINE_S} s: {unready}"
        time.sleep(1)
    assert sorted(nodes) == sorted(expected)
    for name, node in nodes.items():
        want = expected[name]
        assert want.labels(city).items() <= node["labels"].items(), name
        assert node["capacity"]["cpu"] == str(want.cpu)
        assert node["capacity"]["pods"] == str(want.pods)
        # The API writes a quantity in its own canonical form (32768Mi comes back as 32Gi): compared as bytes.
        assert parse_quantity(node["capacity"]["memory"]) == int(want.memory_gb * 1024) * 2**20


def test_rbac_denies_an_anonymous_client(lab, platform):
    port = BY_NAME["gateway-kube-api"].port
    gateways = [(g["address"], port) for g in platform["hivestack_gateways"]]
    statuses = lab.in_core(ANONYMOUS, json.dumps(gateways), lab.outputs["ca_certs"][KUBE_API],
                           kube_api_name(lab.topology.topology.name))  # fmt: skip
    assert statuses == [401] * len(gateways)


def test_secrets_are_encrypted_in_etcd(lab, kubeconfig, platform):
    name, value = f"probe-{int(time.time())}", f"plaintext-{time.monotonic_ns()}"
    lab.in_core(SECRET_ROUNDTRIP, str(kubeconfig), name, value)
    member = platform["hivestack_k8s_control"][0]
    port = platform["hivestack_ports"]["kube-etcd-client"]
    get = f"{ETCDCTL} --endpoints=https://{member['address']}:{port} {ETCD_AUTH} get /registry/secrets/default/{name}"
    raw = lab.ssh(member["name"], f"{get} --print-value-only | head -c 21").stdout
    assert raw.startswith("k8s:enc:secretbox:v1:"), raw
    # The value itself appears nowhere in what etcd keeps (grep -c prints 0 and exits 1 when it finds nothing).
    assert lab.ssh(member["name"], f"{get} | grep -a -c {value}").stdout.strip() == "0"


def test_controller_manager_and_scheduler_have_one_leader_each(lab, kubeconfig, platform):
    control = {m["name"] for m in platform["hivestack_k8s_control"]}
    holders = lab.in_core(LEASES, str(kubeconfig))
    # A holder identity is "<hostname>_<uuid>": exactly one control host holds each lease.
    assert {name: holder.split("_")[0] in control for name, holder in holders.items()} == {
        "kube-controller-manager": True,
        "kube-scheduler": True,
    }, holders
