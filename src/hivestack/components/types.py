"""Pulumi type tokens of the components; the policy pack selects resources by these."""

PLATFORM = "hivestack:index:Platform"
DATACENTER = "hivestack:index:DataCenter"
SERVER_POOL = "hivestack:index:ServerPool"
HOST = "hivestack:index:Host"
CELL = "hivestack:index:Cell"
FIREWALL_RULE = "hivestack:index:FirewallRule"
