"""The drift report: what pulumi's preview and the check-mode stages say, turned into one verdict."""

from __future__ import annotations

import json
import subprocess
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hivestack import drift
from hivestack.ansible.runner import DriftItem, Failure, PlaybookResult, _changes
from hivestack.cli.main import main

pytestmark = pytest.mark.unit

PREVIEW = {
    "steps": [
        {"op": "same", "urn": "urn:pulumi:lab::hivestack::hivestack:index:Platform::lab"},
        {"op": "refresh", "urn": "urn:pulumi:lab::hivestack::hivestack:index:DataCenter::dc-a"},
        {"op": "create", "urn": "urn:pulumi:lab::hivestack::pulumi-python:dynamic:Resource::a-edge-1-machine"},
        {"op": "update", "urn": "urn:x::y::configure-ledger", "diffReasons": ["inputs_hash"]},
    ]
}


def fake_pulumi(preview: str, export: dict | None = None, rc: int = 0):
    def run(*args: str, **_: object) -> subprocess.CompletedProcess[str]:
        if args[0] == "preview":
            return subprocess.CompletedProcess(args, rc, preview, "boom" if rc else "")
        return subprocess.CompletedProcess(args, 0, json.dumps(export or {"deployment": {}}), "")

    return run


def test_preview_steps_other_than_same_are_drift():
    report = drift.check(Path("."), fake_pulumi(json.dumps(PREVIEW)), "lab")
    assert [(d.source, d.name, d.detail) for d in report.drift] == [
        ("pulumi", "a-edge-1-machine", "create"),
        ("pulumi", "configure-ledger", "update (inputs_hash)"),
    ]
    assert report.status == drift.DRIFTED and report.checked == ["pulumi"]


def test_a_preview_that_does_not_run_means_could_not_check():
    report = drift.check(Path("."), fake_pulumi("", rc=255), "lab")
    assert report.status == drift.CANNOT_CHECK and "exit 255" in report.errors[0]


def test_clean_when_nothing_differs():
    report = drift.check(Path("."), fake_pulumi(json.dumps({"steps": [PREVIEW["steps"][0]]})), "lab")
    assert report.status == drift.OK and report.to_dict()["status"] == "clean"


def test_stages_report_hosts_tasks_and_skip_hosts_already_gone(monkeypatch):
    export = {
        "deployment": {
            "resources": [
                {
                    "urn": "urn:x::y::configure-gateway",
                    "outputs": {
                        "playbook": "gateway.yml",
                        "inventory": {"all": {}},
                        "secret_vars": {"plaintext": json.dumps({"hivestack_secrets": {"p": "s"}})},
                    },
                }
            ]
        }
    }
    seen = {}

    def fake_run(root, playbook, inventory, extravars, secret_vars, *, check, diff):
        seen.update(playbook=playbook, secret_vars=secret_vars, check=check, diff=diff)
        return PlaybookResult(
            playbook, 2, "failed", {}, 1.0,
            [Failure("a-edge-1", "Gathering Facts", "unreachable", True), Failure("b-edge-1", "t", "x", True)],
            {"c-edge-1": [DriftItem("Write HAProxy's configuration", ("/etc/haproxy/haproxy.cfg",))]},
        )  # fmt: skip

    monkeypatch.setattr(drift, "run_playbook_isolated", fake_run)
    report = drift.check(Path("."), fake_pulumi(json.dumps(PREVIEW), export), "lab")
    assert seen == {"playbook": "gateway.yml", "secret_vars": {"hivestack_secrets": {"p": "s"}}, "check": True,
                    "diff": True}  # fmt: skip
    assert drift.Drift("gateway", "c-edge-1", "Write HAProxy's configuration (/etc/haproxy/haproxy.cfg)") in (
        report.drift
    )
    # a-edge-1's machine is reported gone by pulumi; b-edge-1 being unreachable is a real "could not check".
    assert report.errors == ["gateway: b-edge-1: t: x"]
    assert report.checked == ["pulumi", "gateway"]


def test_junit_has_a_case_per_source_and_fails_the_drifted_ones():
    report = drift.DriftReport("lab", [drift.Drift("ledger", "a-edge-1", "Run one ledger per cell")], ["oops"],
                               ["pulumi", "ledger"])  # fmt: skip
    suite = ET.fromstring(report.to_junit())
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "1")
    failed = [c.get("name") for c in suite if c.find("failure") is not None]
    assert failed == ["ledger"] and "a-edge-1: Run one ledger per cell" in suite.find("testcase/failure").text


def test_a_changed_loop_over_objects_names_each_object_that_changed():
    # What a check-mode loop over drifted Kubernetes objects returns: no file, no path, one label per object.
    result = {
        "changed": True,
        "results": [
            {"changed": True, "item": "v1.Node..lab-a-arm-1", "ansible_loop_var": "item"},
            {"changed": False, "item": "v1.Node..lab-a-arm-2", "ansible_loop_var": "item"},
            {"changed": True, "object": "apps.v1.Deployment.cell-a.app", "ansible_loop_var": "object"},
        ],
    }
    assert _changes(result) == ["v1.Node..lab-a-arm-1", "apps.v1.Deployment.cell-a.app"]


def test_only_pulumi_neither_reads_the_state_nor_runs_a_stage(monkeypatch):
    calls = []

    def pulumi(*args: str, **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(args[0])
        return fake_pulumi(json.dumps(PREVIEW))(*args)

    monkeypatch.setattr(drift, "run_playbook_isolated", lambda *a, **k: pytest.fail("a stage ran"))
    report = drift.check(Path("."), pulumi, "lab", only=["pulumi"])
    assert calls == ["preview"] and report.checked == ["pulumi"]


def test_only_some_stages_skips_the_preview_and_names_a_stage_never_applied(monkeypatch):
    export = {"deployment": {"resources": [{"urn": "urn:x::y::configure-gateway", "outputs": {
        "playbook": "gateway.yml", "inventory": {}, "secret_vars": {}}}]}}  # fmt: skip
    ran = []

    def fake_run(root, playbook, *_: object, **__: object) -> PlaybookResult:
        ran.append(playbook)
        return PlaybookResult(playbook, 0, "successful", {}, 1.0, [], {})

    monkeypatch.setattr(drift, "run_playbook_isolated", fake_run)
    report = drift.check(Path("."), fake_pulumi("not json", export), "lab", only=["ledger", "gateway"])
    assert ran == ["gateway.yml"] and report.checked == ["gateway"]
    assert report.errors == ["ledger: stack lab never applied this stage: nothing to compare with"]
    assert report.status == drift.CANNOT_CHECK


def test_only_names_a_known_source(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["drift", "--only", "etdc"])
    assert stopped.value.code == 2 and "invalid choice: 'etdc'" in capsys.readouterr().err


def test_the_preview_and_every_stage_run_side_by_side_and_are_reported_in_order(monkeypatch):
    stages = ["common", "etcd", "gateway"]
    export = {"deployment": {"resources": [
        {"urn": f"urn:x::y::configure-{s}", "outputs": {"playbook": f"{s}.yml", "inventory": {}, "secret_vars": {}}}
        for s in reversed(stages)
    ]}}  # fmt: skip
    # Each run and the preview wait until all of them have started: one after another, the first would wait alone
    # until the barrier's deadline and break it.
    together = threading.Barrier(len(stages) + 1, timeout=60)
    preview = fake_pulumi(json.dumps({"steps": []}), export)

    def pulumi(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        if args[0] == "preview":
            together.wait()
        return preview(*args, **kw)

    def fake_run(root, playbook, *_: object, **__: object) -> PlaybookResult:
        together.wait()
        return PlaybookResult(playbook, 0, "successful", {}, 1.0, [], {"h": [DriftItem(playbook, ())]})

    monkeypatch.setattr(drift, "run_playbook_isolated", fake_run)
    report = drift.check(Path("."), pulumi, "lab", only=["pulumi", *stages])
    assert report.checked == ["pulumi", *stages]
    assert [d.detail for d in report.drift] == [f"{s}.yml" for s in stages]


def test_a_stage_whose_runner_process_failed_could_not_be_checked(monkeypatch):
    export = {"deployment": {"resources": [{"urn": "urn:x::y::configure-etcd", "outputs": {
        "playbook": "etcd.yml", "inventory": {}, "secret_vars": {}}}]}}  # fmt: skip

    def failing(*_: object, **__: object) -> PlaybookResult:
        raise RuntimeError("playbook etcd.yml: the runner process failed: boom")

    monkeypatch.setattr(drift, "run_playbook_isolated", failing)
    report = drift.check(Path("."), fake_pulumi("", export), "lab", only=["etcd"])
    assert report.errors == ["etcd: playbook etcd.yml: the runner process failed: boom"]
    assert report.checked == [] and report.status == drift.CANNOT_CHECK
