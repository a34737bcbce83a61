"""Generated secrets (database and etcd passwords, Kubernetes keys): made once at create, kept encrypted in the
stack state.

A `kind` says what is made: a random token of `length` characters, or an ECDSA P-256 private key (PEM, PKCS#8) such
as the Kubernetes service-account signing key. Only a new kind, length or purpose makes a new value.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Any

import pulumi
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

SECRET_OUTPUTS = ["secret"]


class SecretKind(StrEnum):
    token = "token"
    ec_p256_key = "ec-p256-key"


def generate(kind: SecretKind, length: int) -> str:
    if kind is SecretKind.ec_p256_key:
        key = ec.generate_private_key(ec.SECP256R1())
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    return secrets.token_urlsafe(length)[:length]


def public_key_pem(private_pem: str) -> str:
    """The public half of a generated key (PEM, SubjectPublicKeyInfo): what verifies the tokens the key signs.

    kube-apiserver reads the keys it verifies with as public keys or SEC1/PKCS#1 private keys, never PKCS#8.
    """
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


class _GeneratedSecretProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        value = generate(SecretKind(props.get("kind") or SecretKind.token), int(props["length"]))
        return CreateResult(id_=props["purpose"], outs={**props, "secret": value})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # The value itself is never re-rolled by a plain `up`. State written before kinds existed holds tokens.
        olds = {"kind": SecretKind.token.value, **olds}
        changed = [k for k in ("kind", "length", "purpose") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)


class GeneratedSecret(Resource):
    secret: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        purpose: str,
        length: int = 32,
        kind: SecretKind = SecretKind.token,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS))
        super().__init__(
            _GeneratedSecretProvider(),
            name,
            {"purpose": purpose, "length": length, "kind": kind.value, "secret": None},
            opts,
        )
