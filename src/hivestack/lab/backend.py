"""The `lab` host backend: a stack's network, SSH key pair and one nspawn host per topology host."""

from __future__ import annotations

from pathlib import Path

import pulumi
from pulumi.dynamic import Resource

from hivestack.lab.names import LabNames
from hivestack.lab.providers import LabHostProvider, LabNetworkProvider, SshKeyPairProvider
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

    def __init__(self, name: str, props: dict[str, object], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(LabHostProvider(), name, {**props, "netns": None, "base": None, "boot_seconds": None}, opts)


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

    def outputs(self) -> dict[str, object]:
        return {"core_ns": self.network.core_ns, "mgmt": self.network.mgmt, "ssh_key_file": str(self.key_file)}
