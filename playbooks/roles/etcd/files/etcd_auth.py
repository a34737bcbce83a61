#!/usr/bin/python3
"""Idempotent etcd users: root, and one read-only role per reader limited to a key prefix.

Credentials reach etcdctl through its environment and new passwords through stdin, never on a command line.
Prints "changed" when it changed anything.
"""

import json
import os
import subprocess
import sys

BASE_ENV = {
    **os.environ,
    "ETCDCTL_API": "3",
    "ETCDCTL_ENDPOINTS": os.environ["ETCD_ENDPOINT"],
    "ETCDCTL_CACERT": os.environ["ETCD_CA_FILE"],
    "ETCDCTL_CERT": os.environ["ETCD_CERT_FILE"],
    "ETCDCTL_KEY": os.environ["ETCD_KEY_FILE"],
}


def etcdctl(*args: str, user: tuple[str, str] | None = None, new_password: str | None = None) -> str | None:
    """stdout, or None when etcdctl failed."""
    env = dict(BASE_ENV)
    if user:
        env["ETCDCTL_USER"], env["ETCDCTL_PASSWORD"] = user
    stdin = f"{new_password}\n{new_password}\n" if new_password is not None else ""
    proc = subprocess.run(["etcdctl", *args], env=env, input=stdin, capture_output=True, text=True, timeout=30)
    return proc.stdout if proc.returncode == 0 else None


def must(result: str | None, what: str) -> str:
    if result is None:
        sys.exit(f"etcd: {what} failed")
    return result


def main() -> None:
    root = ("root", os.environ["ETCD_ROOT_PASSWORD"])
    readers = json.loads(os.environ.get("ETCD_READERS", "[]"))
    changed = False
    if etcdctl("user", "get", "root", user=root) is None:
        # A fresh cluster has authentication off: create root (it gets the root role), then switch auth on.
        must(etcdctl("user", "add", "root", new_password=root[1]), "adding the root user")
        must(etcdctl("auth", "enable"), "enabling authentication")
        must(etcdctl("user", "get", "root", user=root), "logging in as root")
        changed = True
    for reader in readers:
        name, password, prefix = reader["name"], reader["password"], reader["prefix"]
        role = f"{name}-read"
        perms = etcdctl("role", "get", role, user=root)
        if perms is None:
            must(etcdctl("role", "add", role, user=root), f"adding role {role}")
            perms = ""
        if f"[{prefix}," not in perms:
            must(etcdctl("role", "grant-permission", role, "--prefix=true", "read", prefix, user=root), "granting")
            changed = True
        if etcdctl("get", "--prefix", prefix, "--limit", "1", user=(name, password)) is None:
            if etcdctl("user", "get", name, user=root) is None:
                must(etcdctl("user", "add", name, user=root, new_password=password), f"adding user {name}")
            else:
                must(etcdctl("user", "passwd", name, user=root, new_password=password), f"setting {name}'s password")
            changed = True
        if role not in must(etcdctl("user", "get", name, user=root), f"reading user {name}"):
            must(etcdctl("user", "grant-role", name, role, user=root), f"granting {role} to {name}")
            changed = True
    print("changed" if changed else "ok")


if __name__ == "__main__":
    main()
