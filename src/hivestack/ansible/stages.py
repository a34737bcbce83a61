"""The playbook stages `pulumi up` runs, in order, each a PlaybookRun that re-runs exactly when its inputs change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from hivestack.ansible.inventory import build, first_contact_record
from hivestack.ansible.playbook import PlaybookRun, PlaybookRunArgs
from hivestack.topology import LoadedTopology

# Each stage needs the ones before it: the base and TLS, then etcd (GNS lives there), the cells' databases, the
# gateways (which route to databases and watch etcd), and the ledger behind the gateways.
STAGES = ("common", "etcd", "database", "gateway", "ledger")


def configure_hosts(
    root: Path,
    loaded: LoadedTopology,
    lab_outputs: pulumi.Input[dict[str, Any]] | None,
    secrets: pulumi.Output[dict[str, Any]],
    triggers: list[pulumi.Input[Any]],
    depends_on: list[pulumi.Resource],
) -> list[PlaybookRun]:
    """One PlaybookRun per stage; the inventory is built from the topology and the lab's outputs (if any)."""
    trust = first_contact_record(root, pulumi.get_stack())  # used where the lab did not make the hosts
    inventory = pulumi.Output.from_input(lab_outputs).apply(
        lambda lab: build(loaded, {"lab": lab} if lab else {}, trust)
    )
    runs: list[PlaybookRun] = []
    for stage in STAGES:
        run = PlaybookRun(
            f"configure-{stage}",
            PlaybookRunArgs(
                root=root,
                playbook=f"{stage}.yml",
                inventory=inventory,
                secret_vars={"hivestack_secrets": secrets},
                triggers=triggers,
            ),
            pulumi.ResourceOptions(depends_on=[*depends_on, *runs[-1:]]),
        )
        runs.append(run)
    return runs
