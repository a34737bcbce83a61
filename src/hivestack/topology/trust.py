"""Trust domains: which certificates exist, what each one may prove and to whom, derived from the topology.

Every domain has a CA of its own, so "accept only this role" needs nothing but that domain's CA file: etcd 3.4,
MariaDB/Galera, socat (Galera's state transfer), HAProxy and Python's ssl all trust whatever a CA file's CA signed,
and none of them can narrow a shared CA down to some of its certificates. A host's key therefore proves only what its
own role does: an app host's certificate is no etcd peer's and no cell's replication member's.

A certificate names its host only (the inventory name and the address; never localhost or 127.0.0.1: local tools
connect to the host's address) and carries exactly one usage. Identities are `<host>/<purpose>`; the playbooks
install each one under /etc/hivestack/tls/<domain>/<purpose>/ on that host.

Kubernetes is the exception to "a client's name is its host": the API server takes a client certificate's CN as the
user and its O attributes as the groups, so the control plane's clients carry the exact names RBAC grants rights to
(system:kube-controller-manager, system:kube-scheduler, hivestack:kwok, ...). Its domains exist only where the
topology has k8s-control hosts: their own etcd (peer and client, apart from the GNS etcd) and the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from hivestack.topology.model import Role

if TYPE_CHECKING:
    from hivestack.topology.loader import LoadedTopology
    from hivestack.topology.placement import Host

ETCD_PEER = "etcd-peer"
ETCD_CLIENT = "etcd-client"
GATEWAY = "gateway"
LEDGER = "ledger"
K8S_ETCD_PEER = "k8s-etcd-peer"
K8S_ETCD_CLIENT = "k8s-etcd-client"
KUBE_API = "kube-api"
# The cluster's service range; its first address is the in-cluster name of the API (kubernetes.default).
KUBE_SERVICE_CIDR = "10.96.0.0/16"
KUBE_SERVICE_IP = "10.96.0.1"
KUBE_CLUSTER_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class KubeUser:
    """A Kubernetes client identity: the user (CN) and groups (O) RBAC sees, and the purpose it is installed under."""

    purpose: str
    user: str
    groups: tuple[str, ...] = ()


KUBE_CONTROLLER_MANAGER = KubeUser("controller-manager", "system:kube-controller-manager")
KUBE_SCHEDULER = KubeUser("scheduler", "system:kube-scheduler")
KUBE_KWOK = KubeUser("kwok", "hivestack:kwok")
# The playbooks' own calls (readiness, RBAC objects): the built-in superuser group, on control hosts only.
KUBE_ADMIN = KubeUser("admin", "hivestack:admin", ("system:masters",))
# What the gateways' /readyz checks present: a user with no rights beyond the public health endpoints.
KUBE_GATEWAY_HEALTH = KubeUser("health", "hivestack:gateway-health")
# The operator kubeconfig (`hivestack kubeconfig`): bound to cluster-admin by the operators group, not masters,
# so RBAC can narrow it.
KUBE_OPERATOR = KubeUser("kubectl", "hivestack:operator", ("hivestack:operators",))
KUBE_OPERATOR_ID = "operator/kubectl"


class Usage(StrEnum):
    server = "server"
    client = "client"
    # One certificate for both ends of one link: an etcd peer, a Galera member and its state transfer accept and dial
    # with the same certificate, so it carries both usages, in a domain whose only members are those peers.
    peer = "peer"


@dataclass(frozen=True)
class Subject:
    id: str  # "<host>/<purpose>"
    common_name: str
    dns: tuple[str, ...]
    ips: tuple[str, ...]
    usage: Usage
    organizations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """The shape the TlsAuthority resource takes (lists, plain strings)."""
        return {
            "id": self.id,
            "common_name": self.common_name,
            "dns": list(self.dns),
            "ips": list(self.ips),
            "usage": self.usage.value,
            "organizations": list(self.organizations),
        }


@dataclass(frozen=True)
class TrustDomain:
    name: str
    subjects: tuple[Subject, ...]


def db_domain(cell: str) -> str:
    return f"db-{cell}"


def cell_db_name(topology: str, cell: str) -> str:
    """The name a cell's database answers to, whichever member serves it: clients reach the writer through a
    gateway's TCP proxy, so they check this name, which every member's SQL certificate carries, not an address."""
    return f"{cell}.db.{topology}"


def kube_api_name(topology: str) -> str:
    """The name every API server's certificate carries, whichever DC's gateway a client comes through."""
    return f"api.k8s.{topology}"


def subject_id(host: str, purpose: str) -> str:
    return f"{host}/{purpose}"


def _identity(host: Host, purpose: str, usage: Usage, *, extra_dns: tuple[str, ...] = ()) -> Subject:
    # A client's common name is never an etcd user's: with client certificate authentication on, etcd takes a
    # certificate's CN as the user when a request carries no password, and these identities must not log in by it.
    common_name = host.name if usage is not Usage.client else f"{purpose}@{host.name}"
    # Client certificates name their host too: etcd checks that a client's certificate names the address it calls from.
    return Subject(subject_id(host.name, purpose), common_name, (host.name, *extra_dns), (str(host.address),), usage)


def _kube_client(host: Host, user: KubeUser) -> Subject:
    return Subject(
        subject_id(host.name, user.purpose), user.user, (host.name,), (str(host.address),), Usage.client, user.groups
    )


def _kube_domains(topology: str, control: list[Host], gateways: list[Host]) -> list[TrustDomain]:
    if not control:
        return []
    api_name = kube_api_name(topology)
    operator = Subject(
        KUBE_OPERATOR_ID,
        KUBE_OPERATOR.user,
        (f"operator.{api_name}",),
        (),
        Usage.client,
        KUBE_OPERATOR.groups,
    )
    control_users = (KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER, KUBE_KWOK, KUBE_ADMIN)
    return [
        TrustDomain(K8S_ETCD_PEER, tuple(_identity(h, "member", Usage.peer) for h in control)),
        TrustDomain(
            K8S_ETCD_CLIENT,
            (
                *(_identity(h, "server", Usage.server) for h in control),
                *(_identity(h, "apiserver", Usage.client) for h in control),
                *(_identity(h, "admin", Usage.client) for h in control),  # etcdctl health checks
            ),
        ),
        TrustDomain(
            KUBE_API,
            (
                *(
                    Subject(
                        subject_id(h.name, "api"),
                        h.name,
                        (h.name, api_name, *KUBE_CLUSTER_NAMES),
                        (str(h.address), KUBE_SERVICE_IP),
                        Usage.server,
                    )
                    for h in control
                ),
                *(_kube_client(h, u) for h in control for u in control_users),
                *(_kube_client(h, KUBE_GATEWAY_HEALTH) for h in gateways),
                operator,
            ),
        ),
    ]


def trust_domains(loaded: LoadedTopology) -> list[TrustDomain]:
    """Every domain with its identities: the hosts of a role get the identities that role's services present."""
    topology, hosts = loaded.topology, loaded.placement.hosts

    def having(role: Role) -> list[Host]:
        return [h for h in hosts if role in h.roles]

    etcd, gateways, apps = having(Role.etcd), having(Role.gateway), having(Role.app)
    control = having(Role.k8s_control)
    domains = [
        TrustDomain(ETCD_PEER, tuple(_identity(h, "member", Usage.peer) for h in etcd)),
        TrustDomain(
            ETCD_CLIENT,
            (
                *(_identity(h, "server", Usage.server) for h in etcd),
                *(_identity(h, "admin", Usage.client) for h in etcd),  # the etcd role's own calls (users, auth)
                *(_identity(h, "gns", Usage.client) for h in gateways),  # the GNS agent and its seeding
            ),
        ),
        TrustDomain(GATEWAY, tuple(_identity(h, "frontend", Usage.server) for h in gateways)),
        TrustDomain(
            LEDGER,
            (
                *(_identity(h, "server", Usage.server) for h in apps),
                *(_identity(h, "gateway", Usage.client) for h in gateways),  # only gateways talk to ledgers
            ),
        ),
        *_kube_domains(topology.name, control, gateways),
    ]
    for cell in topology.cells:
        members = [h for h in hosts if cell.name in h.cells]
        service = cell_db_name(topology.name, cell.name)
        domains.append(
            TrustDomain(
                db_domain(cell.name),
                (
                    *(_identity(h, "replication", Usage.peer) for h in members),  # Galera, IST and state transfer
                    *(_identity(h, "sql", Usage.server, extra_dns=(service,)) for h in members),
                    *(_identity(h, "health", Usage.server) for h in members),  # what the gateways' checks ask
                ),
            )
        )
    return domains
