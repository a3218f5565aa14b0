#!/usr/bin/env bash
# Build the example WebAssembly modules (examples/<name>/<name>.c -> examples/<name>/<name>.wasm).
#
#   build/examples.sh           build all modules in place (idempotent)
#   build/examples.sh --check   rebuild into a temp dir, confirm the sources compile, and
#                               report whether the output is byte-identical to the committed .wasm
#   build/examples.sh --native  build in place, and also build build/out/nbody-native (clang -O2 -lm)
#
# Needs clang (14+) with the wasm32-wasi target, wasi-libc and lld (Debian: clang lld wasi-libc
# libclang-rt-dev-wasm32). Environment: CLANG (default: clang).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EX="$ROOT/examples"
CLANG="${CLANG:-clang}"

MODE=build
for arg in "$@"; do
  case "$arg" in
    --check) MODE=check ;;
    --native) MODE=native ;;
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "examples.sh: unknown argument: $arg" >&2; exit 64 ;;
  esac
done

if ! command -v "$CLANG" >/dev/null 2>&1; then
  echo "examples.sh: ERROR: '$CLANG' not found. Install clang, lld, wasi-libc and libclang-rt-dev-wasm32 (or set CLANG=...)." >&2
  exit 127
fi

CFLAGS=(--target=wasm32-wasi -O2 -Wall -Wextra -Werror)
LDFLAGS=(-Wl,--strip-all)

COMMANDS=(hello nbody trap spin grow overflow flood echo fsprobe)
REACTORS=(calc)

# Output directory: in place, or a temp dir for --check.
if [[ "$MODE" == check ]]; then
  OUT="$(mktemp -d "${TMPDIR:-/tmp}/examples-check.XXXXXX")"
  trap 'rm -rf "$OUT"' EXIT
else
  OUT="$EX"
fi

# build NAME OUTFILE [extra flags...]
build() {
  local name="$1" outfile="$2"; shift 2
  local dest="$OUT/$name/$outfile"
  mkdir -p "$(dirname "$dest")"
  echo "  CC  examples/$name/$name.c -> examples/$name/$outfile${*:+  ($*)}"
  "$CLANG" "${CFLAGS[@]}" "$@" "$EX/$name/$name.c" "${LDFLAGS[@]}" -o "$dest.tmp"
  chmod 0644 "$dest.tmp"
  mv -f "$dest.tmp" "$dest"
}

echo "Building example modules with $("$CLANG" --version | head -n1) (mode: $MODE)"
for name in "${COMMANDS[@]}"; do
  build "$name" "$name.wasm"
done
for name in "${REACTORS[@]}"; do
  build "$name" "$name.wasm" -mexec-model=reactor
done
build hello hello-v2.wasm "-DHELLO_TEXT=\"hello from wasm v2\""

if [[ "$MODE" == check ]]; then
  echo "All sources compile. Comparing with the committed modules:"
  same=0 differ=0
  while IFS= read -r f; do
    rel="${f#"$OUT"/}"
    if [[ ! -f "$EX/$rel" ]]; then
      echo "  MISSING    examples/$rel (not committed)"; differ=$((differ + 1))
    elif cmp -s "$f" "$EX/$rel"; then
      echo "  identical  examples/$rel"; same=$((same + 1))
    else
      echo "  DIFFERENT  examples/$rel ($(wc -c <"$f") vs $(wc -c <"$EX/$rel") bytes)"; differ=$((differ + 1))
    fi
  done < <(find "$OUT" -name '*.wasm' | sort)
  echo "check: OK ($same identical, $differ different; byte-identity is informational only)"
  exit 0
fi

if [[ "$MODE" == native ]]; then
  mkdir -p "$ROOT/build/out"
  echo "  CC  examples/nbody/nbody.c -> build/out/nbody-native  (native, -O2 -lm)"
  "$CLANG" -O2 -Wall -Wextra -Werror "$EX/nbody/nbody.c" -lm -o "$ROOT/build/out/nbody-native.tmp"
  mv -f "$ROOT/build/out/nbody-native.tmp" "$ROOT/build/out/nbody-native"
fi

echo "Done."
