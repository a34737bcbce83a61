"""The rules every Kubernetes workload of the platform follows, so that losing a DC loses none of its service.

A workload is a Deployment or StatefulSet (as the Kubernetes API spells it: camelCase, `spec.template.spec` for
its pods). The rules read it beside the topology's worker pools (which DCs have `k8s-worker` capacity of which
architecture) and the PodDisruptionBudgets declared with it:

- spread over at least three same-city DCs: a `topologySpreadConstraints` entry on the zone label with
  `maxSkew: 1`, `whenUnsatisfiable: DoNotSchedule` and `nodeTaintsPolicy: Honor` (a lost DC's tainted nodes do
  not count, so its replicas go to the survivors instead of staying Pending), at least three replicas, and nodes
  it may run on in at least three DCs;
- with more than one replica, a PodDisruptionBudget selecting its pods, so that draining a DC's nodes never takes
  every replica at once;
- pinned to arm64 nodes by required node affinity wherever the topology's worker pools include arm64 ones.

The policy pack calls these on declared resources (`policies/hivestack_policies.py`): one set of rules, each
violation located by namespace and name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hivestack.topology.survivability import MIN_DCS, Violation

ZONE = "topology.kubernetes.io/zone"
ARCH = "kubernetes.io/arch"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")


@dataclass(frozen=True)
class WorkerPools:
    """Same-city DCs with Kubernetes worker capacity, by architecture (from the topology's server pools)."""

    dcs_by_arch: Mapping[str, frozenset[str]]

    def dcs_for(self, arches: frozenset[str] | None) -> frozenset[str]:
        """DCs with nodes of any of these architectures (None: any architecture)."""
        return frozenset().union(*(d for a, d in self.dcs_by_arch.items() if arches is None or a in arches))


@dataclass(frozen=True)
class Workload:
    kind: str
    namespace: str
    name: str
    replicas: int
    pod_labels: Mapping[str, str]
    pod_spec: Mapping[str, Any]

    @property
    def path(self) -> str:
        return f"{self.namespace}/{self.name}"

    def required_arches(self) -> frozenset[str] | None:
        """The architectures its required node affinity allows (None: not restricted)."""
        required = ((self.pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        ) or {}
        terms = required.get("nodeSelectorTerms") or []
        allowed: set[str] = set()
        for term in terms:
            arch = [e for e in term.get("matchExpressions") or [] if e.get("key") == ARCH]
            if not arch or arch[0].get("operator") != "In":
                return None  # one term without an architecture lets every node in
            allowed.update(arch[0].get("values") or [])
        return frozenset(allowed) if terms else None


@dataclass(frozen=True)
class Budget:
    namespace: str
    name: str
    match_labels: Mapping[str, str]

    def selects(self, w: Workload) -> bool:
        return (
            self.namespace == w.namespace
            and bool(self.match_labels)
            and all(w.pod_labels.get(k) == v for k, v in self.match_labels.items())
        )


def workload(obj: Mapping[str, Any]) -> Workload | None:
    """A Deployment or StatefulSet object as the rules see it; None for any other kind."""
    if obj.get("kind") not in WORKLOAD_KINDS:
        return None
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    template = spec.get("template") or {}
    return Workload(
        kind=obj["kind"],
        namespace=meta.get("namespace") or "default",
        name=meta.get("name") or "?",
        replicas=int(spec.get("replicas", 1)),
        pod_labels=(template.get("metadata") or {}).get("labels") or {},
        pod_spec=template.get("spec") or {},
    )


def budget(obj: Mapping[str, Any]) -> Budget | None:
    if obj.get("kind") != "PodDisruptionBudget":
        return None
    meta = obj.get("metadata") or {}
    selector = (obj.get("spec") or {}).get("selector") or {}
    return Budget(meta.get("namespace") or "default", meta.get("name") or "?", selector.get("matchLabels") or {})


def spread_over_three_dcs(w: Workload, pools: WorkerPools, _: Iterable[Budget]) -> list[Violation]:
    rule, found = "workload-spread-over-dcs", []
    zone = [c for c in w.pod_spec.get("topologySpreadConstraints") or [] if c.get("topologyKey") == ZONE]
    if not zone:
        found.append(f"no topologySpreadConstraints entry on {ZONE}")
    elif not any(
        c.get("maxSkew") == 1 and c.get("whenUnsatisfiable") == "DoNotSchedule" and c.get("nodeTaintsPolicy") == "Honor"
        for c in zone
    ):
        found.append(f"its spread on {ZONE} is not maxSkew 1, whenUnsatisfiable DoNotSchedule, nodeTaintsPolicy Honor")
    if w.replicas < MIN_DCS:
        found.append(f"{w.replicas} replica(s) cannot be in {MIN_DCS} DCs")
    arches = w.required_arches()
    dcs = pools.dcs_for(arches)
    if len(dcs) < MIN_DCS:
        nodes = f"nodes of arch {', '.join(sorted(arches))}" if arches else "worker nodes"
        found.append(f"the {nodes} it may run on are in {len(dcs)} DC(s) {sorted(dcs)}, not {MIN_DCS}")
    return [Violation(rule, w.path, message) for message in found]


def budget_for_replicas(w: Workload, _: WorkerPools, budgets: Iterable[Budget]) -> list[Violation]:
    if w.replicas < 2 or any(b.selects(w) for b in budgets):
        return []
    return [
        Violation("pdb-for-multi-replica", w.path, f"{w.replicas} replicas and no PodDisruptionBudget selects its pods")
    ]


def arm64_affinity(w: Workload, pools: WorkerPools, _: Iterable[Budget]) -> list[Violation]:
    if "arm64" not in pools.dcs_by_arch or w.required_arches() == frozenset({"arm64"}):
        return []
    return [
        Violation("arm64-affinity", w.path, f"not pinned to arm64 nodes (required node affinity on {ARCH} In [arm64])")
    ]


WORKLOAD_RULES: dict[str, Callable[[Workload, WorkerPools, Iterable[Budget]], list[Violation]]] = {
    "workload-spread-over-dcs": spread_over_three_dcs,
    "pdb-for-multi-replica": budget_for_replicas,
    "arm64-affinity": arm64_affinity,
}


def check(objects: Iterable[Mapping[str, Any]], pools: WorkerPools, rule: str) -> list[Violation]:
    """One rule over every workload among `objects`."""
    objects = list(objects)
    budgets = [b for b in map(budget, objects) if b]
    return [v for w in map(workload, objects) if w for v in WORKLOAD_RULES[rule](w, pools, budgets)]
