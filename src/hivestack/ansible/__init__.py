"""The Ansible layer: inventory derived from the topology and a stack's outputs (playbook resources later).

Middle floor: depends on `topology` only.
"""

# Each stage needs the ones before it: the base and TLS, then etcd (GNS lives there), the cells' databases, the
# gateways (which route to databases and watch etcd, and front the Kubernetes API), the ledger behind the gateways,
# and the Kubernetes control plane with its simulated nodes. Here, not in `stages`, so that naming them (drift's
# command line) does not import Pulumi.
STAGES = ("common", "etcd", "database", "gateway", "ledger", "kubernetes")
