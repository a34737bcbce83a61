"""run_playbook: the inventory conversion, and real ansible-playbook runs against localhost (connection local).

The runs share one temporary project root (its own ansible.cfg and playbooks/) and take a few seconds each.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from hivestack.ansible.runner import (
    DriftItem,
    PlaybookFailed,
    PlaybookResult,
    run_playbook,
    run_playbook_isolated,
    static_inventory,
)

pytestmark = pytest.mark.engine  # real ansible-playbook runs against localhost

SECRET = "Tr0ub4dor-s3cret-XYZ"
VENV_BIN = Path(sys.executable).parent


# --- the inventory ------------------------------------------------------------------------------------------------


def test_static_inventory_keeps_groups_hostvars_and_group_vars(tmp_path: Path):
    """The topology's own inventory, written as a YAML file, reads back the same through ansible-inventory."""
    from hivestack.ansible.inventory import build
    from hivestack.topology import load_topology
    from tests.conftest import LAB_TOPOLOGY

    lab = {"ssh_key_file": "/x/id", "core_ns": "hs-core-t", "mgmt": "100.64.0.1", "known_hosts_file": "/x/kh"}
    dynamic = build(load_topology(LAB_TOPOLOGY), {"lab": lab})
    dynamic["dc_dc_a"]["vars"] = {"dc_vip": "10.1.0.254"}
    dynamic["dcs"] = {"children": ["dc_dc_a", "dc_dc_b"]}  # a group of groups
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(static_inventory(dynamic)))
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")  # not the project's (its inventory is the lab's)

    listed = json.loads(
        subprocess.run(
            [str(VENV_BIN / "ansible-inventory"), "-i", str(path), "--list"],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg")},
            timeout=300,
        ).stdout
    )
    hostvars = listed["_meta"]["hostvars"]
    for host, expected in dynamic["_meta"]["hostvars"].items():
        got = hostvars[host]
        assert {k: got[k] for k in expected} == expected
        assert got["hivestack_topology"] == dynamic["all"]["vars"]["hivestack_topology"]  # all's vars
    assert hostvars[dynamic["dc_dc_a"]["hosts"][0]]["dc_vip"] == "10.1.0.254"
    for group, body in dynamic.items():
        if group in ("_meta", "all", "dcs"):
            continue
        assert sorted(listed[group]["hosts"]) == sorted(body["hosts"]), group
    assert sorted(listed["dcs"]["children"]) == ["dc_dc_a", "dc_dc_b"]


def test_static_inventory_accepts_the_short_forms():
    converted = static_inventory({"web": ["a", "b"], "all": {"hosts": ["c"]}, "_meta": {"hostvars": {"a": {"x": 1}}}})
    assert converted == {
        "all": {"hosts": {"a": {"x": 1}, "c": {}}, "children": {"web": {"hosts": {"a": None, "b": None}}}}
    }


# --- real runs ----------------------------------------------------------------------------------------------------

ANSIBLE_CFG = """\
[defaults]
host_key_checking = False
retry_files_enabled = False
gathering = explicit
"""

ROLE_TASKS = """\
- name: write conf
  ansible.builtin.template:
    src: demo.conf.j2
    dest: "{{ out_dir }}/demo.conf"
    mode: "0600"
  tags: [conf]
- name: copy greeting
  ansible.builtin.copy:
    content: "hello\\n"
    dest: "{{ out_dir }}/hello.txt"
    mode: "0644"
- name: loop files
  ansible.builtin.copy:
    content: "{{ item }}\\n"
    dest: "{{ out_dir }}/{{ item }}.txt"
    mode: "0644"
  loop: [a, b]
- name: tolerated failure
  ansible.builtin.command: "false"
  changed_when: false
  ignore_errors: true
- name: a rescued block
  block:
    - name: fails inside the block
      ansible.builtin.command: "false"
      changed_when: false
  rescue:
    - name: recover
      ansible.builtin.debug:
        msg: recovered
"""

FAIL_PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: fine
      ansible.builtin.ping:
    - name: echo the token on stderr
      ansible.builtin.command: "sh -c 'echo token {{ db_password }} >&2; exit 3'"
      changed_when: false
      when: fail_mode == 'stderr'
    - name: fail with the password in msg
      ansible.builtin.fail:
        msg: "the password is {{ db_password }}"
      when: fail_mode == 'msg'
    - name: fail quietly
      ansible.builtin.fail:
        msg: "the password is {{ db_password }}"
      no_log: true
      when: fail_mode == 'nolog'
"""


def local(out: Path | None = None, **extra: Any) -> dict[str, Any]:
    hostvars: dict[str, Any] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **extra}
    if out is not None:
        hostvars["out_dir"] = str(out)
    return hostvars


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / "ansible.cfg").write_text(ANSIBLE_CFG)
    role = root / "playbooks" / "roles" / "demo"
    (role / "tasks").mkdir(parents=True)
    (role / "templates").mkdir()
    (role / "tasks" / "main.yml").write_text(ROLE_TASKS)
    (role / "templates" / "demo.conf.j2").write_text("port={{ demo_port }}\npassword={{ db_password }}\n")
    (root / "playbooks" / "site.yml").write_text("- hosts: all\n  gather_facts: false\n  roles: [demo]\n")
    (root / "playbooks" / "fail.yml").write_text(FAIL_PLAYBOOK)
    (root / "playbooks" / "broken.yml").write_text(
        "- hosts: all\n  tasks:\n    - name: x\n      ansible.builtin.no_such_module: {}\n"
    )
    for host in ("h1", "h2"):
        (root / "out" / host).mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def inventory(project: Path) -> dict[str, Any]:
    return {
        "_meta": {"hostvars": {h: local(project / "out" / h) for h in ("h1", "h2")}},
        "all": {"children": ["dc_a", "dc_b"], "vars": {"hivestack_topology": "test"}},
        "dc_a": {"hosts": ["h1"]},
        "dc_b": {"hosts": ["h2"]},
    }


@pytest.fixture(scope="module")
def spy() -> Any:
    """Watches each ansible_runner.run: the private directory's files while it runs, the command it ran."""
    import ansible_runner

    seen: list[dict[str, Any]] = []
    real = ansible_runner.run

    def watching(**kwargs: Any) -> Any:
        private = Path(kwargs["private_data_dir"])
        record: dict[str, Any] = {"private": private, "kwargs": kwargs}
        record["modes"] = {
            str(p.relative_to(private)): stat.S_IMODE(p.stat().st_mode) for p in [private, *private.rglob("*")]
        }
        record["extravars"] = json.loads((private / "env" / "extravars").read_text())
        runner = real(**kwargs)
        record["command"] = list(runner.config.command)
        record["env"] = dict(runner.config.env)
        seen.append(record)
        return runner

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ansible_runner, "run", watching)
        yield seen


def leftovers(root: Path) -> list[Path]:
    return list((root / ".hivestack" / "run").iterdir())


@pytest.fixture(scope="module")
def first_run(project, inventory, spy) -> PlaybookResult:
    return run_playbook(project, "site.yml", inventory, {"demo_port": 2379}, {"db_password": SECRET})


def test_first_run_changes_each_host(first_run: PlaybookResult, project: Path):
    assert first_run.ok and first_run.rc == 0 and first_run.status == "successful"
    assert first_run.failures == []  # ignore_errors and a rescued block are no failures
    assert set(first_run.hosts) == {"h1", "h2"}
    for stats in first_run.hosts.values():
        assert stats.changed == 3  # template, copy, the loop (one task)
        assert stats.failed == 0 and stats.unreachable == 0
        assert stats.ok >= 5
    assert first_run.changed == 6
    assert first_run.duration_s > 0
    assert (project / "out" / "h1" / "demo.conf").read_text() == f"port=2379\npassword={SECRET}\n"
    assert first_run.drift == {}  # not a check run
    first_run.raise_for_failure()


def test_the_run_environment_and_its_private_directory(first_run: PlaybookResult, project: Path, spy):
    record = spy[0]
    private = record["private"]
    assert private.parent == project.resolve() / ".hivestack" / "run"
    assert not private.exists() and leftovers(project) == []
    assert record["modes"]["."] == 0o700
    assert record["modes"]["env/extravars"] == 0o600
    assert record["modes"]["inventory/hosts.yml"] == 0o600
    assert record["extravars"] == {"demo_port": 2379, "db_password": SECRET}
    # Secrets go through the 0600 file, never the command line (visible to every user in ps).
    assert not any(SECRET in arg for arg in record["command"])
    assert f"@{private}/env/extravars" in record["command"]
    env = record["env"]
    assert env["ANSIBLE_CONFIG"] == str(project.resolve() / "ansible.cfg")
    assert env["ANSIBLE_ROLES_PATH"] == str(project.resolve() / "playbooks" / "roles")
    assert env["ANSIBLE_NOCOLOR"] == "1"
    assert env["PATH"].split(":")[0] == str(VENV_BIN)


def test_a_second_run_changes_nothing(first_run, project, inventory):
    again = run_playbook(project, "site.yml", inventory, {"demo_port": 2379}, {"db_password": SECRET})
    assert again.ok and again.changed == 0
    assert {h: s.changed for h, s in again.hosts.items()} == {"h1": 0, "h2": 0}


def test_check_mode_collects_drift_without_changing_anything(first_run, project, inventory):
    conf = project / "out" / "h1" / "demo.conf"
    conf.write_text("port=1\n")
    (project / "out" / "h2" / "b.txt").unlink()
    result = run_playbook(
        project, "site.yml", inventory, {"demo_port": 2379}, {"db_password": SECRET}, check=True, diff=True
    )
    assert result.ok
    assert conf.read_text() == "port=1\n"  # check mode touched nothing
    assert result.drift == {
        "h1": [DriftItem(task="write conf", changes=(str(conf),))],
        "h2": [DriftItem(task="loop files", changes=(str(project / "out" / "h2" / "b.txt"),))],
    }
    assert result.changed == 2
    assert SECRET not in repr(result)  # the diff's content (the password) is not kept
    assert leftovers(project) == []
    restore(project, inventory)


def test_tags_and_limit(first_run, project, inventory):
    (project / "out" / "h1" / "hello.txt").write_text("tampered\n")
    (project / "out" / "h1" / "demo.conf").write_text("tampered\n")
    (project / "out" / "h2" / "demo.conf").write_text("tampered\n")
    result = run_playbook(
        project, "site.yml", inventory, {"demo_port": 2379}, {"db_password": SECRET}, tags=["conf"], limit="h1"
    )
    assert set(result.hosts) == {"h1"}
    assert result.changed == 1  # only the tagged template on h1 ran
    assert (project / "out" / "h1" / "hello.txt").read_text() == "tampered\n"
    assert (project / "out" / "h2" / "demo.conf").read_text() == "tampered\n"
    restore(project, inventory)


def restore(project: Path, inventory) -> None:
    """Undo what a test changed by hand: the tests share one project and run in any order."""
    result = run_playbook(project, "site.yml", inventory, {"demo_port": 2379}, {"db_password": SECRET})
    assert result.ok, result


@pytest.fixture(scope="module")
def failed_run(project, spy) -> PlaybookResult:
    inventory = {
        "_meta": {
            "hostvars": {
                "h1": local(fail_mode="stderr"),
                "h2": local(fail_mode="nolog"),
                "h3": local(fail_mode="msg"),
                "h4": local(fail_mode="none"),
                # Nothing listens on port 1: refused at once.
                "gone": {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": 1,
                    "ansible_connection": "ssh",
                    "fail_mode": "none",
                },
            }
        },
        "all": {"children": ["pool"]},
        "pool": {"hosts": ["h1", "h2", "h3", "h4", "gone"]},
    }
    # In a process of its own, as PlaybookRun's provider runs it: the result crosses back as JSON.
    return run_playbook_isolated(project, "fail.yml", inventory, {}, {"db_password": SECRET})


def test_failures_are_reported_per_host_without_secrets(failed_run: PlaybookResult, project: Path):
    assert not failed_run.ok and failed_run.rc != 0
    by_host = {f.host: f for f in failed_run.failures}
    assert set(by_host) == {"h1", "h2", "h3", "gone"}
    assert by_host["h1"].task == "echo the token on stderr"
    assert by_host["h1"].message == "non-zero return code: token ********"
    assert by_host["h2"].task == "fail quietly" and "no_log" in by_host["h2"].message
    assert by_host["h3"].message == "the password is ********"
    assert by_host["gone"].unreachable and by_host["gone"].task == "fine"
    assert failed_run.hosts["h4"].failed == 0 and failed_run.hosts["h1"].failed == 1
    assert failed_run.hosts["gone"].unreachable == 1
    with pytest.raises(PlaybookFailed) as raised:
        failed_run.raise_for_failure()
    text = str(raised.value)
    assert SECRET not in text and SECRET not in repr(failed_run)
    lines = text.splitlines()
    assert lines[0] == f"playbook fail.yml failed (rc {failed_run.rc}, failed)"
    assert "  h1: echo the token on stderr: non-zero return code: token ********" in lines
    assert "  h3: fail with the password in msg: the password is ********" in lines
    assert any(line.startswith("  gone (unreachable): fine: ") for line in lines)
    assert all(len(line) < 400 for line in lines)
    assert raised.value.result is failed_run
    assert leftovers(project) == []


def test_an_error_outside_any_task(project, inventory):
    result = run_playbook(project, "broken.yml", inventory, {}, {"db_password": SECRET})
    assert result.rc != 0 and result.failures == [] and result.hosts == {}
    assert "no_such_module" in result.error
    with pytest.raises(PlaybookFailed, match=r"^playbook broken.yml failed \(rc \d+, failed\)\n  .*no_such_module"):
        result.raise_for_failure()
    assert leftovers(project) == []


def test_the_private_directory_goes_even_when_the_runner_raises(project, inventory, monkeypatch):
    import ansible_runner

    def explode(**kwargs: Any) -> Any:
        assert Path(kwargs["private_data_dir"], "env", "extravars").exists()
        raise RuntimeError("boom")

    monkeypatch.setattr(ansible_runner, "run", explode)
    with pytest.raises(RuntimeError, match="boom"):
        run_playbook(project, "site.yml", inventory, {}, {"db_password": SECRET})
    assert leftovers(project) == []


def test_bad_arguments(project, inventory):
    with pytest.raises(FileNotFoundError):
        run_playbook(project, "missing.yml", inventory, {}, {})
    with pytest.raises(ValueError, match="db_password"):
        run_playbook(project, "site.yml", inventory, {"db_password": "x"}, {"db_password": "y"})


def test_failure_text_is_cut_to_one_line(project):
    from hivestack.ansible.runner import Failure, HostStats

    long = "line one\n" + "x" * 1000
    result = PlaybookResult("p.yml", 2, "failed", {"h": HostStats(failed=1)}, 1.0, [Failure("h", "t", long)])
    text = str(PlaybookFailed(result))
    assert text.splitlines()[1].startswith("  h: t: line one xxx") and text.endswith("...")
    assert len(text.splitlines()[1]) == len("  h: t: ") + 300
    assert textwrap.dedent(text).count("\n") == 1


def test_the_isolated_runner_reports_its_own_errors(project, inventory):
    with pytest.raises(RuntimeError, match=r"the runner process failed: FileNotFoundError: no playbook .*missing.yml"):
        run_playbook_isolated(project, "missing.yml", inventory, {}, {"db_password": SECRET})


def test_results_survive_the_json_round_trip(first_run: PlaybookResult):
    from hivestack.ansible.runner import Failure, HostStats

    result = PlaybookResult(
        "p.yml",
        2,
        "failed",
        {"h": HostStats(ok=1, failed=1)},
        1.5,
        [Failure("h", "t", "m", unreachable=True)],
        {"h": [DriftItem("t", ("/etc/x",))]},
        "err",
    )
    assert PlaybookResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert PlaybookResult.from_dict(json.loads(json.dumps(first_run.to_dict()))) == first_run
