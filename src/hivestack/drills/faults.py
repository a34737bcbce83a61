"""Fault injectors. Each step returns when the fault took effect, as (first, last) unix times over the hosts it
touched: RTO counts from the first, the split-brain window opens at the last.

`LabFaults` uses the lab's own primitives (the DC router's rules, killing a host's container); `PlaybookFaults`
runs the drill playbooks, which work the same against production hosts (nftables on every host of the DC).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from hivestack.ansible.runner import run_playbook
from hivestack.drills.catalog import Drill, Scope
from hivestack.drills.stack import Stack
from hivestack.lab import faults as lab_faults
from hivestack.lab import hosts, network
from hivestack.lab.names import LabNames

Times = tuple[float, float]
RECORD_DIR = "/run/hivestack"
# Hosts' clocks may run this far behind the controller's (NTP keeps same-city servers well within it).
CLOCK_SKEW_S = 1.0


class FaultError(RuntimeError):
    pass


class Injector(Protocol):
    name: str

    def prepare(self) -> Times: ...

    def inject(self) -> Times: ...

    def heal(self) -> Times: ...


class PlaybookFaults:
    """The drill's playbook, one tag per step; the hosts' own clocks say when each step took effect."""

    name = "playbook"

    def __init__(self, stack: Stack, drill: Drill, target: str, loss_percent: int) -> None:
        self.stack, self.drill, self.target = stack, drill, target
        key = "drill_host" if drill.scope is Scope.HOST else "drill_dc"
        self.extravars = {key: target, "drill_loss_percent": loss_percent}

    def run_tag(self, tag: str, **extravars: str) -> None:
        result = run_playbook(
            self.stack.root, self.drill.playbook, self.stack.inventory, {**self.extravars, **extravars}, {}, tags=[tag]
        )
        if not result.ok:
            failures = "; ".join(f"{f.host}: {f.task}: {f.message}" for f in result.failures) or result.error
            raise FaultError(f"{self.drill.playbook} --tags {tag}: {failures}")

    def _step(self, tag: str, record: str) -> Times:
        started = time.time()
        self.run_tag(tag, drill_records=record)
        return self.recorded(record, since=started - CLOCK_SKEW_S)

    def recorded(self, record: str, since: float) -> Times:
        """The first and last time the step took effect, from the hosts' records written since `since` (a host the
        step skipped - an emulated lab host cannot load nftables, a planned switch leaves the gateways alone -
        holds an older record or none)."""
        stamps = []
        for host in self.stack.scope_hosts(self.drill, self.target):
            try:
                stamp = float(self.stack.shell(host, f"cat {RECORD_DIR}/drill-{record}"))
            except (RuntimeError, ValueError):
                continue
            if stamp >= since:
                stamps.append(stamp)
        if not stamps:
            raise FaultError(f"no host of {self.target} recorded when the {record} step took effect")
        return min(stamps), max(stamps)

    def prepare(self) -> Times:
        return self._step("prepare", "prepared")

    def inject(self) -> Times:
        return self._step("inject", "injected")

    def heal(self) -> Times:
        return self._step("heal", "healed")


class LabFaults:
    """The lab's primitives: one atomic rule change on the DC's router, or the host's container killed."""

    name = "lab"

    def __init__(self, stack: Stack, drill: Drill, target: str, loss_percent: int) -> None:
        if drill.planned:
            raise ValueError(f"{drill.name} is a host operation: use the playbook injector")
        if stack.lab is None:
            raise ValueError(f"stack {stack.name} is not a lab stack: use the playbook injector")
        self.stack, self.drill, self.target = stack, drill, target
        self.names = LabNames(stack.name)
        self.loss_percent = loss_percent

    def _timed(self, action: Callable[[], None]) -> Times:
        action()
        now = time.time()
        return now, now

    def _dc_index(self) -> int:
        return self.stack.dcs.index(self.target)

    def prepare(self) -> Times:
        raise FaultError(f"{self.drill.name}: the lab has no primitive for its preparation; use the playbook injector")

    def inject(self) -> Times:
        kind = self.drill.lab_fault
        if kind == "cut":
            return self._timed(lambda: lab_faults.cut_dc(self.names, self._dc_index()))
        if kind == "partition":
            return self._timed(lambda: lab_faults.partition_dc(self.names, self._dc_index()))
        if kind == "gray":
            return self._timed(lambda: lab_faults.gray_failure(self.names, self._dc_index(), self.loss_percent))
        if kind == "kill":
            return self._timed(lambda: hosts.kill(self.names, self.target))
        raise FaultError(f"{self.drill.name}: the lab has no primitive for {kind!r}; use the playbook injector")

    def heal(self) -> Times:
        if self.drill.lab_fault == "kill":
            started = time.time()
            if not hosts.is_running(self.names, self.target):
                hosts.restart(self.names, self.stack.root, self.target)
            address = self.stack.outputs["inventory"][self.target]["address"]
            hosts.wait_ready(network.mgmt_command(self.names), self.names, self.stack.root, self.target, address)
            return started, time.time()
        return self._timed(lambda: lab_faults.restore_dc(self.names, self._dc_index()))


INJECTORS: dict[str, type[LabFaults] | type[PlaybookFaults]] = {"lab": LabFaults, "playbook": PlaybookFaults}


def injector(name: str, stack: Stack, drill: Drill, target: str, loss_percent: int) -> Injector:
    try:
        kind = INJECTORS[name]
    except KeyError:
        raise ValueError(f"unknown injector {name!r} (valid: {', '.join(INJECTORS)})") from None
    return kind(stack, drill, target, loss_percent)
