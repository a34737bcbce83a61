"""A second run of the stages changes nothing, and shows no generated secret in any process's command line or
environment, on the controller or a host.

The stages that hand secrets to programs (etcd's users, each cell's database users, the GNS seed, the ledgers' and the
GNS agent's password files, the Kubernetes keys) run again while a sampler (hivestack.lab.exposure) reads
/proc every 50 ms, reads the command line and environment of every process started since, and looks for every password
the stack generated. The lab's hosts are systemd-nspawn containers on this machine's kernel, so their processes are in
the controller's /proc as well: the one sampler sees the controller and every host, and names each process's host from
its cgroups (hivestack.lab.hosts.host_of).

So that it cannot pass by sampling nothing, the test checks that it saw the helper of every secret task running on a
host, and environments read on every host. The GNS agent's etcd password is changed by hand first, so that the etcd
stage must set it again: the re-run hands a new password to etcdctl, not only logins. That password is the one thing
the re-run may change; every other stage must report `changed=0`. One re-run proves both, because each stage's run
takes minutes on the lab's emulated hosts.
"""

from __future__ import annotations

from functools import partial
from secrets import token_urlsafe

import pytest

from hivestack.ansible.platform_vars import platform_vars
from hivestack.lab import hosts
from hivestack.lab.exposure import CONTROLLER, Sampler
from tests.lab.conftest import ETCDCTL

pytestmark = pytest.mark.lab

SECRET_STAGES = ("etcd", "database", "gateway", "ledger", "kubernetes")
# What the secret tasks run on the hosts; each must have been sampled at least once.
HELPERS = ("etcd_auth.py", "galera_users.py", "gns_seed.py", "user passwd gns-agent")


def test_a_second_run_changes_nothing_and_shows_no_secret_in_any_command_line_or_environment(lab):
    platform = platform_vars(lab.topology)
    generated = lab.generated_secrets()
    # etcd root, GNS agent, the two Kubernetes keys, three per cell
    assert len(generated) == 2 + 2 + 3 * len(platform["hivestack_all_cells"])
    etcd = platform["hivestack_etcd_members"][0]["name"]

    def set_agent_password(password: str) -> None:
        # `user passwd` reads the new password twice, then root's for the login.
        login = f"{password}\n{password}\n{generated['etcd root user']}\n"
        proc = lab.ssh(etcd, f"{ETCDCTL} --user=root user passwd gns-agent", stdin=login)
        assert proc.returncode == 0, proc.stderr

    names = [h.name for h in lab.topology.placement.hosts]
    set_agent_password(token_urlsafe(24))
    try:
        with Sampler(generated, partial(hosts.host_of, lab.names), markers=HELPERS) as sampler:
            changed = lab.rerun_stages(*SECRET_STAGES)
    finally:
        set_agent_password(generated["GNS agent etcd user"])  # whatever happened: the agent logs in again
    report = sampler.report
    print(
        f"{report.samples} samples (longest gap {report.longest_gap_s:.2f} s); environments read: "
        f"{dict(sorted(report.environments_read.items()))}; helpers seen on: {report.seen}"
    )
    assert not report.exposures, "secrets exposed:\n" + "\n".join(str(e) for e in report.exposures)
    unseen = [helper for helper, where in report.seen.items() if not where - {CONTROLLER}]
    assert not unseen, f"never sampled {unseen} running on a host: the secret tasks ran unseen or not at all"
    assert set(names) <= set(report.environments_read), "some hosts' processes were never read"
    assert changed.pop("etcd") >= 1, "the etcd stage did not set the GNS agent's password changed by hand"
    assert changed == dict.fromkeys(SECRET_STAGES[1:], 0), f"a second run changed tasks: {changed}"
