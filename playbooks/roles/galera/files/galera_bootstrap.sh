#!/bin/bash
# galera_bootstrap.sh CELL DATADIR PEER...: start CELL's cluster from this (its home) member, only when the member has
# never been part of a cluster (no grastate.dat, or one without a cluster id) and no peer is listening: a member that
# has been in the cluster must join it, never found a second one.
set -euo pipefail
cell=$1 datadir=$2
shift 2
uuid=$(sed -n 's/^uuid: *//p' "$datadir/grastate.dat" 2>/dev/null || true)
if [[ -n "$uuid" && "$uuid" != 00000000-0000-0000-0000-000000000000 ]]; then
  echo "member has been in cluster $uuid"; exit 0
fi
if systemctl -q is-active "hivestack-galera@$cell"; then echo "running"; exit 0; fi
for peer in "$@"; do
  if timeout 1 bash -c "exec 3<>/dev/tcp/${peer%:*}/${peer#*:}" 2>/dev/null; then
    echo "peer $peer is up: joining instead"; exit 0
  fi
done
install -d -m 0755 /run/hivestack
echo "GALERA_NEW_CLUSTER=--wsrep-new-cluster" > "/run/hivestack/galera-$cell.env"
trap 'rm -f "/run/hivestack/galera-$cell.env"' EXIT
systemctl start "hivestack-galera@$cell"
echo "bootstrapped $cell"
