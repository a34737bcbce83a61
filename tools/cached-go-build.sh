# Sourced by tools/build-*.sh. Two rules every pinned Go tool follows:
#   - a binary of the pinned version already on PATH (outside the clone's .hivestack/bin) is used as it is;
#   - otherwise it is built once into ${XDG_CACHE_HOME:-~/.cache}/hivestack/tools/, keyed by the wrapper
#     module's files and the build flags, and every clone reuses it. GOMODCACHE and GOCACHE stay outside the
#     clone, so a rebuild after a pin moves is warm.

hivestack_bin=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.hivestack/bin

# ambient_tool NAME EXPECTED VERSION-ARGS...: print the PATH's NAME if `NAME VERSION-ARGS` mentions EXPECTED.
ambient_tool() {
  local name=$1 expected=$2 found
  shift 2
  found=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$hivestack_bin" | paste -sd:) command -v "$name") ||
    return 0
  if "$found" "$@" 2>/dev/null | grep -qF -- "$expected"; then
    printf '%s\n' "$found"
  fi
}

# cached_go_build NAME VERSION WRAPPER KEY-TEXT GO-BUILD-ARGS...: build (or find) NAME and set BUILT to its path.
# KEY-TEXT names whatever else shapes the binary (flags); the wrapper's go.mod, go.sum and *.go are always in.
cached_go_build() {
  local name=$1 version=$2 wrapper=$3 keytext=$4 key start
  shift 4
  key=$( (cat "$wrapper/go.mod" "$wrapper/go.sum"; cat "$wrapper"/*.go 2>/dev/null; echo "$keytext") |
    sha256sum | cut -c1-12)
  BUILT=${XDG_CACHE_HOME:-$HOME/.cache}/hivestack/tools/$name-$version-$key/$name
  if [ -x "$BUILT" ]; then
    echo "$name $version: cached at $BUILT"
    return
  fi
  command -v go >/dev/null || { echo "error: go is not installed (needed to build $name $version)" >&2; exit 2; }
  echo "$name $version: building into $BUILT (cold: minutes on 2 cores)"
  start=$SECONDS
  mkdir -p "$(dirname "$BUILT")"
  (cd "$wrapper" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -trimpath -o "$BUILT.tmp" "$@")
  mv "$BUILT.tmp" "$BUILT"
  echo "$name $version: built in $((SECONDS - start)) s"
}

# install_link TARGET NAME: NAME in .hivestack/bin is TARGET (a hard link: free, and the binary sees its own
# directory; a copy across file systems).
install_link() {
  local target=$1 name=$2
  mkdir -p "$hivestack_bin"
  if ! [ "$hivestack_bin/$name" -ef "$target" ]; then
    rm -f "$hivestack_bin/$name"
    ln "$target" "$hivestack_bin/$name" 2>/dev/null || cp "$target" "$hivestack_bin/$name"
  fi
}
