#!/usr/bin/env bash
# Build (or reuse) the Pulumi engine pinned in tools/pulumi/go.mod and lay out the project-local bin directory
# .hivestack/bin: pulumi, the Python language host and the helper scripts it runs.
#
# Idempotent: a matching `pulumi` on PATH is used as it is; otherwise the binary is built once into the cache
# ${XDG_CACHE_HOME:-~/.cache}/hivestack/tools/, keyed by the pinned version and the wrapper module's hash, and
# reused by every clone. GOMODCACHE and GOCACHE stay outside the clone so rebuilds are warm.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wrapper=$root/tools/pulumi
bin=$root/.hivestack/bin
cache=${XDG_CACHE_HOME:-$HOME/.cache}/hivestack/tools
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

version=$(awk '$1 == "github.com/pulumi/pulumi/pkg/v3" {print $2}' "$wrapper/go.mod")
[ -n "$version" ] || { echo "error: tools/pulumi/go.mod: no github.com/pulumi/pulumi/pkg/v3 requirement" >&2; exit 2; }
tags=osusergo,grpcnotrace
ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version"
key=$( (cat "$wrapper/go.mod" "$wrapper/go.sum"; echo "$tags $ldflags") | sha256sum | cut -c1-12)
built=$cache/pulumi-$version-$key/pulumi
mkdir -p "$bin"

ambient=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$bin" | paste -sd:) command -v pulumi || true)
if [ -n "$ambient" ] && [ "$("$ambient" version 2>/dev/null)" = "$version" ]; then
  echo "pulumi $version: using $ambient"
  engine=$ambient
else
  if [ ! -x "$built" ]; then
    command -v go >/dev/null || { echo "error: go is not installed (needed to build pulumi $version)" >&2; exit 2; }
    echo "pulumi $version: building into $built (cold: a few minutes on 2 cores)"
    start=$SECONDS
    mkdir -p "$(dirname "$built")"
    (cd "$wrapper" && go build -trimpath -tags "$tags" -ldflags "$ldflags" \
      -o "$built.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
    mv "$built.tmp" "$built"
    echo "pulumi $version: built in $((SECONDS - start)) s"
  else
    echo "pulumi $version: cached at $built"
  fi
  engine=$built
fi
# A real file, not a symlink: the CLI looks for its bundled plugins next to the resolved binary, and these
# are this clone's. A hard link costs nothing; a copy is the fallback across file systems.
if ! [ "$bin/pulumi" -ef "$engine" ]; then
  rm -f "$bin/pulumi"
  ln "$engine" "$bin/pulumi" 2>/dev/null || cp "$engine" "$bin/pulumi"
fi

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
