"""Two lab stacks with identical subnets side by side; `lab clean` removes what a crashed run leaves."""

from __future__ import annotations

import subprocess

import pytest

from hivestack.lab import network
from hivestack.lab.names import LabNames
from tests.lab.conftest import HIVESTACK, bounded, leftovers

pytestmark = [pytest.mark.lab, pytest.mark.full]  # make test-full
PEER = "labpeer"


def sshd_banner(names: LabNames, address: str) -> bytes:
    probe = subprocess.run(
        ["ip", "netns", "exec", names.core_ns, "nc", "-w", "1", address, "22"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    return probe.stdout


def test_second_stack_beside_the_first_then_clean(lab):
    peer = LabNames(PEER)
    before = leftovers(peer)
    up = bounded([str(HIVESTACK), "lab", "up", "--stack", PEER], 1200)
    try:
        # Pulumi's diagnostics come before the outputs, which fill the tail of stdout: the error lines first.
        errors = "\n".join(line for line in up.stdout.splitlines() if "error" in line.lower())
        assert up.returncode == 0, f"{errors}\n{up.stdout[-4000:]}{up.stderr}"
        address = lab.address("c-edge-1")
        # The same address answers in both stacks, each from its own host.
        assert sshd_banner(lab.names, address).startswith(b"SSH-")
        assert sshd_banner(peer, address).startswith(b"SSH-")
        assert set(leftovers(peer)["namespaces"]).isdisjoint(leftovers(lab.names)["namespaces"])
        # A crashed run: everything is still there, and clean removes it without touching the other stack.
        clean = bounded([str(HIVESTACK), "lab", "clean", "--stack", PEER], 1200)
        assert clean.returncode == 0, clean.stderr
        assert leftovers(peer) == before
        assert sshd_banner(lab.names, address).startswith(b"SSH-")
    finally:
        # The state still lists what clean removed: destroy reconciles it (and must succeed on a clean machine).
        down = bounded([str(HIVESTACK), "lab", "down", "--stack", PEER], 1200)
    assert down.returncode == 0, down.stdout[-4000:] + down.stderr
    assert leftovers(peer) == before


def test_latency_between_dcs_and_its_switch(lab):
    """The delayer holds packets between DCs for at least the topology's latency: a floor on the round trip, which
    holds on any machine (how close to it the round trip stays is measured by benchmarks/lab_lifecycle.py). The
    switch is checked by its mechanism: the delay chain hooked to forwarded traffic between DC links, or gone."""

    def min_rtt_ms(src: str, dst: str) -> float:
        out = subprocess.run(
            ["ip", "netns", "exec", lab.host_ns(src), "ping", "-n", "-q", "-c", "20", "-i", "0.01", lab.address(dst)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        return float(out.rsplit("=", 1)[1].split("/")[0])  # rtt min/avg/max/mdev = a/b/c/d ms

    def delay_hooked() -> bool:
        rules = network.run_in_netns(lab.outputs["lab"]["core_ns"], ["iptables", "-w", "-S"]).splitlines()
        return f"-A FORWARD -j {network.DELAY_CHAIN}" in rules and any(
            r.startswith(f"-A {network.DELAY_CHAIN} -i dc+ -o dc+ -j NFQUEUE") for r in rules
        )

    dcs = {dc.name: dc for dc in lab.topology.topology.datacenters}
    one_way_ms = dcs["dc-a"].latency_ms + dcs["dc-b"].latency_ms
    assert delay_hooked()
    assert min_rtt_ms("a-edge-1", "b-edge-1") >= 2 * one_way_ms
    lab.pulumi("config", "set", "hivestack:labLatency", "false")
    try:
        lab.hivestack("lab", "up")
        assert not delay_hooked()
    finally:
        lab.pulumi("config", "rm", "hivestack:labLatency")
        lab.hivestack("lab", "up")
    assert delay_hooked()
    assert min_rtt_ms("a-edge-1", "b-edge-1") >= 2 * one_way_ms
