"""The Kubernetes control plane at scale: 3 DCs x 300 simulated arm64 nodes, then 3,000 pods spread over them.

The nodes are simulated by kwok (no kubelet, no image pull, no container start): a pod is "Ready" when kwok's
pod-running stage says so, the moment it is bound. So these figures measure the control plane (etcd, the API
server, the scheduler, the controllers, the watch traffic of one kwok per DC) and nothing of a real node.

Everything runs on this machine's loopback, one process each: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and one kwok per DC managing only its DC's nodes (the lab's label selector). The PKI is a throwaway
one made by the platform's TLS code; TLS on every hop, RBAC with the roles' own rules for kwok, the roles' audit
policy and the flags that shape scale (tolerations, node monitoring); encryption at rest is left out (it touches
Secrets only, and the benchmark writes none). Binaries are the pinned ones setup links into .hivestack/bin.

Measured: time until every node is Ready; from the moment the Deployments are created, time until every pod is
bound, then Ready; the latency of a steady stream of small API writes (one ConfigMap patch every 100 ms) during
that time; the spread of each Deployment over the DCs; peak resident memory of every process.

Usage: `.venv/bin/python benchmarks/kube_scale.py [--dcs 3] [--nodes-per-dc 300] [--pods 3000]`. Do not run it
while the test suite or a lab bring-up runs: all share two cores.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import ssl
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import yaml
from kubernetes import client, config, watch
from rich.console import Console
from rich.table import Table

from hivestack.components.secret import SecretKind, generate, public_key_pem
from hivestack.components.tls import issue, make_ca
from hivestack.topology.trust import KUBE_KWOK

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".hivestack" / "bin"
ROLES = ROOT / "playbooks" / "roles"
CELLS = 3  # pods go in one Deployment per cell, as the platform's cells would run them
DEADLINE_S = 1800
PROBE_INTERVAL_S = 0.1
console = Console(width=110)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Identity:
    """A client or server certificate on disk."""

    cert: Path
    key: Path


@dataclass
class Pki:
    dir: Path
    ca: Path
    ca_pem: str = field(repr=False)
    ca_key_pem: str = field(repr=False)

    @classmethod
    def make(cls, directory: Path) -> Pki:
        ca_pem, ca_key_pem = make_ca("hivestack-bench-kube")
        (directory / "ca.pem").write_text(ca_pem)
        return cls(directory, directory / "ca.pem", ca_pem, ca_key_pem)

    def identity(self, name: str, usage: str, common_name: str, organizations: tuple[str, ...] = ()) -> Identity:
        subject = {
            "common_name": common_name,
            "dns": ["localhost"],
            "ips": ["127.0.0.1"],
            "usage": usage,
            "organizations": list(organizations),
        }
        issued = issue(self.ca_pem, self.ca_key_pem, subject)
        cert, key = self.dir / f"{name}.pem", self.dir / f"{name}-key.pem"
        cert.write_text(issued["cert"])
        key.write_text(issued["key"])
        key.chmod(0o600)
        return Identity(cert, key)

    def kubeconfig(self, name: str, server: str, who: Identity) -> Path:
        path = self.dir / f"{name}.kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "bench", "cluster": {"server": server, "certificate-authority": str(self.ca)}}
                    ],
                    "users": [
                        {"name": name, "user": {"client-certificate": str(who.cert), "client-key": str(who.key)}}
                    ],
                    "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": name}}],
                    "current-context": "bench",
                }
            )
        )
        path.chmod(0o600)
        return path


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited {self.popen.returncode}:\n{tail}")


class ControlPlane:
    """The processes, started in order and stopped by their own pids in reverse order."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.processes: list[Process] = []

    def start(self, name: str, argv: list[str]) -> Process:
        log = self.work / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def check_alive(self) -> None:
        for p in self.processes:
            p.check_alive()

    def stop(self) -> None:
        for p in reversed(self.processes):
            if p.popen.poll() is None:
                p.popen.terminate()
        for p in reversed(self.processes):
            try:
                p.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()


def poll(what: str, ready: Callable[[], bool], plane: ControlPlane, deadline_s: float = 120) -> float:
    """Seconds until `ready()`; fails with the log of a process that died meanwhile, or at the deadline."""
    start = time.monotonic()
    while not ready():
        plane.check_alive()
        if time.monotonic() - start > deadline_s:
            raise TimeoutError(f"{what}: not within {deadline_s:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - start


def render(template: Path, **values: str) -> str:
    return jinja2.Template(template.read_text(), undefined=jinja2.StrictUndefined).render(ansible_managed="", **values)


def start_control_plane(plane: ControlPlane, pki: Pki, dcs: list[str]) -> tuple[Path, str]:
    """etcd, the API server (ready), the controller-manager, the scheduler, one kwok per DC; the admin kubeconfig."""
    work = plane.work
    etcd_client, etcd_peer, api_port = free_port(), free_port(), free_port()
    etcd = pki.identity("etcd", "peer", "etcd")
    plane.start(
        "etcd",
        [
            str(BIN / "etcd"),
            "--name=bench",
            f"--data-dir={work / 'etcd'}",
            f"--listen-client-urls=https://127.0.0.1:{etcd_client}",
            f"--advertise-client-urls=https://127.0.0.1:{etcd_client}",
            f"--listen-peer-urls=https://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=https://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=bench=https://127.0.0.1:{etcd_peer}",
            f"--cert-file={etcd.cert}",
            f"--key-file={etcd.key}",
            "--client-cert-auth",
            f"--trusted-ca-file={pki.ca}",
            f"--peer-cert-file={etcd.cert}",
            f"--peer-key-file={etcd.key}",
            "--peer-client-cert-auth",
            f"--peer-trusted-ca-file={pki.ca}",
        ],
    )

    api = pki.identity("apiserver", "server", "kube-apiserver")
    api_etcd = pki.identity("apiserver-etcd", "client", "kube-apiserver")
    sa_key = work / "service-account-key.pem"
    sa_key.write_text(generate(SecretKind.ec_p256_key, 0))
    sa_key.chmod(0o600)
    sa_pub = work / "service-account-key.pub"
    sa_pub.write_text(public_key_pem(sa_key.read_text()))
    audit = work / "audit-policy.yaml"
    audit.write_text(
        render(ROLES / "kube_apiserver/templates/audit-policy.yaml.j2", kube_apiserver_kwok_user=KUBE_KWOK.user)
    )
    toleration = yaml.safe_load((ROLES / "kube_apiserver/defaults/main.yml").read_text())[
        "kube_apiserver_not_ready_toleration_s"
    ]
    plane.start(
        "kube-apiserver",
        [
            str(BIN / "kube-apiserver"),
            "--advertise-address=127.0.0.1",
            "--bind-address=127.0.0.1",
            f"--secure-port={api_port}",
            "--tls-min-version=VersionTLS12",
            f"--tls-cert-file={api.cert}",
            f"--tls-private-key-file={api.key}",
            f"--client-ca-file={pki.ca}",
            f"--etcd-servers=https://127.0.0.1:{etcd_client}",
            f"--etcd-cafile={pki.ca}",
            f"--etcd-certfile={api_etcd.cert}",
            f"--etcd-keyfile={api_etcd.key}",
            "--anonymous-auth=false",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--profiling=false",
            f"--default-not-ready-toleration-seconds={toleration}",
            f"--default-unreachable-toleration-seconds={toleration}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--service-account-issuer=https://kubernetes.bench",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            f"--audit-policy-file={audit}",
            f"--audit-log-path={work / 'audit.log'}",
        ],
    )
    server = f"https://127.0.0.1:{api_port}"
    admin = pki.identity("admin", "client", "hivestack-bench-admin", ("system:masters",))
    tls = ssl.create_default_context(cafile=str(pki.ca))
    tls.load_cert_chain(str(admin.cert), str(admin.key))

    def api_ready() -> bool:
        try:
            with urllib.request.urlopen(f"{server}/readyz", timeout=2, context=tls) as r:
                return r.status == 200
        except OSError:
            return False

    poll("the API server's /readyz", api_ready, plane)
    admin_config = pki.kubeconfig("admin", server, admin)
    rbac = render(
        ROLES / "kube_apiserver/templates/rbac.yaml.j2",
        kube_apiserver_operator_group="hivestack:operators",
        kube_apiserver_kwok_user=KUBE_KWOK.user,
    )
    rbac_file = work / "rbac.yaml"
    rbac_file.write_text(rbac)
    subprocess.run(
        [str(BIN / "kubectl"), f"--kubeconfig={admin_config}", "apply", "--server-side", "-f", str(rbac_file)],
        check=True,
        capture_output=True,
    )

    controllers = yaml.safe_load((ROLES / "kube_controllers/defaults/main.yml").read_text())
    for component, user in (
        ("kube-controller-manager", "system:kube-controller-manager"),
        ("kube-scheduler", "system:kube-scheduler"),
    ):
        kubeconfig = pki.kubeconfig(component, server, pki.identity(component, "client", user))
        flags = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--profiling=false",
            "--leader-elect=false",
        ]
        if component == "kube-controller-manager":
            flags += [
                "--cluster-name=bench",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={pki.ca}",
                f"--node-monitor-period={controllers['kube_controllers_node_monitor_period_s']}s",
                f"--node-monitor-grace-period={controllers['kube_controllers_node_monitor_grace_s']}s",
                f"--node-eviction-rate={controllers['kube_controllers_node_eviction_rate']}",
            ]
        plane.start(component, [str(BIN / component), *flags])

    kwok = pki.kubeconfig("kwok", server, pki.identity("kwok", "client", KUBE_KWOK.user))
    lease = yaml.safe_load((ROLES / "kwok/defaults/main.yml").read_text())["kwok_lease_duration_s"]
    for dc in dcs:
        plane.start(
            f"kwok-{dc}",
            [
                str(BIN / "kwok"),
                f"--kubeconfig={kwok}",
                f"--config={ROLES / 'kwok/files/stages.yaml'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-label-selector=topology.kubernetes.io/zone={dc},hivestack.io/simulated=true",
                f"--node-lease-duration-seconds={lease}",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
        )
    return admin_config, server


def node(name: str, dc: str) -> dict:
    capacity = {"cpu": "32", "memory": "131072Mi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "topology.kubernetes.io/region": "bench-city",
                "topology.kubernetes.io/zone": dc,
                "kubernetes.io/arch": "arm64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "hivestack.io/pool": f"{dc}-arm",
                "hivestack.io/simulated": "true",
            },
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def deployment(cell: str, replicas: int) -> dict:
    labels = {"app.kubernetes.io/name": "cell-app", "hivestack.io/cell": cell}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "cell-app", "namespace": cell},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.invalid/cell-app:bench",
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "500m", "memory": "256Mi"},
                            },
                        }
                    ],
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "topology.kubernetes.io/zone",
                            "whenUnsatisfiable": "DoNotSchedule",
                            "nodeTaintsPolicy": "Honor",
                            "labelSelector": {"matchLabels": labels},
                        }
                    ],
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}
                                        ]
                                    }
                                ]
                            }
                        }
                    },
                },
            },
        },
    }


@dataclass
class PodWatch:
    """Every pod's first bind and first Ready, from one watch over all namespaces."""

    started: float
    bound: dict[str, tuple[float, str]] = field(default_factory=dict)  # pod -> (seconds, node)
    ready: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, api: client.CoreV1Api, resource_version: str) -> None:
        w = watch.Watch()
        while not self.stop.is_set():
            for event in w.stream(
                api.list_pod_for_all_namespaces,
                resource_version=resource_version,
                timeout_seconds=5,
                _request_timeout=30,
            ):
                pod = event["object"]
                resource_version = pod.metadata.resource_version
                key, now = f"{pod.metadata.namespace}/{pod.metadata.name}", time.monotonic() - self.started
                if pod.spec.node_name and key not in self.bound:
                    self.bound[key] = (now, pod.spec.node_name)
                conditions = {c.type: c.status for c in (pod.status.conditions or [])}
                if conditions.get("Ready") == "True" and key not in self.ready:
                    self.ready[key] = now
                if self.stop.is_set():
                    break


@dataclass
class Probe:
    """One small write every PROBE_INTERVAL_S; latencies in ms."""

    api: client.CoreV1Api
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        self.api.create_namespaced_config_map("default", {"metadata": {"name": "bench-probe"}, "data": {"n": "0"}})
        n = 0
        while not self.stop.wait(PROBE_INTERVAL_S):
            n += 1
            start = time.monotonic()
            try:
                self.api.patch_namespaced_config_map("bench-probe", "default", {"data": {"n": str(n)}})
                self.latencies_ms.append((time.monotonic() - start) * 1000)
            except client.ApiException:
                self.failures += 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@contextmanager
def workdir() -> Iterator[Path]:
    (ROOT / ".hivestack").mkdir(mode=0o700, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="bench-kube-", dir=ROOT / ".hivestack"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def bench(dcs: list[str], nodes_per_dc: int, pods: int) -> None:
    with workdir() as work:
        plane = ControlPlane(work)
        try:
            (work / "pki").mkdir(mode=0o700)
            t = time.monotonic()
            admin_config, _ = start_control_plane(plane, Pki.make(work / "pki"), dcs)
            up_s = time.monotonic() - t
            api_client = config.new_client_from_config(str(admin_config))
            core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
            zone_of = {f"{dc}-node-{i:03d}": dc for dc in dcs for i in range(nodes_per_dc)}

            t = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda name: core.create_node(node(name, zone_of[name])), zone_of))
            console.print(f"{len(zone_of)} nodes registered in {time.monotonic() - t:.1f} s; waiting for Ready")

            def all_nodes_ready() -> bool:
                items = core.list_node(label_selector="hivestack.io/simulated=true").items
                ready = [
                    n for n in items if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
                ]
                return len(ready) == len(zone_of)

            nodes_ready_s = (time.monotonic() - t) + poll("every node Ready", all_nodes_ready, plane, DEADLINE_S)
            console.print(f"every node Ready after {nodes_ready_s:.1f} s; creating {pods} pods")

            cells = [f"cell-{chr(ord('a') + i)}" for i in range(CELLS)]
            for cell in cells:
                core.create_namespace({"metadata": {"name": cell}})
            start = time.monotonic()
            pod_watch = PodWatch(start)
            probe = Probe(core)
            threads = [
                threading.Thread(
                    target=pod_watch.run,
                    args=(core, core.list_pod_for_all_namespaces().metadata.resource_version),
                    daemon=True,
                ),
                threading.Thread(target=probe.run, daemon=True),
            ]
            for thread in threads:
                thread.start()
            shares = [pods // CELLS + (1 if i < pods % CELLS else 0) for i in range(CELLS)]
            for cell, replicas in zip(cells, shares, strict=True):
                apps.create_namespaced_deployment(cell, deployment(cell, replicas))
            poll(f"{pods} pods Ready", lambda: len(pod_watch.ready) >= pods, plane, DEADLINE_S)
            for thread_stop in (pod_watch.stop, probe.stop):
                thread_stop.set()
            peaks = {p.name: p.peak_rss_mb() for p in plane.processes}
        finally:
            plane.stop()

    bound = sorted(s for s, _ in pod_watch.bound.values())
    skews = {}
    for cell in cells:
        per_dc = Counter(zone_of[n] for pod, (_, n) in pod_watch.bound.items() if pod.startswith(f"{cell}/"))
        skews[cell] = max(per_dc[dc] for dc in dcs) - min(per_dc[dc] for dc in dcs)
    table = Table(
        title=f"Kubernetes control plane: {len(dcs)} DCs x {nodes_per_dc} simulated arm64 nodes (kwok), {pods} pods"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("control plane up (etcd to API ready)", f"{up_s:.1f} s"),
        ("every node Ready, from registration", f"{nodes_ready_s:.1f} s"),
        ("every pod bound, from Deployment creation", f"{bound[-1]:.1f} s"),
        ("every pod Ready (kwok: no container starts)", f"{max(pod_watch.ready.values()):.1f} s"),
        ("pods bound per second (mean)", f"{len(bound) / bound[-1]:.0f}"),
        (
            "API write latency p50 / p99 / max during scheduling",
            f"{statistics.median(probe.latencies_ms):.0f} / {percentile(probe.latencies_ms, 0.99):.0f} / "
            f"{max(probe.latencies_ms):.0f} ms ({len(probe.latencies_ms)} writes, {probe.failures} failed)",
        ),
        ("largest spread skew over DCs (per cell)", ", ".join(f"{c} {s}" for c, s in skews.items())),
        *((f"peak RSS {name}", f"{mb:.0f} MiB") for name, mb in peaks.items()),
        (
            "peak RSS control plane (etcd, API, controllers)",
            f"{sum(mb for name, mb in peaks.items() if not name.startswith('kwok')):.0f} MiB",
        ),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dcs", type=int, default=3)
    parser.add_argument("--nodes-per-dc", type=int, default=300)
    parser.add_argument("--pods", type=int, default=3000)
    args = parser.parse_args()
    if not (BIN / "kube-apiserver").exists():
        parser.error(f"{BIN / 'kube-apiserver'} is missing: run scripts/setup first")
    bench([f"dc-{chr(ord('a') + i)}" for i in range(args.dcs)], args.nodes_per_dc, args.pods)


if __name__ == "__main__":
    main()
