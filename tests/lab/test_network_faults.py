"""The reachability matrix between DCs: complete while healthy; each fault primitive produces exactly the
matrix it promises; restore brings the full matrix back."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from hivestack.topology import load_topology
from tests.conftest import LAB_TOPOLOGY

pytestmark = pytest.mark.lab
HOSTS = load_topology(LAB_TOPOLOGY).placement.hosts
DC_OF = {h.name: h.dc for h in HOSTS}
MGMT = "mgmt"
Pair = tuple[str, str]


def ping(lab, src: str, dst: str, count: int = 1) -> float:
    """Fraction of pings answered (src may be MGMT: the management path)."""
    prefix = lab.mgmt() if src == MGMT else ["ip", "netns", "exec", lab.host_ns(src)]
    proc = subprocess.run(
        [*prefix, "ping", "-n", "-q", "-c", str(count), "-i", "0.01", "-W", "1", lab.address(dst)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    m = re.search(r"(\d+) received", proc.stdout)
    return int(m.group(1)) / count if m else 0.0


def matrix(lab) -> dict[Pair, bool]:
    pairs = [(a.name, b.name) for a in HOSTS for b in HOSTS if a != b] + [(MGMT, h.name) for h in HOSTS]
    with ThreadPoolExecutor(max_workers=16) as pool:
        answered = list(pool.map(lambda p: ping(lab, *p) > 0, pairs))
    return dict(zip(pairs, answered, strict=True))


def expected(isolated: str | None, mgmt_reaches_isolated: bool) -> dict[Pair, bool]:
    def ok(a: str, b: str) -> bool:
        if isolated is None:
            return True
        if a == MGMT:
            return DC_OF[b] != isolated or mgmt_reaches_isolated
        return (DC_OF[a] == isolated) == (DC_OF[b] == isolated)

    pairs = [(a.name, b.name) for a in HOSTS for b in HOSTS if a != b] + [(MGMT, h.name) for h in HOSTS]
    return {p: ok(*p) for p in pairs}


def differences(got: dict[Pair, bool], want: dict[Pair, bool]) -> list[str]:
    return [f"{a}->{b}: got {'reach' if got[(a, b)] else 'no reach'}" for (a, b) in want if got[(a, b)] != want[(a, b)]]


def test_full_matrix_while_healthy(lab):
    assert differences(matrix(lab), expected(None, True)) == []


@pytest.mark.full
@pytest.mark.parametrize(("fault", "mgmt_reaches"), [("cut", False), ("partition", True)], ids=["cut", "partition"])
def test_dc_fault_matrix_and_restore(lab, fault: str, mgmt_reaches: bool):
    lab.hivestack("lab", "fault", fault, "dc-b")
    try:
        assert differences(matrix(lab), expected("dc-b", mgmt_reaches)) == []
        status = lab.hivestack("lab", "status", "--json", check=False).stdout
        assert '"dc-b"' in status and fault in status
    finally:
        lab.hivestack("lab", "fault", "restore", "dc-b")
    assert differences(matrix(lab), expected(None, True)) == []


@pytest.mark.full
def test_gray_failure_drops_between_dcs_only(lab):
    lab.hivestack("lab", "fault", "gray", "dc-b", "--loss", "30")
    try:
        across = ping(lab, "b-edge-1", "a-edge-1", count=200)
        within = ping(lab, "c-edge-1", "c-db-1", count=100)
        others = ping(lab, "a-edge-1", "c-edge-1", count=100)
    finally:
        lab.hivestack("lab", "fault", "restore", "dc-b")
    # 30 % dropped each way: about half the round trips fail. Wide bounds: it is random.
    assert 0.2 < across < 0.8, across
    assert within == 1.0 and others == 1.0
    assert ping(lab, "b-edge-1", "a-edge-1", count=50) == 1.0


def sshd_answers(lab, host: str) -> bool:
    # Not ping: the host's network namespace outlives its processes, and the kernel answers ICMP by itself.
    probe = subprocess.run(
        [*lab.mgmt(), "nc", "-w", "1", lab.address(host), "22"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    return probe.stdout.startswith(b"SSH-")


@pytest.mark.full
@pytest.mark.parametrize("kind", ["stop", "kill"])
def test_host_stop_or_kill_and_start(lab, kind: str):
    host = "b-edge-1"
    lab.hivestack("lab", "fault", kind, host)
    assert not sshd_answers(lab, host)
    status: Callable[[], str] = lambda: lab.hivestack("lab", "status", "--json", check=False).stdout  # noqa: E731
    assert re.search(rf'"{host}": "stopped"', status())
    lab.hivestack("lab", "fault", "start", host)
    assert sshd_answers(lab, host)
    assert re.search(rf'"{host}": "running"', status())
