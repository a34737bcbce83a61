"""Disaster-recovery drills: cut a DC (or a host) under load, measure every cell's recovery, prove nothing was lost.

`catalog` names the drills, `runbook` runs one (steady, load, inject, measure, heal, verify, report), `faults`
injects through the lab's own primitives or through the drill playbooks (the production path), `load` drives the
ledger through the gateways, `measure`, `consistency` and `targets` judge, `report` writes the results.
"""
