"""The process-table sampler behind tests/lab/test_no_secrets_in_argv.py, on a fake /proc: a clean table, a secret in
a command line or an environment, processes that vanish or have no command line, and a sampler that fails."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hivestack.lab import hosts
from hivestack.lab.exposure import CONTROLLER, MASK, Exposure, Process, Sampler, exposures, read_table
from hivestack.lab.names import LabNames

pytestmark = pytest.mark.unit

SECRETS = {"cell-a database admin": "Zq81-admin-0123456789", "etcd root user": "Rt55-root-abcdefghij"}


def write_stat(root: Path, pid: int, env_start: int, start_time: int = 5) -> None:
    """/proc/<pid>/stat: the fields after the command name, with the start time (22) and environment bounds (50, 51)."""
    fields = ["0"] * 50
    fields[19], fields[47], fields[48] = str(start_time), str(env_start), str(env_start + 100)
    (root / str(pid) / "stat").write_text(f"{pid} (python3 a) b) " + " ".join(fields) + "\n")


def fake_proc(root: Path, processes: dict[int, tuple[list[str], list[str]]]) -> Path:
    """A /proc with one directory per pid holding NUL-separated cmdline and environ, plus what else /proc holds."""
    for pid, (argv, environ) in processes.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
        (root / str(pid) / "environ").write_bytes(b"".join(e.encode() + b"\0" for e in environ))
        write_stat(root, pid, env_start=1000 * pid)
    (root / "self").mkdir(exist_ok=True)  # not a pid
    (root / "meminfo").write_text("MemTotal: 1 kB\n")
    return root


CLEAN = {
    10: (["/usr/bin/python3", "/usr/local/lib/hivestack/galera_users.py"], ["PATH=/usr/bin", "LANG=C.UTF-8"]),
    11: (["etcdctl", "--user=root", "txn"], ["ETCDCTL_API=3", "ETCDCTL_USER=root"]),
    12: ([], []),  # a kernel thread: no command line
}


def nowhere(_pid: int) -> str | None:  # every process on the controller
    return None


def test_a_clean_table_exposes_nothing(tmp_path: Path):
    table = read_table({10: "a-db-1"}.get, fake_proc(tmp_path, CLEAN))
    assert sorted(p.pid for p in table) == [10, 11]
    assert {p.pid: p.where for p in table} == {10: "a-db-1", 11: CONTROLLER}
    assert next(p for p in table if p.pid == 10).environ == ("PATH=/usr/bin", "LANG=C.UTF-8")
    assert exposures(table, SECRETS) == []


def test_a_secret_on_a_command_line_is_named_and_blanked(tmp_path: Path):
    leaked = {**CLEAN, 20: (["mariadb", "-u", "hivestack_admin", f"-p{SECRETS['cell-a database admin']}"], [])}
    [found] = exposures(read_table({20: "b-db-1"}.get, fake_proc(tmp_path, leaked)), SECRETS)
    assert found == Exposure(
        "b-db-1", 20, "cell-a database admin", "command line", f"mariadb -u hivestack_admin -p{MASK}"
    )
    assert SECRETS["cell-a database admin"] not in str(found) and "b-db-1 pid 20" in str(found)


def test_a_secret_in_an_environment_is_found(tmp_path: Path):
    leaked = {**CLEAN, 21: (["/usr/bin/python3", "gns_seed.py"], [f"ETCDCTL_PASSWORD={SECRETS['etcd root user']}"])}
    [found] = exposures(read_table({}.get, fake_proc(tmp_path, leaked)), SECRETS)
    assert (found.where, found.pid, found.secret, found.place) == (CONTROLLER, 21, "etcd root user", "environment")


def test_an_unreadable_environment_is_no_finding():
    table = [Process(30, CONTROLLER, ("sshd",), None)]
    assert exposures(table, SECRETS) == []


def test_short_secrets_are_refused():
    with pytest.raises(ValueError, match="shorter than"):
        exposures([], {"pin": "1234"})


def test_the_sampler_records_markers_environments_and_each_exposure_once(tmp_path: Path):
    leaked = {**CLEAN, 20: (["sh", "-c", f"ETCDCTL_PASSWORD={SECRETS['etcd root user']} etcdctl get x"], [])}
    proc = fake_proc(tmp_path, leaked)
    sampler = Sampler(
        SECRETS, {10: "a-db-1", 20: "a-etcd-1"}.get, markers=("galera_users.py", "gns_seed.py"), proc=proc
    )
    sampler.sample()
    sampler.sample()  # the same processes: read once
    report = sampler.report
    assert report.samples == 2
    assert report.seen == {"galera_users.py": {"a-db-1"}, "gns_seed.py": set()}
    assert report.environments_read == {"a-db-1": 1, CONTROLLER: 1, "a-etcd-1": 1}
    assert [(e.where, e.pid, e.secret) for e in report.exposures] == [("a-etcd-1", 20, "etcd root user")]


def test_the_sampler_thread_samples_until_the_end_of_with(tmp_path: Path):
    deadline = time.monotonic() + 10
    with Sampler(SECRETS, nowhere, interval=0.01, proc=fake_proc(tmp_path, CLEAN)) as sampler:
        while sampler.report.samples < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
    assert sampler.report.samples >= 3
    assert sampler.report.exposures == [] and sampler.report.longest_gap_s > 0


def test_a_failing_sampler_fails_the_with_block(tmp_path: Path):
    def broken(_pid: int) -> str | None:
        raise OSError("cgroup hierarchy gone")

    proc = fake_proc(tmp_path, CLEAN)
    with pytest.raises(RuntimeError, match="the process sampler failed"), Sampler(SECRETS, broken, proc=proc):
        pass


def test_a_process_is_read_again_only_when_it_runs_another_command(tmp_path: Path):
    proc = fake_proc(tmp_path, CLEAN)
    last: dict[int, bytes] = {}
    assert {p.pid for p in read_table(nowhere, proc, last)} == {10, 11}
    assert read_table(nowhere, proc, last) == []  # nothing new
    leak = f"ETCDCTL_PASSWORD={SECRETS['etcd root user']}"
    (proc / "11" / "cmdline").write_bytes(b"etcdctl\0get\0x\0")  # exec'd another program, with a new environment
    (proc / "11" / "environ").write_bytes(leak.encode() + b"\0")
    [again] = read_table(nowhere, proc, last)
    assert again.pid == 11 and again.environ == (leak,)
    assert read_table(nowhere, proc, last) == []
    (proc / "11" / "environ").write_bytes(b"OTHER=1\0")  # the same command started again on the same pid
    write_stat(proc, 11, env_start=77)
    [same_argv] = read_table(nowhere, proc, last)
    assert same_argv.environ == ("OTHER=1",)
    (proc / "10" / "cmdline").unlink()  # gone: forgotten, so a new process under its pid is read
    assert read_table(nowhere, proc, last) == [] and set(last) == {11}


def test_host_of_reads_the_processes_cgroup(tmp_path: Path):
    names = LabNames("labtest")
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "cgroup").write_text(
        f"1:name=systemd:/{names.cgroup('a-db-1')}/system.slice/etcd.service\n0::/{names.cgroup('a-db-1')}/init.scope\n"
    )
    (tmp_path / "8").mkdir()
    (tmp_path / "8" / "cgroup").write_text("0::/user.slice/user-0.slice/session-1.scope\n")
    assert hosts.host_of(names, 7, tmp_path) == "a-db-1"
    assert hosts.host_of(names, 8, tmp_path) is None  # the controller
    assert hosts.host_of(names, 9, tmp_path) is None  # gone
