"""A real ansible-playbook run (through run_playbook, against localhost) sampled by the exposure sampler.

A secret handed to a program through stdin, the way the roles do it, shows up in no process's command line or
environment - ansible-playbook's and its workers' included; the same secret handed over by `environment:`, the way
the roles used to, is caught. The second run proves the sampler finds real leaks, so the first cannot pass blind.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hivestack.ansible.runner import run_playbook
from hivestack.lab.exposure import Sampler

pytestmark = pytest.mark.engine

SECRET = "Zq81-stdin-not-argv-0123456789"
PLAYBOOK = """\
- name: Hand a secret to a program
  hosts: all
  gather_facts: false
  tasks:
    - name: Through stdin
      ansible.builtin.command:
        argv: [python3, -c, "import sys, time; sys.stdin.read(); time.sleep(1)", hivestack-probe-stdin]
        stdin: "{{ db_password }}"
      changed_when: false
      no_log: true
      when: probe == 'stdin'
    - name: Through the environment
      ansible.builtin.command:
        argv: [python3, -c, "import time; time.sleep(1)", hivestack-probe-environment]
      environment:
        PROBE: "{{ db_password }}"
      changed_when: false
      no_log: true
      when: probe == 'environment'
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exposure")
    (root / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = False\ngathering = explicit\n")
    (root / "playbooks" / "roles").mkdir(parents=True)
    (root / "playbooks" / "probe.yml").write_text(PLAYBOOK)
    return root


def on_controller(_pid: int) -> str | None:  # a localhost run: every process is the controller's
    return None


def sampled_run(project: Path, probe: str) -> Sampler:
    inventory = {
        "_meta": {"hostvars": {"h1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}},
        "all": {"hosts": ["h1"]},
    }
    markers = (f"hivestack-probe-{probe}", "ansible-playbook")
    with Sampler({"db password": SECRET}, on_controller, markers=markers) as sampler:
        result = run_playbook(project, "probe.yml", inventory, {"probe": probe}, {"db_password": SECRET})
    assert result.ok, result.failures
    return sampler


def test_a_secret_through_stdin_is_in_no_process_table(project: Path):
    report = sampled_run(project, "stdin").report
    assert report.seen["hivestack-probe-stdin"] and report.seen["ansible-playbook"], "sampled nothing of the run"
    assert [str(e) for e in report.exposures] == []


def test_a_secret_through_the_environment_is_caught(project: Path):
    report = sampled_run(project, "environment").report
    assert report.seen["hivestack-probe-environment"]
    assert {e.secret for e in report.exposures} == {"db password"}
    assert any(e.place == "environment" and "hivestack-probe-environment" in e.command for e in report.exposures)
