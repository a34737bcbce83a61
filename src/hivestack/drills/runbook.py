"""One drill, start to end: steady state, load, [prepare], inject, hold (measuring), heal, verify, consistency,
targets, report. Whatever fails on the way, the fault is healed and the load stopped; a failed recovery is still
measured and reported."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hivestack.drills import report as reports
from hivestack.drills.catalog import Drill
from hivestack.drills.consistency import CellConsistency, acked_keys, check_cell, rpo_summary, wait_converged
from hivestack.drills.faults import Injector, PlaybookFaults, injector
from hivestack.drills.load import AckTail, BackgroundLoad, read_acks
from hivestack.drills.measure import Ack, CellMeasure, Window, acks_per_second, cell_measure, errors_per_dc
from hivestack.drills.stack import Stack
from hivestack.drills.targets import all_met, judge
from hivestack.engines import MemberState

Progress = Callable[[str], None]
# Seconds of undisturbed load before the fault: the baseline the timeline and the pause are read against.
BASELINE_S = 3.0


class DrillError(RuntimeError):
    pass


@dataclass
class Options:
    hold_s: float = 12.0
    loss_percent: int = 20
    injector: str = "lab"
    reports: Path = Path("reports")

    def validate(self) -> None:
        if self.hold_s <= 0 or not 0 < self.loss_percent <= 100:
            raise ValueError(f"--hold must be > 0 (got {self.hold_s:g}) and --loss in 1..100 (got {self.loss_percent})")


class Run:
    def __init__(self, stack: Stack, drill: Drill, target: str, options: Options, progress: Progress) -> None:
        stack.validate_target(drill, target)
        options.validate()
        self.stack, self.drill, self.target, self.options, self.progress = stack, drill, target, options, progress
        name = "playbook" if drill.planned else options.injector  # a planned switch is a host operation
        self.injector: Injector = injector(name, stack, drill, target, options.loss_percent)
        self.started = datetime.now(UTC)
        self.out_dir = options.reports / stack.name / f"{self.started:%Y%m%dT%H%M%SZ}-{drill.name}"
        self.cells = {c["name"]: stack.members(c) for c in stack.cells}
        self.errors: list[str] = []
        self.inside_states: dict[str, MemberState] | None = None  # None: not asked

    # ------------------------------------------------------------------ steps

    def steady(self) -> None:
        """The drill playbook's own check on the production path; the same check through the engine seam otherwise."""
        self.progress("checking the steady state")
        if isinstance(self.injector, PlaybookFaults):
            self.injector.run_tag("steady")
            return
        for cell, members in self.cells.items():
            for m in members:
                state = self.stack.engine.state(m, self.stack.shell)
                if not state.in_service or state.group_size != len(members):
                    raise DrillError(f"not in a steady state: {cell} on {m.host} is {state.describe()}")

    def hold(self, load: BackgroundLoad, fault: float) -> None:
        """Keep the fault for the hold time, one progress line a second; halfway, ask the cut-off members."""
        tail = AckTail([load.ack_log(c) for c in self.cells])
        tail.new()
        asked = False
        while (elapsed := time.time() - fault) < self.options.hold_s:
            time.sleep(1)
            acks = [Ack.from_record(r) for r in tail.new()]
            ok = Counter(a.dc for a in acks if a.ok)
            errors = sum(1 for a in acks if not a.ok)
            rates = ", ".join(f"{dc} {ok[dc]}/s" for dc in sorted(load.gateways))
            self.progress(f"t+{elapsed:4.1f}s acknowledged {rates}; errors {errors}")
            if not asked and elapsed >= self.options.hold_s / 2 and self.drill.isolates and self.drill.loads_inside:
                asked = True
                self.inside_states = self.ask_inside()

    def ask_inside(self) -> dict[str, MemberState]:
        """What each member inside the fault says of itself (a minority must say it is out of the quorum)."""
        inside = set(self.stack.scope_hosts(self.drill, self.target))
        return {
            f"{m.cell}@{m.host}": self.stack.engine.state(m, self.stack.shell)
            for members in self.cells.values()
            for m in members
            if m.host in inside
        }

    def verify(self) -> float:
        self.progress("verifying: every member back, in the quorum and caught up")
        if isinstance(self.injector, PlaybookFaults):
            self.injector.run_tag("verify")
        # The load still runs: members are back once they are all in service, whatever their positions.
        return wait_converged(self.stack.engine, self.cells, self.stack.shell, same_position=False)

    # ------------------------------------------------------------------ the run

    def execute(self) -> dict[str, Any]:
        try:
            return self._execute()
        finally:
            self.stack.close()

    def _execute(self) -> dict[str, Any]:
        self.steady()
        gateways = self.stack.gateways()
        if not self.drill.loads_inside:
            gateways = {
                dc: url for dc, url in gateways.items() if dc not in self.stack.scope_dcs(self.drill, self.target)
            }
        netns = self.stack.lab["core_ns"] if self.stack.lab else None
        load = BackgroundLoad(self.stack.cells, gateways, self.stack.gateway_ca, self.out_dir, netns)
        times: dict[str, float | None] = {"fault": None, "isolated_from": None, "heal": None, "healed": None}
        converged_s = None
        touched = False  # from the first step that changes the platform: a failure after it still heals
        try:
            self.progress(f"starting the load through {', '.join(sorted(gateways))}")
            load.start()
            load.wait_flowing()
            if self.drill.prepares:
                self.progress("preparing")
                touched = True
                self.injector.prepare()
            time.sleep(BASELINE_S)  # a measured baseline, not a wait for readiness (that was wait_flowing)
            self.progress(f"injecting {self.drill.name} on {self.target} ({self.injector.name})")
            touched = True
            times["fault"], times["isolated_from"] = self.injector.inject()
            self.hold(load, times["fault"])
            self.progress("healing")
            times["heal"], times["healed"] = self.injector.heal()
            try:
                converged_s = self.verify()
            except Exception as e:  # measured and reported all the same
                self.errors.append(f"verify: {e}")
        finally:
            if touched and times["heal"] is None:
                self._heal_after_failure(times)
            load.stop()
        return self.finish(load, times, converged_s)

    def _heal_after_failure(self, times: dict[str, float | None]) -> None:
        try:
            times["heal"], times["healed"] = self.injector.heal()
        except Exception as e:
            self.errors.append(f"heal: {e}")

    def finish(self, load: BackgroundLoad, times: dict[str, float | None], converged_s: float | None) -> dict[str, Any]:
        self.progress("checking every acknowledged write on every member")
        try:
            wait_converged(self.stack.engine, self.cells, self.stack.shell)
        except Exception as e:
            self.errors.append(f"converge: {e}")
        assert times["fault"] is not None and times["isolated_from"] is not None and times["heal"] is not None
        window = Window(times["fault"], times["isolated_from"], times["heal"])
        inside_dcs = self.stack.scope_dcs(self.drill, self.target)
        inside_hosts = set(self.stack.scope_hosts(self.drill, self.target))
        led = self.stack.led_from(self.drill, self.target)
        acks = {cell: [Ack.from_record(r) for r in read_acks(load.ack_log(cell))] for cell in self.cells}
        measures: list[CellMeasure] = []
        checks: list[CellConsistency] = []
        for cell, members in self.cells.items():
            measures.append(
                cell_measure(cell, acks[cell], window, inside_dcs, inside_hosts, cell in led, self.drill.isolates)
            )
            # A member that did not come back is "not checked" there, and the targets are missed.
            checks.append(check_cell(self.stack.engine, cell, members, self.stack.shell, acked_keys(acks[cell])))
        everything = [a for cell_acks in acks.values() for a in cell_acks]
        per_dc = errors_per_dc(everything, window)
        minority = None
        if self.drill.isolates and self.drill.loads_inside:
            minority = sum(per_dc.get(dc, {}).get("acked_sent_during", 0) for dc in inside_dcs)
        rto_target_s = self.stack.loaded.topology.objectives.rto_seconds
        verdicts = judge(self.drill, measures, checks, rto_target_s, minority, self.inside_states)
        start = min((a.t for a in everything), default=window.fault)
        report = {
            "drill": self.drill.name,
            "target": self.target,
            "stack": self.stack.name,
            "injector": self.injector.name,
            "started": self.started.isoformat(timespec="seconds"),
            "hold_s": self.options.hold_s,
            "times": {**times, "converged_s": converged_s},
            "cells": [{**m.to_dict(), **c.to_dict()} for m, c in zip(measures, checks, strict=True)],
            "rpo": rpo_summary(checks),
            "errors_per_dc": per_dc,
            "inside_states": {key: state.to_dict() for key, state in (self.inside_states or {}).items()},
            "verdicts": [v.to_dict() for v in verdicts],
            "targets_met": all_met(verdicts) and not self.errors,
            "errors": self.errors,
            "load": load.summaries,
            "timeline": {
                "start": start,
                "fault": window.fault - start,
                "heal": window.heal - start,
                "acks_per_second": acks_per_second(everything, start),
            },
        }
        reports.write(report, self.out_dir)
        return report
