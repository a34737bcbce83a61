"""The whole platform of one topology: data centers, pools, hosts, cells, firewall rules, generated secrets, and
the operator's way into Kubernetes when the topology has a control plane."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from hivestack.components import types
from hivestack.components.cell import Cell
from hivestack.components.datacenter import DataCenter, ServerPool
from hivestack.components.declared import Declared
from hivestack.components.firewall import FirewallRule
from hivestack.components.host import BareMetal, Host, HostBackend
from hivestack.components.kubeconfig import operator_kubeconfig
from hivestack.components.secret import GeneratedSecret, SecretKind, public_key_pem
from hivestack.components.tls import TlsAuthority
from hivestack.topology import Host as HostModel
from hivestack.topology import LoadedTopology
from hivestack.topology.model import Role
from hivestack.topology.ports import SERVICES
from hivestack.topology.trust import KUBE_API, trust_domains


@dataclass(frozen=True)
class PlatformArgs:
    topology: LoadedTopology
    backend: HostBackend = field(default_factory=BareMetal)


class Platform(Declared):
    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        t = args.topology.topology
        super().__init__(
            types.PLATFORM,
            name,
            {
                "topology": t.name,
                "city": t.city,
                "peak_tps": t.objectives.peak_tps,
                "accounts": t.objectives.accounts,
                "latency_budget_ms": t.objectives.latency_budget_ms,
                "routing_space": t.routing.space,
                "max_utilization": t.capacity.max_utilization,
                "tps_per_core": {r.value: c.tps_per_core for r, c in t.capacity.roles.items()},
            },
            opts,
        )
        placement = args.topology.placement
        hosts_of_pool: dict[str, list[HostModel]] = {}
        for host in placement.hosts:
            hosts_of_pool.setdefault(host.pool, []).append(host)
        self.datacenters: dict[str, DataCenter] = {}
        self.hosts: dict[str, Host] = {}
        for dc in t.datacenters:
            dc_res = DataCenter(dc, pulumi.ResourceOptions(parent=self))
            self.datacenters[dc.name] = dc_res
            for pool in dc.pools:
                pool_res = ServerPool(dc.name, pool, pulumi.ResourceOptions(parent=dc_res))
                for host in hosts_of_pool.get(pool.name, []):
                    self.hosts[host.name] = Host(host, t.city, args.backend, pulumi.ResourceOptions(parent=pool_res))
        self.cells = {
            c.name: Cell(c, placement.cell_members[c.name], pulumi.ResourceOptions(parent=self)) for c in t.cells
        }
        self.firewall = [FirewallRule(s, pulumi.ResourceOptions(parent=self)) for s in SERVICES]
        self.secrets = {
            "etcd-root": GeneratedSecret("etcd-root", "etcd root user", opts=pulumi.ResourceOptions(parent=self)),
            "gns-agent": GeneratedSecret("gns-agent", "GNS agent etcd user", opts=pulumi.ResourceOptions(parent=self)),
            **{
                f"{c.name}-{use}": GeneratedSecret(
                    f"{c.name}-{use}",
                    f"{c.name} database {use}",
                    opts=pulumi.ResourceOptions(parent=self.cells[c.name]),
                )
                for c in t.cells
                for use in ("admin", "app", "sst")
            },
        }
        self.kubernetes = any(Role.k8s_control in h.roles for h in placement.hosts)
        if self.kubernetes:
            self.secrets["kube-service-account"] = GeneratedSecret(
                "kube-service-account",
                "Kubernetes service-account signing key",
                kind=SecretKind.ec_p256_key,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.secrets["kube-encryption"] = GeneratedSecret(
                "kube-encryption",
                "Kubernetes Secrets encryption at rest (secretbox, 32 bytes)",
                opts=pulumi.ResourceOptions(parent=self),
            )
        self._topology = args.topology

        # One CA per trust domain (hivestack.topology.trust): each role's peers accept that role's certificates only.
        self.tls: dict[str, TlsAuthority] = {
            domain.name: TlsAuthority(
                f"tls-{domain.name}",
                subjects=[s.to_dict() for s in domain.subjects],
                opts=pulumi.ResourceOptions(parent=self),
            )
            for domain in trust_domains(args.topology)
        }

    def host_secrets(self) -> pulumi.Output[dict[str, object]]:
        """Everything generated that the playbooks need, as one secret value (`hivestack_secrets`)."""
        return pulumi.Output.secret(
            pulumi.Output.all(
                tls={name: {"ca_cert": ca.ca_cert, "certs": ca.certs} for name, ca in self.tls.items()},
                etcd_root=self.secrets["etcd-root"].secret,
                gns_agent=self.secrets["gns-agent"].secret,
                cells={
                    cell: {use: self.secrets[f"{cell}-{use}"].secret for use in ("admin", "app", "sst")}
                    for cell in self.cells
                },
                kube={
                    key: self.secrets[name].secret
                    for key, name in (
                        ("kube_service_account_key", "kube-service-account"),
                        ("kube_encryption_key", "kube-encryption"),
                    )
                    if name in self.secrets
                },
            ).apply(
                lambda v: {
                    "tls": v["tls"],  # domain -> {"ca_cert", "certs": "<host>/<purpose>" -> {"cert", "key"}}
                    "etcd_root_password": v["etcd_root"],
                    "gns_agent_password": v["gns_agent"],
                    "cells": v["cells"],
                    **v["kube"],
                    **(
                        {"kube_service_account_public_key": public_key_pem(v["kube"]["kube_service_account_key"])}
                        if v["kube"].get("kube_service_account_key")  # absent without a control plane, None under mocks
                        else {}
                    ),
                }
            )
        )

    def operator_kubeconfig(self) -> pulumi.Output[str] | None:
        """The operator's kubeconfig (a secret, hivestack.components.kubeconfig); None without a control plane."""
        if not self.kubernetes:
            return None
        authority = self.tls[KUBE_API]
        return pulumi.Output.secret(
            pulumi.Output.all(authority.ca_cert, authority.certs).apply(
                lambda v: operator_kubeconfig(self._topology, ca_cert=v[0], certs=v[1])
            )
        )

    def ca_certs(self) -> dict[str, pulumi.Output[str]]:
        """Each trust domain's CA certificate (public): what clients outside the platform verify it with."""
        return {name: ca.ca_cert for name, ca in self.tls.items()}

    def inventory(self) -> dict[str, object]:
        """The host inventory the Ansible layer and the tests read back from the stack outputs."""
        return {
            name: {k: h.props[k] for k in ("dc", "pool", "roles", "arch", "address", "cells")}
            for name, h in self.hosts.items()
        }
