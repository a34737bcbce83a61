"""Pulumi program: load the stack's topology, build the platform, export what other layers read."""

from pathlib import Path

import pulumi

from hivestack.ansible.stages import STAGES, configure_hosts
from hivestack.components import Platform, PlatformArgs
from hivestack.components.host import BareMetal, HostBackend
from hivestack.lab.backend import LabBackend
from hivestack.topology import LoadedTopology, TopologyError, load_topology, survivability_violations

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("baremetal", "lab")

config = pulumi.Config("hivestack")
backend_name = config.get("hostBackend") or "baremetal"
if backend_name not in BACKENDS:
    raise pulumi.RunError(f"hivestack:hostBackend is {backend_name!r}; valid: {', '.join(BACKENDS)}")

try:
    # Shape only: the survivability rules are enforced by the policy pack on what is declared below, so a
    # preview names the broken rule. They are also printed here, for runs without the pack.
    topology = load_topology(ROOT / config.require("topology"), survivability=False)
except TopologyError as e:
    # A located, one-line-per-problem message instead of a Python traceback.
    raise pulumi.RunError(f"invalid topology:\n{e}") from None
for violation in survivability_violations(topology):
    pulumi.log.warn(f"unsurvivable: {violation}")


def make_backend(loaded: LoadedTopology) -> HostBackend:
    if backend_name == "lab":
        return LabBackend(pulumi.get_stack(), loaded, ROOT, latency=config.get_bool("labLatency") is not False)
    return BareMetal()


backend = make_backend(topology)
platform = Platform(pulumi.get_stack(), PlatformArgs(topology=topology, backend=backend))
machines = backend.ready()

# Host configuration (Ansible) runs by default where Hivestack made the hosts; on bare metal it is opted into.
configure = config.get_bool("configureHosts")
if configure if configure is not None else backend_name == "lab":
    stages = configure_hosts(
        ROOT,
        topology,
        backend.outputs(),
        platform.host_secrets(),
        triggers=backend.instances(),  # a host made anew (not one booted again on its disk) is configured again
        depends_on=[*platform.tls.values(), *machines],
    )
    pulumi.export("configured", {stage: run.changed for stage, run in zip(STAGES, stages, strict=True)})
    # What `hivestack lab up` prints: how long each stage took and when it ended (an older run's, if it did not run).
    pulumi.export(
        "stage_times",
        {s: {"seconds": r.duration_s, "finished_at": r.finished_at} for s, r in zip(STAGES, stages, strict=True)},
    )

pulumi.export("topology", topology.topology.name)
pulumi.export("inventory", platform.inventory())
pulumi.export("cells", {name: cell.props for name, cell in platform.cells.items()})
# Public: clients outside the platform (load clients, checks, drills) verify its services with these.
pulumi.export("ca_certs", platform.ca_certs())
if (kubeconfig := platform.operator_kubeconfig()) is not None:
    pulumi.export("kubeconfig", kubeconfig)  # a secret: `hivestack kubeconfig` writes it to a 0600 file
if (access := backend.outputs()) is not None:
    pulumi.export("lab", access)
