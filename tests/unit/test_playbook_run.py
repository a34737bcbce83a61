"""PlaybookRun: what its inputs_hash covers, the provider's diff/create/update/delete, secrets under mocks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc

from hivestack.ansible import runner
from hivestack.ansible.playbook import (
    SECRET_OUTPUTS,
    PlaybookRun,
    PlaybookRunArgs,
    _PlaybookRunProvider,
    files_digest,
    inputs_hash,
)
from tests.unit.conftest import RecordingMocks

pytestmark = pytest.mark.unit

INVENTORY = {
    "_meta": {"hostvars": {"h1": {"ansible_host": "10.1.0.11"}}},
    "all": {"children": ["g"]},
    "g": {"hosts": ["h1"]},
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    books = tmp_path / "playbooks"
    (books / "roles" / "etcd" / "tasks").mkdir(parents=True)
    (books / "roles" / "etcd" / "tasks" / "main.yml").write_text("- ansible.builtin.debug: msg=hi\n")
    (books / "etcd.yml").write_text("- hosts: all\n  roles: [etcd]\n")
    (books / "other.yml").write_text("- hosts: all\n  tasks: []\n")
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    return tmp_path


def digest(root: Path, *, extravars: Any = None, secret_vars: Any = None, triggers: Any = None, inv: Any = None) -> str:
    return inputs_hash(
        files_digest(root, "etcd.yml"),
        INVENTORY if inv is None else inv,
        {"etcd_port": 2379} if extravars is None else extravars,
        {"etcd_password": "p1"} if secret_vars is None else secret_vars,
        ["host-id-1"] if triggers is None else triggers,
    )


def test_the_hash_is_stable(project: Path):
    before = digest(project)
    assert digest(project) == before
    # Key order is not a change; files outside playbooks/ are none of its business; nor are editor droppings.
    assert digest(project, inv=dict(reversed(list(INVENTORY.items())))) == before
    (project / "README.md").write_text("notes")
    (project / "playbooks" / "roles" / "etcd" / "tasks" / ".main.yml.swp").write_text("x")
    (project / "playbooks" / "roles" / "etcd" / "__pycache__").mkdir()
    (project / "playbooks" / "roles" / "etcd" / "__pycache__" / "m.pyc").write_bytes(b"\0")
    # Nor are other playbooks and the roles only they run: a change to the ledger does not re-run etcd.
    (project / "playbooks" / "other.yml").write_text("- hosts: all\n  roles: [other]\n")
    (project / "playbooks" / "roles" / "other" / "tasks").mkdir(parents=True)
    (project / "playbooks" / "roles" / "other" / "tasks" / "main.yml").write_text("- ansible.builtin.debug: msg=x\n")
    assert digest(project) == before


@pytest.mark.parametrize(
    "change",
    [
        "role file",
        "new role file",
        "playbook",
        "included role",
        "var",
        "secret",
        "trigger",
        "inventory",
    ],
)
def test_the_hash_changes_with_what_a_run_depends_on(project: Path, change: str):
    before = digest(project)
    books = project / "playbooks"
    kwargs: dict[str, Any] = {}
    if change == "role file":
        (books / "roles" / "etcd" / "tasks" / "main.yml").write_text("- ansible.builtin.debug: msg=bye\n")
    elif change == "new role file":
        (books / "roles" / "etcd" / "templates").mkdir()
        (books / "roles" / "etcd" / "templates" / "etcd.conf.j2").write_text("x")
    elif change == "playbook":
        (books / "etcd.yml").write_text("- hosts: all\n  roles: [etcd]\n  serial: 1\n")
    elif change == "included role":  # a role that etcd's tasks include is part of the run too
        (books / "roles" / "base" / "tasks").mkdir(parents=True)
        (books / "roles" / "base" / "tasks" / "install.yml").write_text("- ansible.builtin.debug: msg=hi\n")
        (books / "roles" / "etcd" / "tasks" / "main.yml").write_text(
            "- ansible.builtin.include_role:\n    name: base\n    tasks_from: install\n"
        )
        before = digest(project)
        (books / "roles" / "base" / "tasks" / "install.yml").write_text("- ansible.builtin.debug: msg=bye\n")
    elif change == "var":
        kwargs["extravars"] = {"etcd_port": 2380}
    elif change == "secret":
        kwargs["secret_vars"] = {"etcd_password": "p2"}
    elif change == "trigger":
        kwargs["triggers"] = ["host-id-2"]
    elif change == "inventory":
        kwargs["inv"] = {**INVENTORY, "_meta": {"hostvars": {"h1": {"ansible_host": "10.1.0.12"}}}}
    assert digest(project, **kwargs) != before


def test_a_missing_playbook_fails_at_once(project: Path):
    with pytest.raises(FileNotFoundError):
        files_digest(project, "nope.yml")
    (project / "outside.yml").write_text("- hosts: all\n")
    with pytest.raises(ValueError, match="a path inside"):
        files_digest(project, "../outside.yml")


# --- the provider -------------------------------------------------------------------------------------------------


def props(root: Path, **extra: Any) -> dict[str, Any]:
    return {
        "root": str(root),
        "playbook": "etcd.yml",
        "inventory": INVENTORY,
        "extravars": {"etcd_port": 2379.0},  # numbers arrive as doubles
        "secret_vars": {"etcd_password": "p1"},
        "triggers": ["host-id-1"],
        "inputs_hash": "aaa",
        "changed": None,
        "hosts": None,
        "duration_s": None,
        "finished_at": None,
        **extra,
    }


def test_diff_is_an_update_exactly_when_the_hash_differs(project: Path):
    provider = _PlaybookRunProvider()
    olds = {**props(project), "changed": 3, "hosts": {"h1": {"ok": 3}}, "duration_s": 1.5}
    same = provider.diff("id", olds, props(project, extravars={"ignored": "the hash decides"}))
    assert same.changes is False
    other = provider.diff("id", olds, props(project, inputs_hash="bbb"))
    assert other.changes is True and other.replaces == []
    unknown = provider.diff("id", olds, props(project, inputs_hash=rpc.UNKNOWN))  # a preview, inputs not known yet
    assert unknown.changes is True and unknown.replaces == []


@pytest.fixture
def calls(monkeypatch) -> list[dict[str, Any]]:
    """The runner replaced: records its arguments and returns a result two tasks changed."""
    seen: list[dict[str, Any]] = []
    outcome: dict[str, Any] = {"failures": []}

    def fake(root: Path, playbook: str, inventory: Any, extravars: Any, secret_vars: Any, **kw: Any) -> Any:
        seen.append(
            {"root": root, "playbook": playbook, "inventory": inventory, "extravars": extravars, "secret": secret_vars}
        )
        return runner.PlaybookResult(
            playbook=playbook,
            rc=2 if outcome["failures"] else 0,
            status="failed" if outcome["failures"] else "successful",
            hosts={"h1": runner.HostStats(ok=4, changed=2)},
            duration_s=1.25,
            failures=outcome["failures"],
        )

    monkeypatch.setattr(runner, "run_playbook_isolated", fake)
    seen.append(outcome)  # seen[0] lets a test make the next run fail
    return seen


def test_create_and_update_run_the_playbook(project: Path, calls):
    provider = _PlaybookRunProvider()
    before = time.time()
    created = provider.create(props(project))
    assert created.id
    outs = created.outs
    assert outs["changed"] == 2 and outs["duration_s"] == 1.25
    assert before <= outs["finished_at"] <= time.time()
    assert outs["hosts"] == {"h1": {"ok": 4, "changed": 2, "failed": 0, "unreachable": 0, "skipped": 0}}
    assert outs["inputs_hash"] == "aaa" and outs["secret_vars"] == {"etcd_password": "p1"}
    run = calls[1]
    assert run["root"] == project and run["playbook"] == "etcd.yml"
    assert run["extravars"] == {"etcd_port": 2379} and isinstance(run["extravars"]["etcd_port"], int)
    assert run["secret"] == {"etcd_password": "p1"}

    updated = provider.update(created.id, outs, props(project, inputs_hash="bbb"))
    assert updated.outs["inputs_hash"] == "bbb" and len(calls) == 3

    calls[0]["failures"] = [runner.Failure("h1", "install etcd", "No package matching 'etcd'")]
    with pytest.raises(runner.PlaybookFailed, match="h1: install etcd: No package matching 'etcd'"):
        provider.update(created.id, outs, props(project, inputs_hash="ccc"))


def test_delete_runs_nothing(project: Path, calls):
    assert _PlaybookRunProvider().delete("id", props(project)) is None
    assert len(calls) == 1  # only the outcome holder


# --- under Pulumi's mocks -----------------------------------------------------------------------------------------


def test_secret_inputs_stay_secret(project: Path, secret_outputs):
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="hivestack", stack="unit", preview=False)

    @pulumi.runtime.test
    def program() -> pulumi.Output:
        inventory = pulumi.Output.from_input(INVENTORY)  # as it comes from the hosts' outputs
        run = PlaybookRun(
            "etcd",
            PlaybookRunArgs(
                root=project,
                playbook="etcd.yml",
                inventory=inventory,
                extravars={"etcd_port": 2379},
                secret_vars={"etcd_password": "p1"},  # a plain dict is made secret too
                triggers=["host-id-1"],
            ),
        )

        async def check(_: Any) -> None:
            sent = mocks.inputs["etcd"]
            # The monitor (the engine) receives the secrets wrapped as secrets, not in the clear.
            assert rpc.is_rpc_secret(sent["secret_vars"])
            assert rpc.unwrap_rpc_secret(sent["secret_vars"]) == {"etcd_password": "p1"}
            assert not rpc.is_rpc_secret(sent["extravars"]) and not rpc.is_rpc_secret(sent["inventory"])
            assert "secret_vars" in secret_outputs["etcd"]
            assert await run.secret_vars.is_secret()
            expected = inputs_hash(
                files_digest(project, "etcd.yml"),
                INVENTORY,
                {"etcd_port": 2379},
                {"etcd_password": "p1"},
                ["host-id-1"],
            )
            assert rpc.unwrap_rpc_secret(sent["inputs_hash"]) == expected
            assert sent["root"] == str(project.resolve())

        return run.urn.apply(check)

    program()
    assert SECRET_OUTPUTS == ["secret_vars"]


def test_two_stacks_on_the_same_addresses_never_share_ssh_control_sockets(tmp_path):
    def inventory(core_ns: str) -> dict:
        reach = f"-o ProxyCommand='ip netns exec {core_ns} nc %h %p' -o UserKnownHostsFile=/k/{core_ns}"
        return {"_meta": {"hostvars": {"a-db-1": {"ansible_host": "10.80.1.11", "ansible_ssh_common_args": reach}}}}

    lab = runner.control_dir(tmp_path, inventory("hs0001-core"))
    labtest = runner.control_dir(tmp_path, inventory("hs0002-core"))
    assert lab != labtest and lab.parent == labtest.parent == tmp_path / ".hivestack" / "ssh-control"
    assert runner.control_dir(tmp_path, inventory("hs0001-core")) == lab  # kept warm from one stage to the next


def test_each_stage_is_sent_only_the_secrets_its_playbook_hands_to_its_roles(root):
    from hivestack.ansible import STAGES
    from hivestack.ansible.stages import secrets_used

    used = {stage: set(secrets_used(root, stage)) for stage in STAGES}
    assert used["common"] == set()
    assert used["database"] == used["ledger"] == {"cells", "tls"}
    assert "cells" not in used["kubernetes"] | used["etcd"] | used["gateway"]
    assert {k for k in used["kubernetes"] if k.startswith("kube_")} == {
        "kube_service_account_key",
        "kube_service_account_public_key",
        "kube_encryption_key",
    }
    # The playbooks are the contract: no role reads the whole blob (it would get what its stage was not sent).
    for path in (root / "playbooks" / "roles").rglob("*.y*ml"):
        assert "hivestack_secrets" not in path.read_text(), path
    for path in (root / "playbooks" / "roles").rglob("*.j2"):
        assert "hivestack_secrets" not in path.read_text(), path


def test_each_stage_is_sent_the_trust_domains_it_installs_and_every_domain_reaches_a_stage(root):
    from hivestack.ansible import STAGES
    from hivestack.ansible.stages import only_domains, stage_secrets, tls_domains
    from hivestack.topology import load_topology
    from hivestack.topology.trust import trust_domains
    from tests.conftest import LAB_TOPOLOGY

    domains = [d.name for d in trust_domains(load_topology(LAB_TOPOLOGY))]
    sent = {stage: set(only_domains(dict.fromkeys(domains), tls_domains(root, stage))) for stage in STAGES}
    assert sent["common"] == set()
    assert sent["etcd"] == {"etcd-peer", "etcd-client"}
    assert sent["database"] == {d for d in domains if d.startswith("db-")} != set()
    assert sent["kubernetes"] == {"k8s-etcd-peer", "k8s-etcd-client", "kube-api"}
    assert set().union(*sent.values()) == set(domains)  # no domain that no stage installs
    for stage in STAGES:  # no pattern that names nothing
        assert all(only_domains(dict.fromkeys(domains), (p,)) for p in tls_domains(root, stage)), stage
    every = {"tls": {d: {"ca_cert": "x"} for d in domains}, "cells": {"cell-a": {}}, "etcd_root_password": "p"}
    assert stage_secrets(every, ("etcd_root_password", "tls"), ("etcd-*",)) == {
        "etcd_root_password": "p",
        "tls": {"etcd-peer": {"ca_cert": "x"}, "etcd-client": {"ca_cert": "x"}},
    }


def test_a_play_that_hands_over_tls_without_naming_its_domains_is_refused(tmp_path: Path):
    from hivestack.ansible.stages import tls_domains

    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "x.yml").write_text(
        "- name: X\n  hosts: all\n  roles:\n    - role: r\n      vars:\n        r_tls: '{{ hivestack_secrets.tls }}'\n"
    )
    with pytest.raises(ValueError, match="without naming its domains"):
        tls_domains(tmp_path, "x")
