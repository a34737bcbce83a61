"""The `lab` host backend: a stack's network, SSH key pair and one nspawn host per topology host."""

from __future__ import annotations

from pathlib import Path

import pulumi
from pulumi.dynamic import Resource

from hivestack.lab.names import LabNames
from hivestack.lab.providers import KnownHostsProvider, LabHostProvider, LabNetworkProvider, SshKeyPairProvider
from hivestack.topology import Host, LoadedTopology


class LabNetwork(Resource):
    core_ns: pulumi.Output[str]
    mgmt: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, object], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(LabNetworkProvider(), name, {**props, "core_ns": None, "mgmt": None}, opts)


class SshKeyPair(Resource):
    public_key: pulumi.Output[str]
    private_key: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, object], opts: pulumi.ResourceOptions | None = None) -> None:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["private_key"]))
        super().__init__(SshKeyPairProvider(), name, {**props, "public_key": None, "private_key": None}, opts)


class LabHost(Resource):
    netns: pulumi.Output[str]
    host_key: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, object], opts: pulumi.ResourceOptions | None = None) -> None:
        outs = {"netns": None, "base": None, "boot_seconds": None, "host_key": None}
        super().__init__(LabHostProvider(), name, {**props, **outs}, opts)


class KnownHosts(Resource):
    """`hosts`: address -> public host key; written to `file` for every SSH client of the stack."""

    def __init__(self, name: str, props: dict[str, object], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(KnownHostsProvider(), name, props, opts)


class LabBackend:
    """Hosts as nspawn containers in per-host namespaces behind per-DC routers (see lab.network)."""

    name = "lab"

    def __init__(self, stack: str, loaded: LoadedTopology, root: Path, latency: bool) -> None:
        self.stack = stack
        self.root = root
        self.names = LabNames(stack)
        topology = loaded.topology
        self.dc_index = {dc.name: i for i, dc in enumerate(topology.datacenters)}
        self.prefixlen = {dc.name: dc.subnet.prefixlen for dc in topology.datacenters}
        self.key_file = root / ".hivestack" / "lab" / stack / "ssh" / "id_ed25519"
        self.known_hosts_file = self.key_file.with_name("known_hosts")
        self.addresses = {h.name: str(h.address) for h in loaded.placement.hosts}
        self.network = LabNetwork(
            "lab-network",
            {
                "stack": stack,
                "latency": latency,
                "dcs": [
                    {"name": dc.name, "subnet": str(dc.subnet), "latency_ms": dc.latency_ms}
                    for dc in topology.datacenters
                ],
            },
        )
        self.keys = SshKeyPair("lab-ssh-key", {"stack": stack, "key_file": str(self.key_file)})
        self.hosts: dict[str, LabHost] = {}

    def provision(self, host: Host, parent: pulumi.Resource) -> None:
        self.hosts[host.name] = LabHost(
            f"{host.name}-machine",
            {
                "stack": self.stack,
                "root": str(self.root),
                "name": host.name,
                "dc": host.dc,
                "dc_index": self.dc_index[host.dc],
                "pool": host.pool,
                "address": str(host.address),
                "prefixlen": self.prefixlen[host.dc],
                "arch": host.arch.value,
                "authorized_key": self.keys.public_key,
            },
            pulumi.ResourceOptions(parent=parent, depends_on=[self.network]),
        )

    def ready(self) -> list[pulumi.Resource]:
        """The hosts, and the known_hosts file that lists each host's address with the key it was made with."""
        keys = {self.addresses[name]: host.host_key for name, host in self.hosts.items()}
        known = KnownHosts("lab-known-hosts", {"file": str(self.known_hosts_file), "hosts": keys})
        return [*self.hosts.values(), known]

    def instances(self) -> list[pulumi.Input[str]]:
        """Each host's SSH host key: made with a new overlay, kept when the host boots again on its overlay."""
        return [host.host_key for host in self.hosts.values()]

    def outputs(self) -> dict[str, object] | None:
        return {
            "core_ns": self.network.core_ns,
            "mgmt": self.network.mgmt,
            "ssh_key_file": str(self.key_file),
            "known_hosts_file": str(self.known_hosts_file),
        }
