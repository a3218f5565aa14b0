#!/bin/sh
# /init of the QEMU guest (busybox sh, PID 1). Mounts, starts the agent (and in the scripted modes the first
# deploy beside it), loads the virtio modules meanwhile, finds the ivshmem BAR and the virtio-serial ports by
# name and links them where the agent looks, then runs what the kernel command line asks for:
#   bridge.transport=ring|serial   ring: the agent maps the ivshmem-plain BAR2 (1af4:1110) the runner shares
#                                  serial: the same frames over the virtio-serial port named bridge.0
#   bridge.notify=polling|socket   ring only: socket = doorbell bytes on the virtio-serial port bridge.bell
#   bridge.script=demo|test|shell  demo: upload and run the examples, print a transcript, power off
#                                  test: the same, with machine-readable markers and checks, power off
#                                  shell: an interactive shell on the console (type wasmedge_emit ...)
# Dotted words are module parameters to the kernel, which does not pass them to init as environment: they are
# read from /proc/cmdline. Markers the host parses: "# [  5.43 s] ..." timing lines (guest uptime),
# BRIDGE-BEGIN/BRIDGE-END/BRIDGE-CHECK/BRIDGE-RESULT (test mode).
set -u
export PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=/root TERM="${TERM:-linux}"
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /run /tmp /var/lib
mount -t devpts devpts /dev/pts 2>/dev/null
hostname guest

uptime_s() { cut -d' ' -f1 /proc/uptime; }
stamp() { printf '# [%6s s] %s\n' "$(uptime_s)" "$*"; }
finish() {
  sync
  poweroff -f
  sleep 5
  exit 0
}

TRANSPORT=ring
SCRIPT=demo
NOTIFY=polling
for w in $(cat /proc/cmdline); do
  case "$w" in
    bridge.transport=*) TRANSPORT="${w#*=}" ;;
    bridge.script=*) SCRIPT="${w#*=}" ;;
    bridge.notify=*) NOTIFY="${w#*=}" ;;
    bridge.loglevel=*) export LOG_LEVEL="${w#*=}" ;;
  esac
done
export LOG_LEVEL="${LOG_LEVEL:-warn}"
# CRC32C in JavaScript: loading the native addon (dlopen + relocations) costs the agent about 0.5 s of its start
# under TCG, and the guest's frames and modules are small enough for the JS table loop.
export WASM_BRIDGE_CRC=js
IS_TEST=0
[ "$SCRIPT" = test ] && IS_TEST=1
mark() { [ "$IS_TEST" = 1 ] && echo "BRIDGE-$*"; return 0; }
fail() {
  echo "guest: $*"
  mark "RESULT fail: $*"
  if [ -s /tmp/agent.log ]; then echo "--- agent log (tail)"; tail -n 30 /tmp/agent.log; fi
  [ "$SCRIPT" = shell ] && return 0
  finish
}

stamp "init started (transport=$TRANSPORT script=$SCRIPT, $(uname -r))"

# ---- scripted demo / test: the steps
FAILS=0
STEP_TIMEOUT=120 # seconds for one wasmedge_emit command; the host bounds the whole boot as well
WAIT_FOR_AGENT=0 # > 0: the step may start before the agent listens; its CLI retries that many seconds
# step_start NAME -- COMMAND...: starts COMMAND in the background (stdout, stderr, exit code to /tmp/step-NAME.*)
step_start() {
  name="$1"
  shift 2
  printf '%s\n' "$*" > "/tmp/step-$name.cmd"
  rm -f "/tmp/step-$name.rc"
  (
    [ "$WAIT_FOR_AGENT" -gt 0 ] && export WASMEDGE_AGENT_WAIT="$WAIT_FOR_AGENT"
    timeout "$STEP_TIMEOUT" "$@" > "/tmp/step-$name.out" 2> "/tmp/step-$name.err"
    echo $? > "/tmp/step-$name.rc"
  ) &
  STEP_PID=$!
}
# step_finish NAME EXPECTED_EXIT EXPECTED_STDOUT_PATTERN: waits for the step started last, prints a transcript
#   ($ command, stdout, stderr, [exit N]) and checks the exit code and stdout. EXPECTED_STDOUT_PATTERN is a shell
#   case pattern matched against the whole stdout (exact text when no glob).
step_finish() {
  name="$1" want_rc="$2" want_out="$3"
  wait "$STEP_PID"
  mark "BEGIN $name"
  echo "\$ $(cat "/tmp/step-$name.cmd")"
  out="$(cat "/tmp/step-$name.out")"
  rc="$(cat "/tmp/step-$name.rc" 2>/dev/null || echo 255)"
  [ -n "$out" ] && printf '%s\n' "$out"
  [ -s "/tmp/step-$name.err" ] && cat "/tmp/step-$name.err"
  echo "[exit $rc]"
  mark "END $name exit=$rc uptime=$(uptime_s)"
  # shellcheck disable=SC2254
  case "$out" in
    $want_out) ok=1 ;;
    *) ok=0 ;;
  esac
  if [ "$rc" = "$want_rc" ] && [ "$ok" = 1 ]; then
    mark "CHECK ok $name"
  else
    FAILS=$((FAILS + 1))
    mark "CHECK FAIL $name: want exit $want_rc, got $rc"
    [ "$IS_TEST" = 1 ] || echo "!! unexpected result for $name (want exit $want_rc)"
  fi
}
# step NAME EXPECTED_EXIT EXPECTED_STDOUT_PATTERN -- COMMAND...: runs COMMAND and checks it (step_finish)
step() {
  s_name="$1" s_rc="$2" s_pat="$3"
  shift 4
  step_start "$s_name" -- "$@"
  step_finish "$s_name" "$s_rc" "$s_pat"
}
EX=/opt/bridge/examples
NL='
'

# ---- the agent, started first
# Under TCG node's start is the longest part of the boot; with two vCPUs it overlaps loading the virtio modules
# and finding the devices. The agent is given stable paths under /run/bridge, linked to the devices once they
# are there; until then its runner link retries (every 250 ms at most), and READY waits for the link (bounded).
export WASMEDGE_AGENT_SOCKET=/run/wasmedge-agent.sock
mkdir -p /var/lib/wasmedge-agent /run/bridge
IVSHMEM=""
for d in /sys/bus/pci/devices/*; do
  [ -f "$d/vendor" ] || continue
  if [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ]; then IVSHMEM="$d"; break; fi
done
case "$TRANSPORT" in
  ring)
    # The BAR is PCI core (no module), the doorbell port comes with virtio_console (below). The agent's attach
    # waits (10 s, then its link retries) for the region; with doorbells the region is linked after the bell, so
    # the agent never finds one without the other.
    [ -n "$IVSHMEM" ] || fail "no ivshmem device (PCI 1af4:1110) found"
    LINK="--region /run/bridge/region"
    if [ "$NOTIFY" = socket ]; then LINK="$LINK --notify socket"; else ln -sf "$IVSHMEM/resource2" /run/bridge/region; fi
    ;;
  serial) LINK="--runner-serial /run/bridge/link" ;;
  *) fail "unknown bridge.transport=$TRANSPORT (ring|serial)" ;;
esac
# Its stdout is a FIFO: init sleeps in read until READY instead of polling (a fork and exec every poll, a
# noticeable share of a vCPU under TCG). fd 3 stays open: the agent must never write into a closed pipe.
mkfifo /tmp/agent.out
# shellcheck disable=SC2086
node /opt/bridge/launch.cjs agent --socket "$WASMEDGE_AGENT_SOCKET" --store /var/lib/wasmedge-agent $LINK \
  > /tmp/agent.out 2> /tmp/agent.log &
AGENT_PID=$!
exec 3< /tmp/agent.out
# The first deploy is one CLI process (upload + run), started now: its node start overlaps the agent's, and
# its requests wait (bounded) for the agent's socket.
case "$SCRIPT" in
  demo | test)
    stamp "deploying"
    WAIT_FOR_AGENT=60
    step_start hello-args -- wasmedge_emit run $EX/hello/hello.wasm --env GREETING=seL4 -- alpha beta
    WAIT_FOR_AGENT=0
    ;;
esac

# ---- kernel modules: virtio_pci and virtio_console with their dependencies, in the order the build resolved
if [ -f /lib/modules/load-order ]; then
  while read -r m; do
    insmod "/lib/modules/$m.ko" 2>/dev/null || grep -q "^$m " /proc/modules || echo "guest: insmod $m failed"
  done < /lib/modules/load-order
fi

# ---- the channel devices
# find_vport NAME: sets VPORT to the /dev node of the virtio-serial port named NAME, waiting up to 5 s for it
find_vport() {
  VPORT=""
  i=0
  while :; do
    for n in /sys/class/virtio-ports/*/name; do
      [ -f "$n" ] || continue
      if [ "$(cat "$n")" = "$1" ]; then
        p="$(basename "$(dirname "$n")")"
        [ -c "/dev/$p" ] && VPORT="/dev/$p" && return 0
      fi
    done
    i=$((i + 1))
    [ "$i" -gt 100 ] && return 1
    usleep 50000
  done
}
case "$TRANSPORT" in
  ring)
    stamp "ivshmem BAR2 at $(basename "$IVSHMEM"), $(($(stat -c %s "$IVSHMEM/resource2") / 1048576)) MiB"
    # Doorbells (bridge.notify=socket): the host gave a virtio-serial port named bridge.bell whose chardev
    # connects to the runner's REGION.bell socket; the agent kicks and sleeps on it instead of polling the BAR.
    # The channel looks for the bell beside the region (REGION.bell, a character device here).
    if [ "$NOTIFY" = socket ]; then
      find_vport bridge.bell || fail "virtio-serial port bridge.bell has no /dev node"
      ln -sf "$VPORT" /run/bridge/region.bell
      ln -sf "$IVSHMEM/resource2" /run/bridge/region
      stamp "doorbell port bridge.bell at $VPORT"
    fi
    ;;
  serial)
    find_vport bridge.0 || fail "no virtio-serial port named bridge.0 in /sys/class/virtio-ports"
    ln -sf "$VPORT" /run/bridge/link
    stamp "virtio-serial port bridge.0 at $VPORT"
    ;;
esac

READY=""
while IFS= read -r -t 60 line <&3; do
  [ "$line" = READY ] && READY=1 && break
done
if [ -z "$READY" ]; then
  kill -0 "$AGENT_PID" 2>/dev/null && fail "agent not ready within 60 s"
  fail "agent exited before it was ready"
fi
stamp "agent ready (pid $AGENT_PID, $TRANSPORT)"

scenario() {
  # The first deploy (hello-args) was started with the agent (first_deploy_start).
  step_finish hello-args 0 "hello from wasm${NL}alpha${NL}beta${NL}GREETING=seL4"
  stamp "first deployed output"
  step hello-exit 3 "hello from wasm" -- wasmedge_emit run hello -- --exit 3
  step upload-nbody 0 "stored nbody sha256:*" -- wasmedge_emit upload $EX/nbody/nbody.wasm
  step nbody 0 "-0.169075164${NL}-0.169087605" -- wasmedge_emit run nbody -- 1000
  step trap 134 "about to trap" -- wasmedge_emit $EX/trap/trap.wasm
  echo "# hot deploy: a new version of hello under the same name"
  step upload-hello-v2 0 "stored hello sha256:*" -- wasmedge_emit upload $EX/hello/hello-v2.wasm --name hello
  step hello-v2 0 "hello from wasm v2" -- wasmedge_emit run hello
  stamp "hot swap done"
  if [ "$IS_TEST" = 1 ]; then
    step status 0 "*connected via $TRANSPORT*" -- wasmedge_emit status
  fi
}

case "$SCRIPT" in
  demo | test)
    scenario
    stamp "scenario done, $FAILS failed"
    if [ "$FAILS" = 0 ]; then mark "RESULT pass"; else fail "$FAILS step(s) failed"; fi
    kill "$AGENT_PID" 2>/dev/null
    finish
    ;;
  shell)
    cat <<EOF

  Guest ready: the agent talks to the runner on the host over $TRANSPORT.
  Try:  wasmedge_emit upload /opt/bridge/examples/hello/hello.wasm
        wasmedge_emit run hello -- alpha beta
        wasmedge_emit /opt/bridge/examples/nbody/nbody.wasm 1000
        wasmedge_emit status
  Examples are in /opt/bridge/examples; the agent log is /tmp/agent.log. 'exit' powers the guest off.

EOF
    setsid cttyhack /bin/sh -l
    kill "$AGENT_PID" 2>/dev/null
    finish
    ;;
  *) fail "unknown bridge.script=$SCRIPT (demo|test|shell)" ;;
esac
