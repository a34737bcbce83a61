#!/usr/bin/env bash
# Build (or reuse) the Pulumi engine pinned in tools/pulumi/go.mod and lay out the project-local bin directory
# .hivestack/bin: pulumi, the Python language host and the helper scripts it runs.
#
# Idempotent: a matching `pulumi` on PATH is used as it is, otherwise one built once and cached outside the clone
# (tools/cached-go-build.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wrapper=$root/tools/pulumi
bin=$root/.hivestack/bin
# shellcheck source=tools/cached-go-build.sh
. "$root/tools/cached-go-build.sh"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

version=$(awk '$1 == "github.com/pulumi/pulumi/pkg/v3" {print $2}' "$wrapper/go.mod")
[ -n "$version" ] || { echo "error: tools/pulumi/go.mod: no github.com/pulumi/pulumi/pkg/v3 requirement" >&2; exit 2; }
tags=osusergo,grpcnotrace
ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version"

engine=$(ambient_tool pulumi "$version" version)
if [ -n "$engine" ]; then
  echo "pulumi $version: using $engine"
else
  cached_go_build pulumi "$version" "$wrapper" "$tags $ldflags" -tags "$tags" -ldflags "$ldflags" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  engine=$BUILT
fi
# A real file, not a symlink: the CLI looks for its bundled plugins next to the resolved binary, and these
# are this clone's.
install_link "$engine" pulumi

# Scripts the language host and the dynamic-provider host run, shipped in the sdk/v3 module of the same version.
sdk=$(cd "$wrapper" && go mod download -json "github.com/pulumi/pulumi/sdk/v3@$version" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
for script in python/cmd/pulumi-language-python-exec python/dist/pulumi-resource-pulumi-python; do
  # Module cache files are read-only and not executable: install a copy.
  install -m 0755 "$sdk/$script" "$bin/$(basename "$script")"
done

# The Python language host (tools/pulumi/language_host.py; the upstream Go one is not obtainable here).
cat > "$bin/pulumi-language-python.tmp" <<LAUNCHER
#!/bin/sh
HIVESTACK_PULUMI_EXEC="$bin/pulumi-language-python-exec" exec "$root/.venv/bin/python" \\
  "$root/tools/pulumi/language_host.py" "\$@"
LAUNCHER
chmod 0755 "$bin/pulumi-language-python.tmp"
mv "$bin/pulumi-language-python.tmp" "$bin/pulumi-language-python"
