"""Data-center-level faults for a lab stack, each undone by `restore_dc`.

Every fault is a set of iptables DROP rules on the DC router's uplink, in a chain of its own (`HSFAULT`) that the
router's INPUT, FORWARD and OUTPUT jump to first: one atomic iptables-restore hits the whole DC at the same instant,
and restoring removes the chain and its jumps, i.e. exactly what was added. A DC carries at most one fault; injecting
another replaces it. The fault is read back from the rules' comments, so any process can see what another injected.
"""

from __future__ import annotations

import re

from hivestack.lab.names import LabNames
from hivestack.lab.network import MGMT_ADDRESS, UPLINK, remove_chain, replace_chain, router_indexes, run_in_netns

FAULT_CHAIN = "HSFAULT"
_HOOKS = ["INPUT", "FORWARD", "OUTPUT"]
_LABEL = re.compile(r'--comment "?hivestack:([^"\s]+)')
# Traffic with the other DCs, leaving management (which lives in the core) alone.
_OTHER_DCS = [f"-i {UPLINK} ! -s {MGMT_ADDRESS}", f"-o {UPLINK} ! -d {MGMT_ADDRESS}"]


def cut_dc(names: LabNames, dc_index: int) -> None:
    """Nothing in or out of the DC, management included; its hosts still reach each other."""
    _inject(names, dc_index, "cut", [f"-i {UPLINK}", f"-o {UPLINK}"])


def partition_dc(names: LabNames, dc_index: int) -> None:
    """The DC loses the other DCs but keeps running and stays reachable from management, to observe the minority."""
    _inject(names, dc_index, "partition", _OTHER_DCS)


def gray_failure(names: LabNames, dc_index: int, loss_percent: float) -> None:
    """Drop `loss_percent` % of packets between the DC and the other DCs, at random, each direction on its own."""
    if not 0 < loss_percent <= 100:
        raise ValueError(f"loss_percent must be in (0, 100], not {loss_percent}")
    sample = f"-m statistic --mode random --probability {loss_percent / 100:.6f}"
    _inject(names, dc_index, f"gray:{loss_percent:g}", [f"{match} {sample}" for match in _OTHER_DCS])


def restore_dc(names: LabNames, dc_index: int) -> None:
    remove_chain(names.router_ns(dc_index), FAULT_CHAIN, _HOOKS)


def restore_all(names: LabNames) -> None:
    for dc_index in router_indexes(names):
        restore_dc(names, dc_index)


def active_faults(names: LabNames) -> dict[int, str]:
    """Fault per DC index: "cut", "partition" or "gray:<loss percent>", as the routers' iptables have them now."""
    faults: dict[int, str] = {}
    for dc_index in router_indexes(names):
        if match := _LABEL.search(run_in_netns(names.router_ns(dc_index), ["iptables", "-w", "-S"])):
            faults[dc_index] = match.group(1)
    return faults


def _inject(names: LabNames, dc_index: int, label: str, matches: list[str]) -> None:
    if dc_index not in router_indexes(names):
        raise ValueError(f"stack {names.stack} has no DC {dc_index}")
    rules = [f'{match} -m comment --comment "hivestack:{label}" -j DROP' for match in matches]
    replace_chain(names.router_ns(dc_index), FAULT_CHAIN, _HOOKS, rules)
