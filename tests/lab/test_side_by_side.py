"""Two lab stacks with identical subnets side by side; `lab clean` removes what a crashed run leaves."""

from __future__ import annotations

import subprocess

import pytest

from hivestack.lab.names import LabNames
from tests.lab.conftest import HIVESTACK, leftovers

pytestmark = [pytest.mark.lab, pytest.mark.full]  # make test-full
PEER = "labpeer"


def sshd_banner(names: LabNames, address: str) -> bytes:
    probe = subprocess.run(
        ["ip", "netns", "exec", names.core_ns, "nc", "-w", "1", address, "22"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    return probe.stdout


def test_second_stack_beside_the_first_then_clean(lab):
    peer = LabNames(PEER)
    before = leftovers(peer)
    up = subprocess.run([str(HIVESTACK), "lab", "up", "--stack", PEER], capture_output=True, text=True)
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
        clean = subprocess.run([str(HIVESTACK), "lab", "clean", "--stack", PEER], capture_output=True, text=True)
        assert clean.returncode == 0, clean.stderr
        assert leftovers(peer) == before
        assert sshd_banner(lab.names, address).startswith(b"SSH-")
    finally:
        # The state still lists what clean removed: destroy reconciles it (and must succeed on a clean machine).
        down = subprocess.run([str(HIVESTACK), "lab", "down", "--stack", PEER], capture_output=True, text=True)
    assert down.returncode == 0, down.stdout[-4000:] + down.stderr
    assert leftovers(peer) == before


def test_latency_between_dcs_and_its_switch(lab):
    def rtt_ms(src: str, dst: str) -> float:
        out = subprocess.run(
            ["ip", "netns", "exec", lab.host_ns(src), "ping", "-n", "-q", "-c", "20", "-i", "0.01", lab.address(dst)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return float(out.rsplit("=", 1)[1].split("/")[1])  # rtt min/avg/max/mdev = a/b/c/d ms

    # 0.5 ms one way per DC in the lab topology: about 1 ms each way between two DCs.
    assert rtt_ms("a-edge-1", "b-edge-1") > 1.5
    assert rtt_ms("c-edge-1", "c-db-1") < 1.0
    pulumi = [str(lab.hivestack_root / "scripts" / "pulumi")]
    subprocess.run([*pulumi, "config", "set", "hivestack:labLatency", "false", "--stack", lab.stack], check=True)
    try:
        lab.hivestack("lab", "up")
        assert rtt_ms("a-edge-1", "b-edge-1") < 1.0
    finally:
        subprocess.run([*pulumi, "config", "rm", "hivestack:labLatency", "--stack", lab.stack], check=True)
        lab.hivestack("lab", "up")
    assert rtt_ms("a-edge-1", "b-edge-1") > 1.5
