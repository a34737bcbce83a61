"""Pulumi ComponentResources built from a loaded topology. `stacks/__main__.py` only wires these together."""

from hivestack.components.platform import Platform, PlatformArgs

__all__ = ["Platform", "PlatformArgs"]
