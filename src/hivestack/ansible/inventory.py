"""Ansible inventory derived from the topology and the stack's outputs: groups per DC, role, pool and cell."""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hivestack.ansible.platform_vars import firewall_allow, platform_vars
from hivestack.topology import LoadedTopology
from hivestack.topology.placement import Host


def group(kind: str, name: str) -> str:
    """Ansible group names cannot contain '-': dc-a -> dc_dc_a."""
    return f"{kind}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"


def memberships(host: Host) -> list[str]:
    """The inventory groups a host is in (besides `all`)."""
    return [
        group("dc", host.dc),
        group("pool", host.pool),
        *(group("role", r.value) for r in host.roles),
        *(group("cell", c) for c in host.cells),
        group("arch", host.arch.value),
    ]


@dataclass(frozen=True)
class HostTrust:
    """Which SSH host keys the controller accepts: only those in `known_hosts`; with `first_contact`, a host not yet
    listed is recorded there on first contact (and held to that key from then on)."""

    known_hosts: Path
    first_contact: bool

    def ssh_options(self) -> str:
        checking = "accept-new" if self.first_contact else "yes"
        return f"-o StrictHostKeyChecking={checking} -o UserKnownHostsFile={self.known_hosts}"


def first_contact_record(root: Path, stack: str) -> HostTrust:
    """Servers Hivestack did not make: their keys are learnt on first contact, per stack, in the project's state."""
    return HostTrust(root / ".hivestack" / "ssh" / stack / "known_hosts", first_contact=True)


def build(loaded: LoadedTopology, stack_outputs: dict[str, Any], trust: HostTrust | None = None) -> dict[str, Any]:
    """The JSON a dynamic inventory script prints for `--list`.

    A lab stack's hosts are verified against the keys the lab made them with; other hosts against `trust`."""
    topology = loaded.topology
    lab = stack_outputs.get("lab")
    if lab:
        trust = HostTrust(Path(lab["known_hosts_file"]), first_contact=False)
    inventory: dict[str, Any] = {"_meta": {"hostvars": {}}, "all": {"children": []}}
    groups: dict[str, set[str]] = {}
    for host in loaded.placement.hosts:
        for g in memberships(host):
            groups.setdefault(g, set()).add(host.name)
        hostvars: dict[str, Any] = {
            "ansible_host": str(host.address),
            "ansible_user": "root",
            "hivestack_dc": host.dc,
            "hivestack_pool": host.pool,
            "hivestack_roles": [r.value for r in host.roles],
            "hivestack_arch": host.arch.value,
            "hivestack_machine": host.arch.machine,
            "hivestack_cells": list(host.cells),
            "hivestack_labels": host.labels(topology.city),
            "hivestack_remote_dc": topology.datacenter(host.dc).remote,
            "hivestack_firewall_allow": firewall_allow(loaded, host, lab["mgmt"] if lab else None),
            "hivestack_lab": bool(lab),
            # A lab host of another architecture runs under qemu-user (see hivestack.lab.rootfs).
            "hivestack_emulated": bool(lab) and host.arch.machine != platform.machine(),
        }
        options = [trust.ssh_options()] if trust else []
        if lab:
            # The lab's hosts are only reachable from inside the stack's core namespace (no root-namespace routes,
            # so stacks with identical subnets coexist).
            hostvars["ansible_ssh_private_key_file"] = lab["ssh_key_file"]
            options.insert(0, f"-o ProxyCommand='ip netns exec {lab['core_ns']} nc %h %p'")
        if options:
            hostvars["ansible_ssh_common_args"] = " ".join([*options, "-o LogLevel=ERROR"])
        inventory["_meta"]["hostvars"][host.name] = hostvars
    for name, members in sorted(groups.items()):
        inventory[name] = {"hosts": sorted(members)}
        inventory["all"]["children"].append(name)
    inventory["all"]["vars"] = platform_vars(loaded)
    return inventory
