"""Policies over the resources a Hivestack program declares.

The survivability policies rebuild the rules' neutral facts from declared Platform, DataCenter, Host and Cell
resources and call the very functions topology validation calls; the program cannot drift from the rules
without a preview failing. The workload policies call hivestack.workloads.rules on the Kubernetes objects a stack
declares, with the worker pools its topology declares. Two more guard what only resources show: sensitive ports
and secret marking.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from hivestack.components import types
from hivestack.topology.model import Role
from hivestack.topology.placement import QUORUM_ROLES
from hivestack.topology.ports import sensitive_ports
from hivestack.topology.survivability import RULES, CellLoad, Facts, QuorumGroup, Violation
from hivestack.workloads import rules as workload_rules

# Besides the obvious names: a CA's signing key (`ca_key`), and `certs`, which carries each certificate's private key.
# Public keys (`public_key`, `authorized_key`, `host_key`) are not secrets.
SENSITIVE_NAME = re.compile(r"(password|passphrase|secret|token|private_?key|^ca_key$|^certs$)", re.IGNORECASE)

DESCRIPTIONS = {
    "quorum-no-dc-majority": "No data center holds a majority of any quorum (etcd, control plane, cell database).",
    "cell-spans-three-dcs": "Every cell has a database member in at least three same-city data centers.",
    "quorum-survives-dc-loss": "Every quorum keeps a majority after the loss of any one data center.",
    "capacity-survives-dc-loss": "The surviving data centers carry the peak load after the loss of any one.",
    "customer-ranges-partition": "Cells' customer ranges cover the whole routing space with no overlap.",
    "cells-hold-accounts": "Cells are sized for at least the accounts the objectives ask for.",
    "gateway-in-every-dc": "Every same-city data center has a gateway (multi-active routing).",
    "latency-within-budget": "Same-city data centers stay within the latency budget of each other.",
    "workload-spread-over-dcs": "Every Kubernetes workload spreads over at least three same-city DCs, skew 1.",
    "pdb-for-multi-replica": "Every Kubernetes workload with more than one replica has a PodDisruptionBudget.",
    "arm64-affinity": "Kubernetes workloads are pinned to arm64 nodes where the worker pools include them.",
}
# The Kubernetes objects the workload rules read, as pulumi-kubernetes types them (a chart's children included).
KUBE_OBJECT_TYPES = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:policy/v1:PodDisruptionBudget",
)


def facts_from_resources(resources: list[Any]) -> Facts | None:
    """Facts as declared by the program; None when the stack declares no Hivestack platform."""
    by_type: dict[str, list[Mapping[str, Any]]] = {}
    for r in resources:
        by_type.setdefault(r.resource_type, []).append(r.props)
    platforms = by_type.get(types.PLATFORM, [])
    if not platforms:
        return None
    platform = platforms[0]
    dcs = by_type.get(types.DATACENTER, [])
    hosts = by_type.get(types.HOST, [])
    same_city = tuple(d["name"] for d in dcs if not d["remote"])
    quorums = [
        QuorumGroup(role.value, f"hosts with role {role.value}", tuple(h["dc"] for h in hosts if role in h["roles"]))
        for role in QUORUM_ROLES
    ]
    cells = []
    for c in by_type.get(types.CELL, []):
        member_dcs = tuple(m["dc"] for m in sorted(c["members"], key=lambda m: m["order"]))
        quorums.append(QuorumGroup(f"cell {c['name']}", f"cell {c['name']}", member_dcs))
        cells.append(
            CellLoad(c["name"], f"cell {c['name']}", member_dcs, c["accounts"], c["range_start"], c["range_end"])
        )
    util = platform["max_utilization"]
    role_tps = {
        role: {
            dc: sum(h["cpu"] for h in hosts if h["dc"] == dc and role in h["roles"]) * per_core * util
            for dc in same_city
        }
        for role, per_core in platform["tps_per_core"].items()
    }
    return Facts(
        same_city_dcs=same_city,
        quorums=tuple(quorums),
        cells=tuple(cells),
        routing_space=platform["routing_space"],
        accounts=platform["accounts"],
        peak_tps=platform["peak_tps"],
        role_tps=role_tps,
        gateway_dcs=tuple(sorted({h["dc"] for h in hosts if Role.gateway.value in h["roles"]})),
        dc_latency_ms={d["name"]: d["latency_ms"] for d in dcs if not d["remote"]},
        latency_budget_ms=platform["latency_budget_ms"],
    )


def _stack_policy(rule: str, check: Callable[[Facts], list[Violation]]) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        facts = facts_from_resources(args.resources)
        for violation in check(facts) if facts else []:
            report_violation(f"{violation.path}: {violation.message}", None)

    return StackValidationPolicy(
        name=rule, description=DESCRIPTIONS[rule], enforcement_level=EnforcementLevel.MANDATORY, validate=validate
    )


def worker_pools(resources: list[Any]) -> workload_rules.WorkerPools:
    """Same-city DCs with declared k8s-worker pools, by architecture."""
    remote = {r.props["name"] for r in resources if r.resource_type == types.DATACENTER and r.props["remote"]}
    by_arch: dict[str, set[str]] = {}
    for r in resources:
        p = r.props
        if r.resource_type == types.SERVER_POOL and Role.k8s_worker.value in p["roles"] and p["dc"] not in remote:
            by_arch.setdefault(p["arch"], set()).add(p["dc"])
    return workload_rules.WorkerPools({arch: frozenset(dcs) for arch, dcs in by_arch.items()})


def _workload_policy(rule: str) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        declared = [r for r in args.resources if r.resource_type in KUBE_OBJECT_TYPES]
        urns = {w.path: r.urn for r in declared if (w := workload_rules.workload(r.props))}
        if not urns:
            return
        for violation in workload_rules.check([r.props for r in declared], worker_pools(args.resources), rule):
            report_violation(f"{violation.path}: {violation.message}", urns.get(violation.path))

    return StackValidationPolicy(
        name=rule, description=DESCRIPTIONS[rule], enforcement_level=EnforcementLevel.MANDATORY, validate=validate
    )


def sensitive_ports_least_privilege(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != types.FIREWALL_RULE:
        return
    service = sensitive_ports().get(int(args.props["port"]))
    if service is None:
        return
    if args.props.get("from_cidrs"):
        report_violation(
            f"{args.name}: port {service.port} ({service.name}) is opened to {args.props['from_cidrs']}; "
            "database and etcd ports only accept their roles",
            args.urn,
        )
    allowed = {r.value for r in service.clients}
    extra = sorted(set(args.props.get("from_roles", [])) - allowed)
    if extra:
        report_violation(
            f"{args.name}: port {service.port} ({service.name}) is opened to roles {extra}; allowed: {sorted(allowed)}",
            args.urn,
        )


def secrets_marked_secret(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    marked = set(args.opts.additional_secret_outputs or [])
    for key in args.props:
        if SENSITIVE_NAME.search(key) and key not in marked:
            report_violation(f"{args.name}: property {key!r} holds a secret but is not marked secret", args.urn)


POLICIES = [
    *[_stack_policy(rule, check) for rule, check in RULES.items()],
    *[_workload_policy(rule) for rule in workload_rules.WORKLOAD_RULES],
    ResourceValidationPolicy(
        name="sensitive-ports-least-privilege",
        description="Database and etcd ports are never exposed beyond the roles that need them.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=sensitive_ports_least_privilege,
    ),
    ResourceValidationPolicy(
        name="secrets-marked-secret",
        description="Every property that holds a secret is marked secret.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=secrets_marked_secret,
    ),
]
