#!/usr/bin/env bash
# Builds the QEMU guest for the emulator demo into build/out/guest/:
#   vmlinux          the uncompressed kernel from Debian's linux-image-amd64 (boots via its PVH note, fast under TCG)
#   initramfs.cpio   a raw newc cpio: busybox-static, the host's node (stripped when strip exists) + the libraries
#                    ldd names, the virtio kernel modules, the bundled agent + CLI (build/bundle.mjs) with koffi
#                    and @node-rs/crc32 and V8 code caches, the examples' .wasm and qemu/init.sh as /init
#   stamp            sha256 of every input; when it matches, nothing is rebuilt
# The kernel package is fetched with `apt-get download` into build/out/cache/ and unpacked with `dpkg -x`: it is
# never installed. Nothing else is downloaded. Every step is bounded with `timeout`.
#
# usage: bash build/guest-image.sh [--force] [--quiet]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/build/out/guest"
CACHE="$ROOT/build/out/cache"
BUNDLE="$ROOT/build/out/bundle"
FORCE=0
QUIET=0
for a in "$@"; do
  case "$a" in
    --force) FORCE=1 ;;
    --quiet) QUIET=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "guest-image: unknown option $a" >&2; exit 2 ;;
  esac
done
say() { [ "$QUIET" = 1 ] || echo "guest-image: $*" >&2; }
die() { echo "guest-image: $*" >&2; exit 1; }

for tool in apt-cache apt-get dpkg cpio xz ldd sha256sum flock timeout node; do
  command -v "$tool" >/dev/null 2>&1 || die "missing tool '$tool' (CI installs: busybox-static cpio xz-utils; see .ci/run)"
done
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || BUSYBOX="$(command -v busybox)"
# Debian's busybox-static installs a static /bin/busybox; the dynamic `busybox` package would need its libraries.
bb_ldd="$(LC_ALL=C ldd "$BUSYBOX" 2>&1 || true)"
grep -qE 'not a dynamic executable|statically linked' <<<"$bb_ldd" || die "$BUSYBOX is not static: install busybox-static"
NODE="$(readlink -f "$(command -v node)")"

mkdir -p "$OUT" "$CACHE"
exec 9>"$OUT/.lock"
flock -w 600 9 || die "another guest-image build holds $OUT/.lock"

# ---- 1. the kernel package: the versioned package linux-image-amd64 depends on, cached as a .deb
kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1
}
PKG="$(kernel_pkg || true)"
if [ -z "$PKG" ]; then
  # A fresh machine may have no package lists yet (apt-cache finds nothing before an update).
  cached="$(ls -1 "$CACHE"/linux-image-[0-9]*_amd64.deb 2>/dev/null | sort -V | tail -n1 || true)"
  if [ -n "$cached" ]; then
    PKG="$(basename "$cached" | cut -d_ -f1)"
  else
    say "apt package lists lack linux-image-amd64: apt-get update"
    timeout 300 apt-get update -qq || die "apt-get update failed"
    PKG="$(kernel_pkg || true)"
  fi
fi
[ -n "$PKG" ] || die "cannot resolve linux-image-amd64 to a versioned kernel package"
DEB="$(ls -1 "$CACHE/${PKG}"_*_amd64.deb 2>/dev/null | sort -V | tail -n1 || true)"
if [ -z "$DEB" ]; then
  say "downloading $PKG (apt-get download, not installed)"
  rm -f "$CACHE"/*.deb.partial
  ( cd "$CACHE" && timeout 300 apt-get download -q "$PKG" 2>&1 | grep -v 'unsandboxed as root' >&2 ) ||
    { say "apt-get download failed; refreshing package lists once"; timeout 300 apt-get update -qq && ( cd "$CACHE" && timeout 300 apt-get download -q "$PKG" ) ; } ||
    die "apt-get download $PKG failed"
  DEB="$(ls -1 "$CACHE/${PKG}"_*_amd64.deb 2>/dev/null | sort -V | tail -n1 || true)"
  [ -n "$DEB" ] || die "apt-get download left no ${PKG}_*.deb in $CACHE"
  # Keep one kernel package in the cache: drop those of older kernels.
  for old in "$CACHE"/linux-image-*.deb; do [ "$old" = "$DEB" ] || rm -f "$old"; done
fi

# ---- 2. the agent bundle (cheap, deterministic: rebuilt every time, its content is hashed)
say "bundling agent + CLI"
timeout 120 node "$ROOT/build/bundle.mjs" >/dev/null || die "build/bundle.mjs failed"

# ---- 3. the inputs' hash
mapfile -t NODE_LIBS < <(LC_ALL=C ldd "$NODE" | awk '/=> \//{print $3} /^[ \t]*\/[^ ]+ \(/{print $1}' | sort -u)
mapfile -t NATIVE_ADDONS < <(find "$BUNDLE/node_modules" -name '*.node' | sort)
for addon in "${NATIVE_ADDONS[@]}"; do
  mapfile -t -O "${#NODE_LIBS[@]}" NODE_LIBS < <(LC_ALL=C ldd "$addon" 2>/dev/null | awk '/=> \//{print $3} /^[ \t]*\/[^ ]+ \(/{print $1}')
done
mapfile -t NODE_LIBS < <(printf '%s\n' "${NODE_LIBS[@]}" | sort -u)
mapfile -t WASMS < <(cd "$ROOT" && find examples -name '*.wasm' -type f | LC_ALL=C sort)
INPUTS=("$ROOT/build/guest-image.sh" "$ROOT/qemu/init.sh" "$BUSYBOX" "$NODE" "${NODE_LIBS[@]}")
mapfile -t -O "${#INPUTS[@]}" INPUTS < <(find "$BUNDLE" -type f | LC_ALL=C sort)
for w in "${WASMS[@]}"; do INPUTS+=("$ROOT/$w"); done
STAMP="$( { echo "kernel $(basename "$DEB")"; sha256sum "${INPUTS[@]}" | sed "s|$ROOT/||"; } | sha256sum | cut -d' ' -f1)"
if [ "$FORCE" = 0 ] && [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$STAMP" ] && [ -s "$OUT/vmlinux" ] && [ -s "$OUT/initramfs.cpio" ]; then
  say "up to date ($OUT)"
  exit 0
fi

WORK="$(mktemp -d "$ROOT/build/out/.guest-work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# ---- 4. vmlinux: unpack the package, decompress the xz payload of the bzImage
KVER="${PKG#linux-image-}"
if [ "$FORCE" = 1 ] || [ ! -s "$OUT/vmlinux" ] || [ "$(cat "$OUT/vmlinux.from" 2>/dev/null)" != "$(basename "$DEB")" ] || [ ! -d "$OUT/modules" ]; then
  say "unpacking $(basename "$DEB") (dpkg -x)"
  timeout 300 dpkg -x "$DEB" "$WORK/kpkg" || die "dpkg -x $DEB failed"
  VMLINUZ="$WORK/kpkg/boot/vmlinuz-$KVER"
  [ -f "$VMLINUZ" ] || die "no boot/vmlinuz-$KVER in $(basename "$DEB")"
  # The bzImage setup header gives the protected-mode code start ((setup_sects+1)*512) and, inside it, the
  # compressed payload (payload_offset at 0x248, payload_length at 0x24c). Fall back to scanning for the xz magic.
  read -r PAY_OFF PAY_LEN < <(node -e '
    const b = require("fs").readFileSync(process.argv[1]);
    if (b.readUInt32LE(0x202) !== 0x53726448) { console.log("-1 0"); process.exit(0); }
    const setup = ((b[0x1f1] || 4) + 1) * 512;
    console.log(setup + b.readUInt32LE(0x248), b.readUInt32LE(0x24c));' "$VMLINUZ")
  if [ "$PAY_OFF" -lt 0 ] || [ "$(tail -c +"$((PAY_OFF + 1))" "$VMLINUZ" | head -c 6 | od -An -tx1 | tr -d ' \n')" != "fd377a585a00" ]; then
    PAY_OFF="$(node -e '
      const b = require("fs").readFileSync(process.argv[1]);
      console.log(b.indexOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])));' "$VMLINUZ")"
    PAY_LEN=0
    [ "$PAY_OFF" -ge 0 ] || die "no xz payload in $VMLINUZ (the Debian kernel is CONFIG_KERNEL_XZ)"
  fi
  if [ "$PAY_LEN" -gt 0 ]; then
    tail -c +"$((PAY_OFF + 1))" "$VMLINUZ" | head -c "$PAY_LEN" | timeout 120 xz -dc -q > "$WORK/vmlinux" 2>/dev/null || true
  else
    tail -c +"$((PAY_OFF + 1))" "$VMLINUZ" | timeout 120 xz -dc -q > "$WORK/vmlinux" 2>/dev/null || true
  fi
  [ "$(head -c 4 "$WORK/vmlinux" | od -An -tx1 | tr -d ' \n')" = "7f454c46" ] || die "decompressed payload is not an ELF vmlinux"
  # The virtio modules (Debian builds them =m; 6.1 ships them uncompressed, .ko.xz is handled anyway).
  rm -rf "$WORK/modules" && mkdir -p "$WORK/modules"
  MODDIR="$WORK/kpkg/lib/modules/$KVER"
  declare -A SEEN=()
  ORDER=()
  add_module() { # depth-first on the modinfo "depends=" field, dependencies first
    local name="$1" f deps d
    [ -n "${SEEN[$name]:-}" ] && return 0
    SEEN[$name]=1
    f="$(find "$MODDIR" -name "$name.ko" -o -name "$name.ko.xz" | head -n1)"
    [ -n "$f" ] || die "kernel module $name not found in $PKG"
    case "$f" in
      *.xz) xz -dc "$f" > "$WORK/modules/$name.ko" ;;
      *) cp "$f" "$WORK/modules/$name.ko" ;;
    esac
    deps="$(grep -a -o 'depends=[A-Za-z0-9_,-]*' "$WORK/modules/$name.ko" | head -n1 | cut -d= -f2 | tr ',' ' ')"
    for d in $deps; do add_module "${d//-/_}"; done
    ORDER+=("$name")
  }
  for m in virtio_pci virtio_console; do add_module "$m"; done
  printf '%s\n' "${ORDER[@]}" > "$WORK/modules/load-order"
  rm -rf "$OUT/modules" && mv "$WORK/modules" "$OUT/modules"
  mv "$WORK/vmlinux" "$OUT/vmlinux"
  basename "$DEB" > "$OUT/vmlinux.from"
  rm -rf "$WORK/kpkg"
fi

# ---- 5. the root file system
say "assembling initramfs"
R="$WORK/root"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,root,etc,var/lib,lib/modules,opt/bridge}
cp "$BUSYBOX" "$R/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ -e "$R/bin/$applet" ] || ln -s busybox "$R/bin/$applet"
done
# Stripping node's debug info and symbols takes 13 MB off the initramfs the guest kernel must unpack.
if command -v strip >/dev/null 2>&1; then strip --strip-all -o "$R/usr/bin/node" "$NODE"; else cp "$NODE" "$R/usr/bin/node"; fi
for lib in "${NODE_LIBS[@]}"; do
  mkdir -p "$R$(dirname "$lib")"
  cp -L "$lib" "$R$lib"
done
# The dynamic loader is looked up at the path the binary names (PT_INTERP), usually /lib64/ld-linux-x86-64.so.2.
INTERP="$(LC_ALL=C ldd "$NODE" | awk '/ld-linux/{print ($3 ~ /^\//) ? $3 : $1}' | head -n1)"
[ -n "$INTERP" ] && [ -e "$R$INTERP" ] || die "cannot place node's loader ($INTERP)"
cp "$OUT/modules/"*.ko "$OUT/modules/load-order" "$R/lib/modules/"
cp -r "$BUNDLE/." "$R/opt/bridge/"
# V8 code caches for launch.cjs, written by this host's node (the very binary the guest runs): start the agent and
# do what the guest's first deploy does through the CLI, so the caches hold the functions that path compiles.
# With the host runner (dist/, built by run.sh before this) that includes the HELLO, deploy and run paths of the
# agent and the CLI's WebSocket; without it, start-up and an upload only.
say "warming V8 code caches"
W="$WORK/warm"
mkdir -p "$W"
(
  cd "$W"
  # The guest's environment (qemu/init.sh), so the caches hold the functions the guest runs.
  export BRIDGE_CODE_CACHE=write LOG_LEVEL=silent WASM_BRIDGE_CRC=js
  RUNNER_JS="$ROOT/dist/runner-proto/src/runner/main.js"
  rpid=""
  LINK=(--runner-socket "$W/none.sock")
  if [ -f "$RUNNER_JS" ]; then
    node "$RUNNER_JS" --socket "$W/r.sock" > "$W/runner.out" 2>&1 &
    rpid=$!
    for _ in $(seq 1 100); do grep -q READY "$W/runner.out" 2>/dev/null && break; kill -0 "$rpid" 2>/dev/null || break; sleep 0.1; done
    if grep -q READY "$W/runner.out"; then LINK=(--runner-socket "$W/r.sock"); else kill "$rpid" 2>/dev/null; rpid=""; fi
  fi
  node "$R/opt/bridge/launch.cjs" agent --socket "$W/a.sock" --store "$W/store" "${LINK[@]}" > "$W/agent.out" 2>&1 &
  apid=$!
  for _ in $(seq 1 200); do grep -q READY "$W/agent.out" 2>/dev/null && break; kill -0 "$apid" 2>/dev/null || break; sleep 0.1; done
  grep -q READY "$W/agent.out" || { kill "$apid" ${rpid:+"$rpid"} 2>/dev/null; sed 's/^/  /' "$W/agent.out" >&2; exit 1; }
  CLI=(node "$R/opt/bridge/launch.cjs" cli --socket "$W/a.sock")
  if [ -n "$rpid" ]; then
    timeout 30 "${CLI[@]}" run "$ROOT/examples/hello/hello.wasm" --env GREETING=warm -- a b > /dev/null 2>&1 || true
    timeout 30 "${CLI[@]}" run hello -- --exit 3 > /dev/null 2>&1 || true
  else
    timeout 30 "${CLI[@]}" upload "$ROOT/examples/hello/hello.wasm" > /dev/null || true
  fi
  kill -TERM "$apid"
  for _ in $(seq 1 100); do kill -0 "$apid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$apid" 2>/dev/null || true
  wait "$apid" 2>/dev/null || true
  if [ -n "$rpid" ]; then
    kill -TERM "$rpid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$rpid" 2>/dev/null || true
    wait "$rpid" 2>/dev/null || true
  fi
) || echo "guest-image: WARNING: the bundled agent did not start on this host (output above); the guest's will fail the same way" >&2
# Best effort: launch.cjs compiles without a cache (slower under TCG) when one is missing.
rm -rf "$W"
[ -s "$R/opt/bridge/agent.cjs.cache" ] && [ -s "$R/opt/bridge/cli.cjs.cache" ] || echo "guest-image: WARNING: no V8 code cache written" >&2
for w in "${WASMS[@]}"; do
  mkdir -p "$R/opt/bridge/$(dirname "$w")"
  cp "$ROOT/$w" "$R/opt/bridge/$w"
done
install -m 0755 "$ROOT/qemu/init.sh" "$R/init"
cat > "$R/usr/bin/wasmedge_emit" <<'EOF'
#!/bin/sh
# The wasmedge_emit CLI, bundled (build/bundle.mjs); talks to the agent on $WASMEDGE_AGENT_SOCKET.
exec /usr/bin/node /opt/bridge/launch.cjs cli "$@"
EOF
chmod 0755 "$R/usr/bin/wasmedge_emit"
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"
echo 'guest' > "$R/etc/hostname"
# The guest agent's config: no prom-client process metrics. Their event-loop-lag monitor is a 10 ms timer, a
# hundred wake-ups a second in an otherwise idle agent; under TCG each costs a soft-TLB flush and slows the CLI.
mkdir -p "$R/etc/wasmedge-agent"
printf '{ "metrics": { "processMetrics": false } }\n' > "$R/etc/wasmedge-agent/config.json"
printf '127.0.0.1 localhost guest\n' > "$R/etc/hosts"
( cd "$R" && find . -mindepth 1 | LC_ALL=C sort | timeout 120 cpio -o -H newc -R 0:0 --quiet ) > "$WORK/initramfs.cpio" ||
  die "cpio failed"
mv "$WORK/initramfs.cpio" "$OUT/initramfs.cpio"
echo "$STAMP" > "$OUT/stamp"
say "built $OUT/vmlinux ($(du -h "$OUT/vmlinux" | cut -f1)) and initramfs.cpio ($(du -h "$OUT/initramfs.cpio" | cut -f1)) from $PKG"
