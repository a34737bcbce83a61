"""Generated secrets (database and etcd passwords): made once at create, kept encrypted in the stack state."""

from __future__ import annotations

import secrets
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

SECRET_OUTPUTS = ["secret"]


class _GeneratedSecretProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        value = secrets.token_urlsafe(int(props["length"]))[: int(props["length"])]
        return CreateResult(id_=props["purpose"], outs={**props, "secret": value})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only a new length or purpose makes a new secret; the value itself is never re-rolled by a plain `up`.
        changed = [k for k in ("length", "purpose") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)


class GeneratedSecret(Resource):
    secret: pulumi.Output[str]

    def __init__(self, name: str, purpose: str, length: int = 32, opts: pulumi.ResourceOptions | None = None) -> None:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS))
        super().__init__(
            _GeneratedSecretProvider(),
            name,
            {"purpose": purpose, "length": length, "secret": None},
            opts,
        )
