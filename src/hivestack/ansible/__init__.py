"""The Ansible layer: inventory derived from the topology and a stack's outputs (playbook resources later).

Middle floor: depends on `topology` only.
"""

# Each stage and the stages whose results it uses, declared in an order that lists every need first. The base and
# TLS come first; etcd holds GNS; the cells' databases; the Kubernetes control plane needs only the base (its own
# etcd, its own trust domains); the gateways route to the databases and watch GNS; the ledger runs behind the
# gateways with its database users, and retires the account the older stages once shared. `schedule` adds the order
# that sharing hosts imposes. Here, not in `stages`, so that naming them (drift's command line) does not import Pulumi.
STAGES: dict[str, tuple[str, ...]] = {
    "common": (),
    "etcd": ("common",),
    "database": ("common",),
    "kubernetes": ("common",),
    "gateway": ("etcd", "database"),
    "ledger": ("database", "gateway"),
}
