#!/usr/bin/env bash
# The QEMU emulator demo: a real guest Linux (Debian kernel + busybox + node) deploys WebAssembly to the runner
# on this host through an ivshmem-plain shared-memory device (or through a virtio-serial port alone).
#
# usage: qemu/run.sh [--transport ring|serial] [--interactive | --script demo|test] [--timeout SECS]
#                    [--id NAME] [--log FILE] [--no-build]
#   --transport ring    (default) the runner creates /dev/shm/<id>; QEMU shares it as ivshmem-plain; the guest
#                       agent maps BAR2 and polls the rings across the VM boundary
#   --notify socket     (ring, default) doorbells: a second virtio-serial port, bridge.bell, whose chardev connects
#                       to the runner's REGION.bell socket; both sides sleep in the kernel between requests
#   --notify polling    (ring) no doorbells: the guest agent polls the BAR (spin, then sleeps of up to 4 ms)
#   --transport serial  the runner listens on a Unix socket; QEMU's virtio-serial port bridge.0 connects to it;
#                       the guest agent opens /dev/vportNpM and sends the same frames as a byte stream
#   --interactive       a shell on the guest console (type wasmedge_emit ...; 'exit' or Ctrl-A x to leave)
#   --script demo|test  scripted upload/run/hot-swap with a transcript (demo, default) or test markers (test)
#   --timeout SECS      bound on the whole guest run in scripted modes (default 240)
#   --id NAME           names the /dev/shm region and the temp dir (default wasm-bridge-qemu-<pid>)
#   --log FILE          also write the raw guest console there
#   --no-build          do not build (dist/, bundle, guest image) even if missing or stale
# Builds what is missing (tsc, bundle, guest image), starts the runner, boots QEMU under TCG (KVM on these
# machines is a PVM backend that cannot boot a stock kernel), shows the console, prints boot and deploy timings,
# and always cleans up: QEMU killed, runner stopped, socket and /dev/shm region removed.
# Environment: BRIDGE_SMP (vCPUs, default 2), BRIDGE_CPU (default max,-erms), BRIDGE_BIOS (default qboot.rom when
# installed; empty: QEMU's SeaBIOS), BRIDGE_KERNEL_ARGS (replaces the boot-speed kernel options below).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRANSPORT=ring
NOTIFY=socket
SCRIPT=demo
TIMEOUT=240
ID="wasm-bridge-qemu-$$"
LOG=""
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --transport) TRANSPORT="${2:-}"; shift 2 ;;
    --transport=*) TRANSPORT="${1#*=}"; shift ;;
    --notify) NOTIFY="${2:-}"; shift 2 ;;
    --notify=*) NOTIFY="${1#*=}"; shift ;;
    --interactive|--shell) SCRIPT=shell; shift ;;
    --script) SCRIPT="${2:-}"; shift 2 ;;
    --script=*) SCRIPT="${1#*=}"; shift ;;
    --timeout) TIMEOUT="${2:-}"; shift 2 ;;
    --id) ID="${2:-}"; shift 2 ;;
    --log) LOG="${2:-}"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "qemu/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$TRANSPORT" in ring|serial) ;; *) echo "qemu/run.sh: --transport must be ring or serial" >&2; exit 2 ;; esac
case "$NOTIFY" in socket|polling) ;; *) echo "qemu/run.sh: --notify must be socket or polling" >&2; exit 2 ;; esac
case "$SCRIPT" in demo|test|shell) ;; *) echo "qemu/run.sh: --script must be demo or test" >&2; exit 2 ;; esac
[[ "$ID" =~ ^[A-Za-z0-9._-]+$ ]] || { echo "qemu/run.sh: --id must be [A-Za-z0-9._-]+" >&2; exit 2; }
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || { echo "qemu/run.sh: --timeout must be whole seconds" >&2; exit 2; }

if [ -t 2 ]; then say() { printf '\033[1m## %s\033[0m\n' "$*" >&2; }; else say() { printf '## %s\n' "$*" >&2; }; fi
QEMU_BIN="$(command -v qemu-system-x86_64 || true)"
if [ -z "$QEMU_BIN" ]; then
  echo "qemu/run.sh: qemu-system-x86_64 is not installed (Debian: apt-get install qemu-system-x86)" >&2
  exit 3
fi

# ---- build what is missing
cd "$ROOT"
RUNNER_MAIN="$ROOT/dist/runner-proto/src/runner/main.js"
if [ "$BUILD" = 1 ]; then
  if [ ! -f "$RUNNER_MAIN" ] || [ -n "$(find runner-proto/src -name '*.ts' -newer "$RUNNER_MAIN" -print -quit)" ]; then
    say "building dist/ (tsc)"
    timeout 300 npx tsc -p tsconfig.json || [ -f "$RUNNER_MAIN" ] || { echo "qemu/run.sh: tsc failed" >&2; exit 1; }
  fi
  say "guest image (build/guest-image.sh; rebuilt only when its inputs changed)"
  timeout 900 bash "$ROOT/build/guest-image.sh" --quiet
fi
GUEST="$ROOT/build/out/guest"
for f in "$RUNNER_MAIN" "$GUEST/vmlinux" "$GUEST/initramfs.cpio"; do
  [ -s "$f" ] || { echo "qemu/run.sh: missing $f (run without --no-build)" >&2; exit 1; }
done

# ---- state and cleanup
TMP="$(mktemp -d "${TMPDIR:-/tmp}/$ID.XXXXXX")"
REGION="/dev/shm/$ID"
VS_SOCK="$TMP/vs0.sock"
RUNNER_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -s "$TMP/qemu.pid" ]; then
    local qp
    qp="$(cat "$TMP/qemu.pid")"
    if kill -0 "$qp" 2>/dev/null; then
      kill "$qp" 2>/dev/null || true
      for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qp" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$qp" 2>/dev/null || true
    fi
  fi
  if [ -n "$RUNNER_PID" ] && kill -0 "$RUNNER_PID" 2>/dev/null; then
    kill "$RUNNER_PID" 2>/dev/null || true
    for _ in $(seq 1 25); do kill -0 "$RUNNER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$RUNNER_PID" 2>/dev/null || true
  fi
  rm -f "$REGION" "$REGION.bell" "$VS_SOCK"
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# ---- the runner (the seL4-side prototype) on the host
if [ "$TRANSPORT" = ring ]; then
  RUNNER_ARGS=(--region "$REGION" --region-size 4194304 --ring-size 1048576 --notify "$NOTIFY")
else
  RUNNER_ARGS=(--socket "$VS_SOCK")
fi
say "runner: node dist/runner-proto/src/runner/main.js ${RUNNER_ARGS[*]}"
LOG_LEVEL="${RUNNER_LOG_LEVEL:-warn}" node "$RUNNER_MAIN" "${RUNNER_ARGS[@]}" > "$TMP/runner.out" 2> "$TMP/runner.log" &
RUNNER_PID=$!
for _ in $(seq 1 300); do
  grep -q READY "$TMP/runner.out" 2>/dev/null && break
  kill -0 "$RUNNER_PID" 2>/dev/null || { echo "qemu/run.sh: runner exited:" >&2; cat "$TMP/runner.log" >&2; exit 1; }
  sleep 0.1
done
grep -q READY "$TMP/runner.out" || { echo "qemu/run.sh: runner not ready within 30 s" >&2; cat "$TMP/runner.log" >&2; exit 1; }
if [ "$TRANSPORT" = ring ] && [ "$NOTIFY" = socket ]; then
  # QEMU's chardev connects to the doorbell socket once, at start: it must be listening.
  for _ in $(seq 1 50); do [ -S "$REGION.bell" ] && break; sleep 0.1; done
  [ -S "$REGION.bell" ] || { echo "qemu/run.sh: runner's doorbell socket $REGION.bell did not appear" >&2; exit 1; }
fi

# ---- QEMU (TCG)
# Kernel options that shave boot work under TCG (no console printk, no speculative-execution mitigations, no
# KASLR, no TSC/timer checks, no crypto self-tests: the SP800-108 KDF's own test alone took 0.3-0.8 s of the
# boot, initcall_debug showed). BRIDGE_KERNEL_ARGS replaces them (e.g. "loglevel=7 printk.time=1").
KERNEL_FAST="loglevel=0 mitigations=off nokaslr tsc=reliable no_timer_check random.trust_cpu=on cryptomgr.notests initcall_blacklist=crypto_kdf108_init"
# Two vCPUs (BRIDGE_SMP): QEMU runs each in a host thread, so node's helper threads (V8's compiler and GC tasks,
# libuv's file system pool) and the CLI that init starts beside the agent run in parallel instead of taking
# turns (each switch costs a soft-TLB flush under TCG): the agent's start went from 6.6 to 3.8 s (medians).
# CPU model (BRIDGE_CPU): without ERMS the guest kernel copies with `rep movsq` instead of `rep movsb`, which
# TCG emulates much faster: unpacking the 94 MB initramfs takes about 0.9 s less.
# Firmware (BRIDGE_BIOS): qboot, QEMU's minimal x86 firmware, hands over to the kernel about 0.2 s sooner than
# SeaBIOS under TCG; SeaBIOS (QEMU's default) when qboot is not installed.
BIOS="${BRIDGE_BIOS-}"
if [ -z "${BRIDGE_BIOS+set}" ]; then
  for d in /usr/share/qemu /usr/local/share/qemu "$(dirname "$QEMU_BIN")/../share/qemu"; do
    [ -f "$d/qboot.rom" ] && BIOS="$d/qboot.rom" && break
  done
fi
QEMU=("$QEMU_BIN" -accel tcg -cpu "${BRIDGE_CPU:-max,-erms}" -m 1024 -smp "${BRIDGE_SMP:-2}" -no-reboot ${BIOS:+-bios "$BIOS"}
  -kernel "$GUEST/vmlinux" -initrd "$GUEST/initramfs.cpio"
  -append "console=ttyS0 quiet ${BRIDGE_KERNEL_ARGS-$KERNEL_FAST} panic=-1 bridge.transport=$TRANSPORT bridge.notify=$NOTIFY bridge.script=$SCRIPT"
  -nic none -pidfile "$TMP/qemu.pid")
if [ "$TRANSPORT" = ring ]; then
  QEMU+=(-object "memory-backend-file,id=hostmem,size=4M,share=on,mem-path=$REGION" -device ivshmem-plain,memdev=hostmem)
  if [ "$NOTIFY" = socket ]; then
    QEMU+=(-device virtio-serial-pci,id=vser0 -chardev "socket,id=bell,path=$REGION.bell"
      -device virtserialport,bus=vser0.0,chardev=bell,name=bridge.bell)
  fi
else
  QEMU+=(-device virtio-serial-pci,id=vser0 -chardev "socket,id=vs0,path=$VS_SOCK"
    -device virtserialport,bus=vser0.0,chardev=vs0,name=bridge.0)
fi

if [ "$SCRIPT" = shell ]; then
  say "booting the guest (TCG), transport $TRANSPORT: a shell comes up on this console; Ctrl-A x quits QEMU"
  "${QEMU[@]}" -nographic
  exit 0
fi

say "booting the guest (TCG), transport $TRANSPORT, script $SCRIPT, bounded by ${TIMEOUT} s"
# The console goes through a line filter that shows it and takes host timestamps of the guest's markers.
T0="$EPOCHREALTIME"
elapsed() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
declare -A AT=()
FIRST_LINE=""
RESULT=""
while IFS= read -r line; do
  line="${line%$'\r'}"
  printf '%s\n' "$line"
  [ -n "$LOG" ] && printf '%s\n' "$line" >> "$LOG"
  [ -z "$FIRST_LINE" ] && FIRST_LINE="$(elapsed)"
  case "$line" in
    "# ["*"s] init started"*) AT[init]="$(elapsed)" ;;
    "# ["*"s] agent ready"*) AT[agent]="$(elapsed)" ;;
    "# ["*"s] first deployed output"*) AT[first]="$(elapsed)" ;;
    "# ["*"s] hot swap done"*) AT[swap]="$(elapsed)" ;;
    "# ["*"s] scenario done, 0 failed"*) RESULT=pass ;;
    "# ["*"s] scenario done, "*) RESULT=fail ;;
    "BRIDGE-RESULT fail"*) RESULT=fail ;;
  esac
done < <(timeout -k 5 "$TIMEOUT" "${QEMU[@]}" -display none -serial stdio -monitor none < /dev/null 2>&1; echo "qemu exit $?" > "$TMP/qemu.rc")
TOTAL="$(elapsed)"
QEMU_RC="$(cut -d' ' -f3 "$TMP/qemu.rc" 2>/dev/null || echo '?')"

echo
say "timings (host clock from QEMU start; the guest's own uptime is in its '# [ t s]' lines)"
printf '  %-34s %8s s\n' "guest init started" "${AT[init]:--}" "agent ready in the guest" "${AT[agent]:--}" \
  "first deployed output (hello)" "${AT[first]:--}" "hot swap to hello v2 shown" "${AT[swap]:--}" "QEMU exited (guest powered off)" "$TOTAL" >&2
if [ "$QEMU_RC" = 124 ] || [ "$QEMU_RC" = 137 ]; then
  echo "qemu/run.sh: the guest did not finish within ${TIMEOUT} s" >&2
  RESULT=fail
fi
if [ "$RESULT" != pass ]; then
  echo "qemu/run.sh: FAILED (qemu exit $QEMU_RC); runner log tail:" >&2
  tail -n 30 "$TMP/runner.log" >&2 || true
  exit 1
fi
say "passed over $TRANSPORT; cleaning up: QEMU gone, runner stopped, $( [ "$TRANSPORT" = ring ] && echo "$REGION" || echo "$VS_SOCK") removed"
