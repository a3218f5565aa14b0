/** Help texts: `wasmedge_emit --help` and `wasmedge_emit COMMAND --help`. */

export const MAIN_HELP = `wasmedge_emit: upload WebAssembly to the agent, deploy it as apps, run and call it on the seL4 runner

usage:
  wasmedge_emit [GLOBAL OPTIONS] COMMAND ...
  wasmedge_emit FILE.wasm [ARGS...]              upload FILE and run it (the original form)

modules:
  upload FILE [--name NAME] [--sig FILE]         check and store a module
  run NAME|FILE [OPTIONS] [-- ARGS...]           run a command module; streams output, exits with its code
  ls                                             list stored modules
  rm NAME                                        remove a stored module
apps (desired state, kept running across runner restarts):
  deploy APP FILE|--module NAME [OPTIONS]        deploy or hot-swap app APP
  apps [APP]                                     list apps with their runner state and instances
  stop APP | start APP | undeploy APP            stop (keep the spec), start again, stop and forget
  call APP FN [ARGS...]                          call a reactor app's exported function
  invoke APP [--input FILE]                      run a command app: stdin in, stdout out
agent:
  status                                         runner link, apps and instances, modules, runs
  logs [APP] [-f] [--tail N]                     recent output and agent events; -f follows
  metrics                                        the Prometheus metrics, as text

global options (before COMMAND):
  --socket PATH        agent socket (default $WASMEDGE_AGENT_SOCKET, else /run/wasmedge-agent/agent.sock
                       when the systemd unit runs, else /run/wasmedge-agent.sock)
  --tcp HOST:PORT      use the agent's TCP listener ($WASMEDGE_AGENT_TCP); token from --token-file or
  --token-file FILE    $WASMEDGE_AGENT_TOKEN / $WASMEDGE_AGENT_TOKEN_FILE
  --timeout MS         bound for each request (default 60000)
  --json               machine-readable output (also accepted after the command)
  $WASMEDGE_AGENT_WAIT=SECONDS  keep retrying that long while the agent's socket is not up yet (boot scripts
                       that start the agent and the first command together); default 0, fail at once

exit codes: run, invoke and call pass the module's code through (WASI exit code; 134 trap or limit;
1 load error); otherwise 0 ok, 1 failure, 2 usage, 3 module or input rejected (check, policy, signature),
4 not found, 5 agent or runner unavailable, 6 not authorized (TCP token), 7 conflict (app stopped, wrong kind).
'wasmedge_emit COMMAND --help' explains each command.`;

export const COMMAND_HELP: Readonly<Record<string, string>> = {
  upload: `usage: wasmedge_emit upload FILE [--name NAME] [--kind command|reactor] [--sig FILE] [--json]

Checks FILE (format, validation, policy; signature when given or required) and stores it by sha256 under NAME
(default: the file's base name). Uploading the same bytes again is a no-op ("unchanged").
  --sig FILE   detached ed25519 signature of FILE (64 raw bytes, base64 or hex); default FILE.sig if it exists
  --kind K     what the module is meant to be; refused if its exports disagree
A progress bar shows on a terminal for modules over 1 MiB.`,
  run: `usage: wasmedge_emit run NAME|FILE [OPTIONS] [-- ARGS...]

Runs a command module's _start once, streaming its stdout and stderr; exits with the module's exit code
(134 for a trap or exceeded limit, 1 when it cannot be loaded). A FILE is uploaded first.
  --env NAME=VALUE (repeatable)  --time-limit MS  --memory-page-limit PAGES  --output-limit BYTES  --gas-limit N
  --json   print the exit record as JSON on stderr at the end
Ctrl-C kills the run.`,
  ls: `usage: wasmedge_emit ls [--json]

Lists stored modules: name, digest, size, last update.`,
  rm: `usage: wasmedge_emit rm NAME [--json]

Removes a stored module's name. Its bytes are deleted unless another name or an app still uses them.`,
  deploy: `usage: wasmedge_emit deploy APP FILE|--module NAME|DIGEST [OPTIONS]

Deploys app APP (or hot-swaps a new version: the runner compiles and warms it beside the old one, switches
atomically, then drains the old one; a version that fails leaves the old one serving). The app is part of the
agent's desired state: it comes back after a runner or agent restart (unless --no-autostart).
  FILE                   module to upload and deploy (signature: --sig, or FILE.sig beside it)
  --module NAME|DIGEST   deploy a stored module instead
  --kind command|reactor default: what the module exports (_start: command, _initialize: reactor)
  --arg A (repeatable)   --env NAME=VALUE (repeatable)
  --time-limit MS  --memory-page-limit PAGES  --output-limit BYTES  --gas-limit N
  --pool-min N  --pool-max N  --idle-ms MS   warm instances of a reactor (min 0 scales to zero)
  --no-autostart         after a runner restart, leave the app stopped
  --pin DIGEST | --unpin accept only this digest from now on / remove the pin
  --restart              redeploy even when nothing changed
Absent options keep the app's current values. Exit 0 deployed (or unchanged); the record is printed.`,
  apps: `usage: wasmedge_emit apps [APP] [--json]

Lists apps: desired state (running/stopped), status on the runner (running, pending, failed, drifted),
module digest, instances (idle/total) and calls.`,
  stop: `usage: wasmedge_emit stop APP [--json]

Undeploys APP from the runner and records it stopped; 'start' brings it back with the same settings.`,
  start: `usage: wasmedge_emit start APP [--json]

Deploys a stopped app again with its recorded settings.`,
  undeploy: `usage: wasmedge_emit undeploy APP [--json]

Stops APP and forgets it. Its module stays stored (remove it with rm).`,
  call: `usage: wasmedge_emit call APP FN [ARGS...] [--time-limit MS] [--gas-limit N] [--json]

Calls exported function FN of reactor app APP on a warm instance. Arguments are typed from FN's signature:
write numbers (i64 may be a decimal string), or TYPE:VALUE (i32:7, i64:-9007199254740993, f32:1.5, f64:2).
Prints the results, one per line; exits 0, or with the runner's exit code when the call trapped or hit a limit.`,
  invoke: `usage: wasmedge_emit invoke APP [--input FILE] [--json]

Runs command app APP once with stdin from FILE (default: this process's stdin when it is not a terminal) and
writes its stdout; exits with the module's exit code. Its stderr goes to the agent's log ('logs APP').`,
  status: `usage: wasmedge_emit status [--json]

Shows the runner link (transport, protocol, engines, health ping, channel counters), every app with its
status and instances, and module and run counts.`,
  logs: `usage: wasmedge_emit logs [APP] [-f|--follow] [--tail N] [--run ID] [--agent] [--json]

Prints recent lines from the agent's log ring: program output of runs and invokes, call failures, and agent
events (deploys, reconnections, inbox). APP filters to one app or module; --agent to the agent's own events.
-f keeps following until Ctrl-C. --json prints one JSON entry per line.`,
  metrics: `usage: wasmedge_emit metrics

Prints the agent's Prometheus metrics (the same text GET /metrics serves).`,
};
