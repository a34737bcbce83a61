#!/usr/bin/env bash
# Build (or reuse) the Kubernetes layer's tools and link them into .hivestack/bin:
#   - kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, etcdctl and kwok: one multicall
#     binary from tools/kubernetes (one compile of the ~2,900 shared packages and one link instead of seven);
#   - the pulumi-kubernetes provider plugin from tools/pulumi-kubernetes, whose embedded schema and mapping are
#     generated here from the pinned provider module (never committed).
# A command of the pinned version already on PATH is used as it is; the rest are built once and cached outside
# the clone (tools/cached-go-build.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tools/cached-go-build.sh
. "$root/tools/cached-go-build.sh"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
mkdir -p "$hivestack_bin"

pinned() { # MODULE WRAPPER: the version go.mod requires
  local v
  v=$(awk -v m="$1" '$1 == m {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$2/go.mod")
  [ -n "$v" ] || { echo "error: $2/go.mod: no $1 requirement" >&2; exit 2; }
  printf '%s\n' "$v"
}

# --- the control plane, etcd and kwok
wrapper=$root/tools/kubernetes
k8s=$(pinned k8s.io/kubernetes "$wrapper")
etcd=$(pinned go.etcd.io/etcd/server/v3 "$wrapper")
kwok=$(pinned sigs.k8s.io/kwok "$wrapper")
minor=${k8s#v1.}
minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"

# command, the version it must report, and how to ask it
checks=(
  "kube-apiserver|$k8s|--version"
  "kube-controller-manager|$k8s|--version"
  "kube-scheduler|$k8s|--version"
  "kubectl|$k8s|version --client"
  "etcd|${etcd#v}|--version"
  "etcdctl|${etcd#v}|version"
  "kwok|${kwok#v}|--version"
)
missing=()
for check in "${checks[@]}"; do
  IFS='|' read -r name want args <<<"$check"
  # shellcheck disable=SC2086 # the version arguments are words
  found=$(ambient_tool "$name" "$want" $args)
  if [ -n "$found" ]; then
    echo "$name $want: using $found"
    ln -sfn "$found" "$hivestack_bin/$name"
  else
    missing+=("$name")
  fi
done
# The control-plane hosts always get the multicall binary (.hivestack/bin/hivestack-kube, copied by the kube_tools
# role): a command found on this machine's PATH serves this machine only.
cached_go_build hivestack-kube "$k8s" "$wrapper" "$ldflags" -ldflags "$ldflags" .
install_link "$BUILT" hivestack-kube
for name in "${missing[@]}"; do
  install_link "$BUILT" "$name"
done

# --- the pulumi-kubernetes provider plugin
wrapper=$root/tools/pulumi-kubernetes
module=github.com/pulumi/pulumi-kubernetes/provider/v4
# The served pseudo-version is upstream's v4.25.0 (tools/pulumi-kubernetes/go.mod); the plugin reports the tag.
plugin_version=$(pinned github.com/pulumi/pulumi-kubernetes/sdk/v4 "$wrapper")
source_dir=$(cd "$wrapper" && go mod download -json "$module@$(pinned "$module" "$wrapper")" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
python3 - "$source_dir/cmd/pulumi-resource-kubernetes" "$wrapper" "${plugin_version#v}" <<'PY'
"""The files upstream's generate.go makes: the schema with its version set, and the mapping re-serialized."""
import json
import sys
from pathlib import Path

source, wrapper, version = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
schema = json.loads((source / "schema.json").read_text())
schema["version"] = version
for name, content in (
    ("schema-embed.json", schema),
    ("terraform-mapping-embed.json", json.loads((source / "terraform-mapping.json").read_text())),
):
    text = json.dumps(content, separators=(",", ":"))
    target = wrapper / name
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
PY
ldflags="-s -w -X $module/pkg/version.Version=${plugin_version#v}"
cached_go_build pulumi-resource-kubernetes "$plugin_version" "$wrapper" "$ldflags" -ldflags "$ldflags" .
# Next to the engine: the engine takes a plugin found beside itself before it would look anywhere else.
install_link "$BUILT" pulumi-resource-kubernetes
