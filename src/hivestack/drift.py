"""Drift: where the platform no longer matches the code and the stack's state.

Two views, one report: `pulumi preview --refresh --expect-no-changes` names resources that drifted (a lab host
removed by hand, a changed input), and every playbook stage run in check mode with diff names the host, task and
file or service that would change. The stages are checked with the inputs they were last applied with (kept in
each PlaybookRun's state), against the roles in this checkout. All of them run side by side (nothing here writes).
`only` narrows the report to some of these sources (a quick resources-only check, or the stages a change touched):
a stage's check takes minutes.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hivestack.ansible import STAGES
from hivestack.ansible.runner import PlaybookResult, run_playbook_isolated

OK, DRIFTED, CANNOT_CHECK = 0, 1, 2
# What a report can be made of: pulumi's view of the resources, then each playbook stage in order.
SOURCES = ("pulumi", *STAGES)


@dataclass(frozen=True)
class Drift:
    source: str  # "pulumi" or a playbook stage
    name: str  # a resource, or a host
    detail: str  # the planned operation, or the task and what it would change


@dataclass
class DriftReport:
    stack: str
    drift: list[Drift] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        if self.drift:
            return DRIFTED
        return CANNOT_CHECK if self.errors else OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "status": ["clean", "drifted", "could not check"][self.status],
            "checked": self.checked,
            "drift": [asdict(d) for d in self.drift],
            "errors": self.errors,
        }

    def to_junit(self) -> str:
        """One test case per source checked; a case fails with the drift found there."""
        suite = ET.Element("testsuite", name=f"hivestack-drift-{self.stack}", tests=str(len(self.checked)))
        failures = 0
        for source in self.checked:
            case = ET.SubElement(suite, "testcase", classname="hivestack.drift", name=source)
            found = [d for d in self.drift if d.source == source]
            if found:
                failures += 1
                failure = ET.SubElement(case, "failure", message=f"{len(found)} drifted")
                failure.text = "\n".join(f"{d.name}: {d.detail}" for d in found)
        for error in self.errors:
            ET.SubElement(
                ET.SubElement(suite, "testcase", classname="hivestack.drift", name="check"), "error"
            ).text = error
        suite.set("failures", str(failures))
        suite.set("errors", str(len(self.errors)))
        return ET.tostring(suite, encoding="unicode")


Pulumi = Callable[..., subprocess.CompletedProcess[str]]


def resource_drift(pulumi: Pulumi, stack: str) -> DriftReport:
    """What `pulumi preview --refresh` would change: each resource and the operation, in a report of its own."""
    report = DriftReport(stack)
    proc = pulumi("preview", "--refresh", "--expect-no-changes", "--json", "--non-interactive", "--stack", stack)
    try:
        preview = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report.errors.append(f"pulumi preview failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        return report
    report.checked.append("pulumi")
    for step in preview.get("steps", []):
        # `refresh` steps only re-read state (what changed shows up as the steps planned after them).
        if step.get("op", "same") not in ("same", "read", "refresh"):
            name = step["urn"].rsplit("::", 1)[-1]
            reasons = ", ".join(step.get("diffReasons") or [])
            report.drift.append(Drift("pulumi", name, step["op"] + (f" ({reasons})" if reasons else "")))
    return report


def _plain(value: Any) -> Any:
    """A value from `stack export --show-secrets`: secrets come as envelopes holding their JSON plaintext."""
    if isinstance(value, dict) and "plaintext" in value:
        return json.loads(value["plaintext"])
    return value


def _stage_runs(pulumi: Pulumi, stack: str, report: DriftReport) -> dict[str, dict[str, Any]] | None:
    """The outputs of every PlaybookRun in the stack's state, by stage (None: the state could not be read)."""
    proc = pulumi("stack", "export", "--show-secrets", "--stack", stack)
    if proc.returncode != 0:
        report.errors.append(f"cannot read the state of stack {stack}: {proc.stderr.strip()[-500:]}")
        return None
    return {
        r["urn"].rsplit("::", 1)[-1].removeprefix("configure-"): r["outputs"]
        for r in json.loads(proc.stdout)["deployment"].get("resources", [])
        if r["urn"].rsplit("::", 1)[-1].startswith("configure-") and "playbook" in r.get("outputs", {})
    }


def _check_stage(root: Path, applied: dict[str, Any]) -> PlaybookResult:
    """One stage in check mode with diff, with the inputs it was last applied with, in a process of its own (so
    that stages run side by side, and an interrupt reaches each run, which then removes its secrets)."""
    return run_playbook_isolated(
        root,
        applied["playbook"],
        _plain(applied["inventory"]),
        _plain(applied.get("extravars") or {}),
        _plain(applied["secret_vars"]),
        check=True,
        diff=True,
    )


def check(
    root: Path,
    pulumi: Pulumi,
    stack: str,
    progress: Callable[[str], None] = lambda _: None,
    only: Collection[str] | None = None,
) -> DriftReport:
    """Every source, or only those in `only` (names from SOURCES), all side by side: the preview and each stage
    only read (check mode changes nothing), so none waits for another. The report lists them in SOURCES order."""
    report = DriftReport(stack)
    stages = None if only is None else [s for s in only if s in STAGES]
    with ThreadPoolExecutor(max_workers=len(SOURCES)) as pool:
        preview: Future[DriftReport] | None = None
        if only is None or "pulumi" in only:
            progress("pulumi preview --refresh --expect-no-changes")
            preview = pool.submit(resource_drift, pulumi, stack)
        checks: dict[str, Future[PlaybookResult]] = {}
        if stages is None or stages:
            runs = _stage_runs(pulumi, stack, report)
            if runs is not None:
                wanted = [s for s in STAGES if s in runs] if stages is None else [s for s in STAGES if s in stages]
                for stage in (s for s in wanted if s not in runs):
                    report.errors.append(f"{stage}: stack {stack} never applied this stage: nothing to compare with")
                checks = {s: pool.submit(_check_stage, root, runs[s]) for s in wanted if s in runs}
                if checks:
                    progress(f"checking {', '.join(checks)} side by side (check mode)")
        if preview is not None:
            found = preview.result()
            report.drift += found.drift
            report.errors += found.errors
            report.checked += found.checked
        missing = {d.name for d in report.drift}  # hosts whose machine pulumi already reports gone
        for stage, future in checks.items():
            try:
                result = future.result()
            except RuntimeError as e:  # the runner process itself failed
                report.errors.append(f"{stage}: {e}")
                continue
            report.checked.append(stage)
            for host, items in sorted(result.drift.items()):
                for item in items:
                    what = f" ({', '.join(item.changes)})" if item.changes else ""
                    report.drift.append(Drift(stage, host, f"{item.task}{what}"))
            for failure in result.failures:
                if failure.unreachable and f"{failure.host}-machine" in missing:
                    continue  # already reported: the host itself is gone
                report.errors.append(f"{stage}: {failure.host}: {failure.task}: {failure.message}")
    return report
