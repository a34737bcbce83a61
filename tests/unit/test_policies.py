"""Every policy of the pack, called directly: it passes on the lab's declared resources and fails on a
mutation that breaks exactly its rule (and names that rule's problem)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pulumi
import pytest
from hivestack_policies import POLICIES, SENSITIVE_NAME
from pulumi.runtime.mocks import MockMonitor
from pulumi_policy import StackValidationPolicy

from hivestack.ansible.stages import STAGES
from hivestack.components import types
from tests.conftest import LAB_TOPOLOGY
from tests.unit.test_program import build

pytestmark = pytest.mark.unit

Resources = list[SimpleNamespace]


@pytest.fixture(scope="module")
def lab_resources() -> Resources:
    """What a lab stack declares (its configuration stages included), each resource with the secret outputs its
    registration asked for: what the engine hands the policy pack, nothing stamped on afterwards."""
    captured: Resources = []
    marked: dict[str, list[str]] = {}
    register = MockMonitor.RegisterResource

    def recording(self: MockMonitor, request: Any) -> Any:
        marked[request.name] = list(request.additionalSecretOutputs)
        return register(self, request)

    @pulumi.runtime.test
    def run() -> pulumi.Output:
        mocks, registered = build(LAB_TOPOLOGY, configure=True)

        def keep(_: Any) -> None:
            assert len({n for _, n, _ in mocks.resources}) == len(mocks.resources)  # names key the markings
            captured.extend(
                SimpleNamespace(resource_type=t, name=n, props=p, urn=f"urn:{t}:{n}", secret_outputs=marked[n])
                for t, n, p in mocks.resources
            )

        return registered.apply(keep)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MockMonitor, "RegisterResource", recording)
        run()
    return captured


def find(resources: Resources, typ: str, name: str) -> dict[str, Any]:
    return next(r.props for r in resources if r.resource_type == typ and r.name == name)


def violations(policy_name: str, resources: Resources) -> list[str]:
    policy = next(p for p in POLICIES if p.name == policy_name)
    found: list[str] = []
    report = lambda message, urn=None: found.append(message)  # noqa: E731
    if isinstance(policy, StackValidationPolicy):
        policy.validate(SimpleNamespace(resources=resources), report)
    else:
        for r in resources:
            opts = SimpleNamespace(additional_secret_outputs=r.secret_outputs)
            policy.validate(
                SimpleNamespace(resource_type=r.resource_type, props=r.props, name=r.name, urn=r.urn, opts=opts),
                report,
            )
    return found


def _etcd_majority(rs: Resources) -> None:
    find(rs, types.HOST, "b-db-1")["dc"] = "dc-a"


def _short_cell(rs: Resources) -> None:
    find(rs, types.CELL, "cell-a")["members"].pop()


def _four_control_members(rs: Resources) -> None:
    find(rs, types.HOST, "a-edge-1")["roles"].append("k8s-control")


def _peak_too_high(rs: Resources) -> None:
    next(r.props for r in rs if r.resource_type == types.PLATFORM)["peak_tps"] *= 100


def _overlap(rs: Resources) -> None:
    find(rs, types.CELL, "cell-b")["range_start"] = 9000


def _too_many_accounts(rs: Resources) -> None:
    next(r.props for r in rs if r.resource_type == types.PLATFORM)["accounts"] = 10**6


def _no_gateway(rs: Resources) -> None:
    find(rs, types.HOST, "b-edge-1")["roles"].remove("gateway")


def _far_dc(rs: Resources) -> None:
    find(rs, types.DATACENTER, "dc-a")["latency_ms"] = 5


def _mysql_public(rs: Resources) -> None:
    find(rs, types.FIREWALL_RULE, "mysql")["from_cidrs"] = ["0.0.0.0/0"]


def _etcd_to_workers(rs: Resources) -> None:
    find(rs, types.FIREWALL_RULE, "etcd-client")["from_roles"].append("k8s-worker")


def _unmarked_password(rs: Resources) -> None:
    rs.append(
        SimpleNamespace(
            resource_type="x:y:Z", name="db", props={"db_password": "s3cret"}, urn="urn:db", secret_outputs=[]
        )
    )


def _stage_secrets_unmarked(rs: Resources) -> None:
    # A configuration stage registered without its secret marking (the platform's passwords and keys in clear).
    next(r for r in rs if r.name == "configure-database").secret_outputs = []


def cell_app(cell: str, replicas: int = 3) -> Resources:
    """A cell's application tier as the workload rules want it: spread over the DCs, pinned to arm64, a budget."""
    labels = {"app.kubernetes.io/name": "cell-app", "hivestack.io/cell": cell}
    pod = {
        "containers": [{"name": "app", "image": "cell-app:1"}],
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
             "nodeTaintsPolicy": "Honor", "labelSelector": {"matchLabels": labels}}
        ],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]}]}}},
    }  # fmt: skip
    meta = {"name": "cell-app", "namespace": cell}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                  "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels}, "spec": pod}}}  # fmt: skip
    budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta,
              "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}}  # fmt: skip
    return [
        SimpleNamespace(resource_type=t, name=f"{cell}-{kind}", props=obj, urn=f"urn:{t}:{cell}", secret_outputs=[])
        for t, kind, obj in (
            ("kubernetes:apps/v1:Deployment", "deployment", deployment),
            ("kubernetes:policy/v1:PodDisruptionBudget", "pdb", budget),
        )
    ]


def _pod_spec(rs: Resources, cell: str = "cell-a") -> dict[str, Any]:
    rs.extend(cell_app(cell))
    return find(rs, "kubernetes:apps/v1:Deployment", f"{cell}-deployment")["spec"]["template"]["spec"]


def _spread_ignores_taints(rs: Resources) -> None:
    del _pod_spec(rs)["topologySpreadConstraints"][0]["nodeTaintsPolicy"]


def _two_replicas(rs: Resources) -> None:
    rs.extend(cell_app("cell-a", replicas=2))


def _pinned_to_amd64(rs: Resources) -> None:
    # The lab's only amd64 workers are in dc-b: such a workload could never leave it.
    _pod_spec(rs)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"
    ][0]["values"] = ["amd64"]


def _no_budget(rs: Resources) -> None:
    rs.extend(r for r in cell_app("cell-b") if r.resource_type != "kubernetes:policy/v1:PodDisruptionBudget")


def _any_arch(rs: Resources) -> None:
    del _pod_spec(rs, "cell-c")["affinity"]


CASES: list[tuple[str, Callable[[Resources], None], str]] = [
    ("quorum-no-dc-majority", _etcd_majority, "dc-a holds 2 of etcd's 3 members"),
    ("cell-spans-three-dcs", _short_cell, "cell cell-a has members in 2 same-city DC(s)"),
    ("quorum-survives-dc-loss", _four_control_members, "k8s-control keeps 2 of 4 members"),
    ("capacity-survives-dc-loss", _peak_too_high, "must carry"),
    ("customer-ranges-partition", _overlap, "overlaps cell-a"),
    ("cells-hold-accounts", _too_many_accounts, "objectives ask for 1,000,000"),
    ("gateway-in-every-dc", _no_gateway, "no gateway in dc-b"),
    ("latency-within-budget", _far_dc, "over the same-city budget"),
    ("sensitive-ports-least-privilege", _mysql_public, "port 3306 (mysql) is opened to ['0.0.0.0/0']"),
    ("sensitive-ports-least-privilege", _etcd_to_workers, "port 2379 (etcd-client) is opened to roles ['k8s-worker']"),
    ("secrets-marked-secret", _unmarked_password, "property 'db_password' holds a secret but is not marked secret"),
    (
        "secrets-marked-secret",
        _stage_secrets_unmarked,
        "configure-database: property 'secret_vars' holds a secret but is not marked secret",
    ),
    ("workload-spread-over-dcs", _spread_ignores_taints, "cell-a/cell-app: its spread on topology.kubernetes.io/zone"),
    ("workload-spread-over-dcs", _two_replicas, "cell-a/cell-app: 2 replica(s) cannot be in 3 DCs"),
    (
        "workload-spread-over-dcs",
        _pinned_to_amd64,
        "cell-a/cell-app: the nodes of arch amd64 it may run on are in 1 DC(s) ['dc-b'], not 3",
    ),
    ("pdb-for-multi-replica", _no_budget, "cell-b/cell-app: 3 replicas and no PodDisruptionBudget selects its pods"),
    ("arm64-affinity", _any_arch, "cell-c/cell-app: not pinned to arm64 nodes"),
]


def test_every_policy_has_a_failing_case():
    assert {p.name for p in POLICIES} == {name for name, _, _ in CASES}


@pytest.mark.parametrize("name", sorted({p.name for p in POLICIES}))
def test_policy_passes_on_lab(name: str, lab_resources: Resources):
    assert violations(name, copy.deepcopy(lab_resources)) == []


@pytest.mark.parametrize("name", ["workload-spread-over-dcs", "pdb-for-multi-replica", "arm64-affinity"])
def test_workload_policy_passes_on_every_cell_app_done_right(name: str, lab_resources: Resources):
    resources = copy.deepcopy(lab_resources)
    for cell in ("cell-a", "cell-b", "cell-c"):
        resources.extend(cell_app(cell))
    assert violations(name, resources) == []


def test_the_lab_gives_the_secrets_policy_something_to_check(lab_resources: Resources):
    # Its pass above is not for want of secrets: every configuration stage carries them, and marks them.
    holding = {r.name: r.secret_outputs for r in lab_resources if any(SENSITIVE_NAME.search(k) for k in r.props)}
    assert holding == {f"configure-{stage}": ["secret_vars"] for stage in STAGES}


@pytest.mark.parametrize(("name", "mutate", "expected"), CASES, ids=[f"{c[0]}:{c[1].__name__}" for c in CASES])
def test_policy_fails_on_violation(name: str, mutate, expected: str, lab_resources: Resources):
    resources = copy.deepcopy(lab_resources)
    mutate(resources)
    found = violations(name, resources)
    assert any(expected in message for message in found), found


@pytest.mark.parametrize(
    ("prop", "sensitive"),
    [
        ("ca_key", True),
        ("certs", True),
        ("private_key", True),
        ("etcd_root_password", True),
        ("secret_vars", True),
        ("public_key", False),
        ("authorized_key", False),
        ("host_key", False),
        ("ca_cert", False),
        ("key_file", False),
    ],
)
def test_which_property_names_hold_secrets(prop: str, sensitive: bool) -> None:
    from hivestack_policies import SENSITIVE_NAME

    assert bool(SENSITIVE_NAME.search(prop)) is sensitive
