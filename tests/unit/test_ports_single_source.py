"""The ports matrix (src/hivestack/topology/ports.py) is the only place a service port is written down.

Roles, templates, role defaults and the stage and drill playbooks take every port from `hivestack_ports` or from a
cell's `ports`, both derived from the matrix: a port spelled anywhere under playbooks/ would keep its old value when
the matrix changes, while the firewall (which follows the matrix) closed it.
"""

from __future__ import annotations

import re

import pytest

from hivestack.topology import load_topology
from hivestack.topology.ports import SERVICES, cell_ports
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

PLAYBOOKS = ROOT / "playbooks"
NUMBER = re.compile(r"\b\d+\b")


def matrix_ports() -> dict[int, str]:
    """Every port the matrix gives out on the repository's topologies (base ports and each cell's), to its service."""
    ports = {s.port: s.name for s in SERVICES}
    for topology in sorted((ROOT / "inventories").glob("*/topology.yaml")):
        for index, _cell in enumerate(load_topology(topology).topology.cells):
            for name, port in cell_ports(index).items():
                ports.setdefault(port, name)
    return ports


def spelled_ports(text: str, ports: dict[int, str]) -> list[tuple[int, int, str]]:
    """(line number, port, service) for every number in `text` that is one of `ports`."""
    return [
        (number, int(m.group()), ports[int(m.group())])
        for number, line in enumerate(text.splitlines(), start=1)
        for m in NUMBER.finditer(line)
        if int(m.group()) in ports
    ]


def test_the_scan_finds_a_spelled_port_and_ignores_other_numbers():
    ports = {8443: "gateway-https", 3316: "mysql"}
    text = "bind :{{ gateway_customer_port }}\nbind :8443 ssl\nmaxconn 4096\nid below 4294967295\nport = 3316\n"
    assert spelled_ports(text, ports) == [(2, 8443, "gateway-https"), (5, 3316, "mysql")]


def test_the_matrix_covers_every_cell_of_the_topologies():
    ports = matrix_ports()
    mysql = next(s for s in SERVICES if s.name == "mysql")
    cells = len(load_topology(ROOT / "inventories" / "sample-sz" / "topology.yaml").topology.cells)
    assert {mysql.port_of(i) for i in range(cells)} <= set(ports)


def test_no_role_template_or_playbook_spells_a_port_of_the_matrix():
    ports = matrix_ports()
    files = [
        p for p in sorted(PLAYBOOKS.rglob("*")) if p.is_file() and "__pycache__" not in p.relative_to(PLAYBOOKS).parts
    ]
    assert any(p.suffix == ".j2" for p in files) and any(p.name == "main.yml" for p in files)  # the scan sees roles
    found = [
        f"{path.relative_to(ROOT)}:{line}: {port} ({service})"
        for path in files
        for line, port, service in spelled_ports(path.read_text(encoding="utf-8"), ports)
    ]
    listed = "\n".join(found)
    assert not found, f"ports spelled outside the matrix (use hivestack_ports or the cell's ports):\n{listed}"
