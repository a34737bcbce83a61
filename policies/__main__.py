"""Hivestack policy pack: run with `pulumi preview --policy-pack policies`."""

from hivestack_policies import POLICIES
from pulumi_policy import PolicyPack

PolicyPack(name="hivestack", policies=POLICIES)
