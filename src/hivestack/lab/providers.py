"""Pulumi dynamic providers for the lab: the network, a per-stack SSH key pair, and hosts.

Each one really creates, reads, updates and deletes: `pulumi refresh` drops a host that was stopped or removed
by hand (so the next `up` boots it again on its kept overlay), and `pulumi destroy` removes every process, mount,
namespace and file the stack made.
"""

from __future__ import annotations

import ipaddress
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from hivestack.lab import hosts, network, rootfs
from hivestack.lab.names import LabNames


def _dcs(props: dict[str, Any]) -> list[network.DcSpec]:
    return [
        network.DcSpec(name=d["name"], subnet=ipaddress.IPv4Network(d["subnet"]), latency_ms=float(d["latency_ms"]))
        for d in props["dcs"]
    ]


class LabNetworkProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        names = LabNames(props["stack"])
        names.run_dir.mkdir(parents=True, exist_ok=True)
        (names.run_dir / "stack").write_text(props["stack"])  # lets `lab clean --all` name what it finds
        network.create_network(names, _dcs(props), latency=bool(props["latency"]))
        return CreateResult(id_=names.tag, outs={**props, "core_ns": names.core_ns, "mgmt": network.MGMT_ADDRESS})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not network.network_exists(LabNames(props["stack"])):
            return ReadResult(id_=None, outs={})
        return ReadResult(id_=id_, outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in ("stack", "dcs") if olds.get(k) != news.get(k)]
        changed = replaces or olds.get("latency") != news.get("latency")
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        network.set_latency(LabNames(news["stack"]), bool(news["latency"]))
        return UpdateResult(outs={**olds, **news})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        network.delete_network(LabNames(props["stack"]))


class SshKeyPairProvider(ResourceProvider):
    """An ed25519 key pair for Ansible's SSH; the private half is a Pulumi secret and a 0600 file in .hivestack."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        with tempfile.TemporaryDirectory() as tmp:
            key = Path(tmp) / "id"
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"hivestack-{props['stack']}", "-f", str(key)],
                check=True,
            )
            private, public = key.read_text(), (Path(tmp) / "id.pub").read_text().strip()
        _write_private(Path(props["key_file"]), private)
        return CreateResult(id_=props["key_file"], outs={**props, "public_key": public, "private_key": private})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # The state is the source of truth; a deleted key file is written again from it.
        if not Path(props["key_file"]).exists():
            _write_private(Path(props["key_file"]), props["private_key"])
        return ReadResult(id_=id_, outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in ("stack", "key_file") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=True)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        Path(props["key_file"]).unlink(missing_ok=True)


def _write_private(path: Path, private: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(private)


class KnownHostsProvider(ResourceProvider):
    """The stack's known_hosts file (0644, beside its SSH key): every host's address and the key it was made with.

    SSH clients (Ansible, the tests, the drills) verify hosts against it instead of trusting whatever answers."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        _write_known_hosts(Path(props["file"]), props["hosts"])
        return CreateResult(id_=props["file"], outs=props)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not Path(props["file"]).exists():
            _write_known_hosts(Path(props["file"]), props["hosts"])
        return ReadResult(id_=id_, outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = ["file"] if olds.get("file") != news.get("file") else []
        return DiffResult(changes=bool(replaces) or olds.get("hosts") != news.get("hosts"), replaces=replaces)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        _write_known_hosts(Path(news["file"]), news["hosts"])
        return UpdateResult(outs=news)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        Path(props["file"]).unlink(missing_ok=True)


def _write_known_hosts(path: Path, known: dict[str, str]) -> None:
    """`known`: address -> public key ("ssh-ed25519 AAAA...")."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text("".join(f"{address} {key}\n" for address, key in sorted(known.items())))


class LabHostProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        names = LabNames(props["stack"])
        if props["arch"] == "arm64":
            rootfs.ensure_arm64_emulation()
        base = rootfs.ensure_base(props["arch"])
        net = ipaddress.IPv4Interface(f"{props['address']}/{int(props['prefixlen'])}")  # numbers arrive as floats
        netns = network.attach_host(names, int(props["dc_index"]), props["name"], str(net.ip), net.network.prefixlen)
        spec = hosts.HostSpec(
            stack=props["stack"],
            name=props["name"],
            address=props["address"],
            netns=netns,
            base=base,
            authorized_key=props["authorized_key"],
            arch=props["arch"],
            facts={"stack": props["stack"], "dc": props["dc"], "pool": props["pool"], "arch": props["arch"]},
        )
        root = Path(props["root"])
        # Nothing of this host can be live: the state does not know it. Stop leftovers of a failed create.
        hosts.stop(names, props["name"])
        ready = self._boot(spec, root)
        return CreateResult(
            id_=f"{names.tag}/{props['name']}",
            outs={
                **props,
                "netns": netns,
                "base": str(base),
                "boot_seconds": round(ready, 2),
                "host_key": hosts.host_key(root, props["stack"], props["name"]),
            },
        )

    @staticmethod
    def _boot(spec: hosts.HostSpec, root: Path, attempts: int = 3) -> float:
        """Boot and wait for sshd. A host whose nspawn dies while several boot at once is booted again."""
        for attempt in range(1, attempts + 1):
            hosts.start(spec, root)
            try:
                return hosts.wait_ready(network.mgmt_command(spec.names), spec.names, root, spec.name, spec.address)
            except hosts.HostDied:
                if attempt < attempts:
                    continue
                hosts.stop(spec.names, spec.name)
                raise
            except BaseException:
                hosts.stop(spec.names, spec.name)  # a failed create leaves no process behind, whatever failed
                raise
        raise AssertionError("unreachable")

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not hosts.is_running(LabNames(props["stack"]), props["name"]):
            return ReadResult(id_=None, outs={})
        # The key is read back from the host's overlay: the state never vouches for a key the host lost.
        return ReadResult(
            id_=id_, outs={**props, "host_key": hosts.host_key(Path(props["root"]), props["stack"], props["name"])}
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("stack", "root", "name", "dc_index", "dc", "pool", "address", "prefixlen", "arch", "authorized_key")
        replaces = [k for k in keys if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=True)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        names = LabNames(props["stack"])
        hosts.remove(names, Path(props["root"]), props["name"])
        network.detach_host(names, props["name"])
