"""A component whose declared properties are also its outputs, so policies and stack readers see one shape."""

from __future__ import annotations

from typing import Any

import pulumi


class Declared(pulumi.ComponentResource):
    def __init__(self, type_: str, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None) -> None:
        super().__init__(type_, name, props, opts)
        self.props = props
        self.register_outputs(props)
