#!/usr/bin/python3
"""Idempotent etcd users: root, and one read-only role per reader limited to a key prefix.

    /usr/bin/python3 etcd_auth.py < {"endpoint", "ca_file", "cert_file", "key_file", "root_password", "readers"}

Every password travels on stdin, never on a command line or in an environment (both readable in /proc): this
script reads them as JSON from its own stdin, and hands them to etcdctl on its stdin too. etcdctl 3.4, given
`--user NAME` without a password, reads one line from stdin for it (printing a "Password: " prompt on stdout);
`user add` and `user passwd` read the new password twice before that. Prints "changed" when it changed anything.
"""

import json
import os
import subprocess
import sys

SPEC = json.load(sys.stdin)
# Where and how to reach etcd: no secret in here. Inherited ETCDCTL_* variables are dropped (etcdctl refuses one
# that shadows a flag).
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")},
    "ETCDCTL_API": "3",
    "ETCDCTL_ENDPOINTS": SPEC["endpoint"],
    "ETCDCTL_CACERT": SPEC["ca_file"],
    "ETCDCTL_CERT": SPEC["cert_file"],
    "ETCDCTL_KEY": SPEC["key_file"],
}


def etcdctl(*args: str, user: tuple[str, str] | None = None, new_password: str | None = None) -> str | None:
    """stdout, or None when etcdctl failed."""
    argv, lines = ["etcdctl"], []
    if new_password is not None:
        lines += [new_password, new_password]  # asked for (and confirmed) before the login
    if user:
        argv.append(f"--user={user[0]}")
        lines.append(user[1])
    proc = subprocess.run(
        [*argv, *args],
        env=ENV,
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc.stdout if proc.returncode == 0 else None


def must(result: str | None, what: str) -> str:
    if result is None:
        sys.exit(f"etcd: {what} failed")
    return result


def main() -> None:
    root = ("root", SPEC["root_password"])
    changed = False
    if etcdctl("user", "get", "root", user=root) is None:
        # A fresh cluster has authentication off: create root (it gets the root role), then switch auth on.
        must(etcdctl("user", "add", "root", new_password=root[1]), "adding the root user")
        must(etcdctl("auth", "enable"), "enabling authentication")
        must(etcdctl("user", "get", "root", user=root), "logging in as root")
        changed = True
    for reader in SPEC["readers"]:
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
