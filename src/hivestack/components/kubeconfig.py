"""The operator kubeconfig: one cluster and context per DC, each through that DC's gateway.

Every context checks the API's one name (tls-server-name), not the gateway's address, so any DC's gateway may front
any DC's API server; an operator whose DC is lost switches context and keeps the same credentials.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import yaml

from hivestack.topology import LoadedTopology
from hivestack.topology.model import Role
from hivestack.topology.ports import BY_NAME
from hivestack.topology.trust import KUBE_OPERATOR, KUBE_OPERATOR_ID, kube_api_name


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def operator_kubeconfig(loaded: LoadedTopology, *, ca_cert: str, certs: Mapping[str, Mapping[str, str]]) -> str:
    """The kubeconfig YAML, from the kube-api domain's CA and the operator's certificate among its `certs`."""
    name = loaded.topology.name
    port = BY_NAME["gateway-kube-api"].port
    gateways: dict[str, str] = {}
    for host in loaded.placement.hosts:
        if Role.gateway in host.roles:
            gateways.setdefault(host.dc, str(host.address))
    credential = certs[KUBE_OPERATOR_ID]
    contexts = [f"{name}-{dc}" for dc in gateways]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": f"{name}-{dc}",
                "cluster": {
                    "server": f"https://{address}:{port}",
                    "certificate-authority-data": _b64(ca_cert),
                    "tls-server-name": kube_api_name(name),
                },
            }
            for dc, address in gateways.items()
        ],
        "users": [
            {
                "name": KUBE_OPERATOR.user,
                "user": {
                    "client-certificate-data": _b64(credential["cert"]),
                    "client-key-data": _b64(credential["key"]),
                },
            }
        ],
        "contexts": [{"name": c, "context": {"cluster": c, "user": KUBE_OPERATOR.user}} for c in contexts],
        "current-context": contexts[0],
    }
    return yaml.safe_dump(config, sort_keys=False)
