"""The host firewall's file replaces its own nftables table and nothing else: the drills' table (and any other
tool's) survives a reload. Rendered here from the role's template with a sample allow list."""

from __future__ import annotations

import jinja2
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit


def render() -> str:
    template = (ROOT / "playbooks" / "roles" / "common" / "templates" / "nftables.conf.j2").read_text()
    allow = [{"service": "ssh", "sources": ["100.64.0.1"], "ports": [22]}]
    return jinja2.Template(template).render(ansible_managed="managed", common_firewall_allow=allow)


def test_the_firewall_replaces_only_its_own_table():
    statements = [line.strip() for line in render().splitlines() if line.strip() and not line.strip().startswith("#")]
    assert not any(s.startswith("flush") for s in statements), "a flush would remove other tools' tables"
    tables = [s for s in statements if s.startswith(("table ", "delete table "))]
    assert tables == ["table inet hivestack", "delete table inet hivestack", "table inet hivestack {"]
    assert 'tcp dport { 22 } accept comment "ssh"' in render()
