#!/usr/bin/env node
import fs from 'node:fs';
import { AgentError, toAgentError } from '../../../runner-proto/src/errors/index.js';
import { AgentClient, defaultSocketPath, type AgentAddress } from '../client/index.js';
import { takeGlobal, takeRunOptions, usage, type GlobalOptions } from './args.js';
import { apps, call, deploy, invoke, lifecycle } from './commands-apps.js';
import { logs, metrics, status } from './commands-agent.js';
import { ls, rm, run, upload, uploadFile } from './commands-modules.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { COMMAND_HELP, MAIN_HELP } from './help.js';
import { looksLikeFile, out } from './output.js';
import { waitForFile } from './wait-socket.js';

/** The agent's address: --tcp (with a token) or the Unix socket. */
function addressOf(g: GlobalOptions, env: NodeJS.ProcessEnv): AgentAddress {
  const tcp = g.tcp ?? env.WASMEDGE_AGENT_TCP;
  if (tcp === undefined || g.socket !== undefined) return { socketPath: g.socket ?? defaultSocketPath(env, { probeSystemd: true }) };
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(tcp);
  if (!m) throw usage(`--tcp expects HOST:PORT, got "${tcp}"`);
  const tokenFile = g.tokenFile ?? env.WASMEDGE_AGENT_TOKEN_FILE;
  let token = env.WASMEDGE_AGENT_TOKEN;
  if (tokenFile !== undefined) {
    try {
      token = fs.readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      throw usage(`cannot read --token-file ${tokenFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  if (!token) throw usage('--tcp needs a bearer token: --token-file FILE or $WASMEDGE_AGENT_TOKEN');
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port: Number(m[3]), token };
}

/** $WASMEDGE_AGENT_WAIT=SECONDS: how long a command may wait for an agent that is still starting. */
function waitOf(env: NodeJS.ProcessEnv): { waitMs?: number } {
  const v = env.WASMEDGE_AGENT_WAIT;
  if (v === undefined || v === '') return {};
  const s = Number(v);
  if (!Number.isFinite(s) || s < 0 || s > 3600) throw usage(`$WASMEDGE_AGENT_WAIT expects seconds (0-3600), got "${v}"`);
  return s > 0 ? { waitMs: s * 1000 } : {};
}

function wantsHelp(params: readonly string[]): boolean {
  const dash = params.indexOf('--');
  const head = dash >= 0 ? params.slice(0, dash) : params;
  return head.includes('--help') || head.includes('-h');
}

async function main(argv: string[]): Promise<number> {
  const { global, rest } = takeGlobal(argv);
  const [cmd, ...params] = rest;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    const topic = cmd === 'help' ? params[0] : undefined;
    out(topic && COMMAND_HELP[topic] ? COMMAND_HELP[topic] : MAIN_HELP);
    return cmd === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (COMMAND_HELP[cmd] && cmd !== 'run' && wantsHelp(params)) {
    out(COMMAND_HELP[cmd]);
    return EXIT.OK;
  }
  const address = addressOf(global, process.env);
  const wait = waitOf(process.env);
  const client = new AgentClient(address, { ...(global.timeoutMs !== undefined ? { timeoutMs: global.timeoutMs } : {}), ...wait });
  const json = global.json;
  if (wait.waitMs !== undefined && 'socketPath' in address) {
    // The WebSocket client loads while the agent starts, for the commands that run a module.
    if (cmd === 'run' || looksLikeFile(cmd)) client.prepareRun();
    await waitForFile(address.socketPath, wait.waitMs);
  }
  try {
    switch (cmd) {
      case 'upload':
        return await upload(client, params, json);
      case 'run': {
        const r = takeRunOptions(params);
        if (r.help) {
          out(COMMAND_HELP.run!);
          return EXIT.OK;
        }
        const ref = r.positional[0];
        if (!ref) throw usage('usage: wasmedge_emit run NAME|FILE [OPTIONS] [-- ARGS...]');
        client.prepareRun();
        const target = looksLikeFile(ref) ? await uploadFile(client, ref, { json: false, quiet: true }) : ref;
        return await run(client, target, r.passthrough, r.opts, r.json || json);
      }
      case 'ls':
        return await ls(client, params, json);
      case 'rm':
        return await rm(client, params, json);
      case 'deploy':
        return await deploy(client, params, json);
      case 'apps':
        return await apps(client, params, json);
      case 'stop':
      case 'start':
      case 'undeploy':
        return await lifecycle(client, cmd, params, json);
      case 'call':
        return await call(client, params, json);
      case 'invoke':
        return await invoke(client, params, json);
      case 'status':
        return await status(client, params, json);
      case 'logs':
        return await logs(client, params, json);
      case 'metrics':
        return await metrics(client, params);
      default: {
        // The original form: wasmedge_emit FILE [ARGS...] uploads and runs.
        if (looksLikeFile(cmd)) {
          client.prepareRun();
          const name = await uploadFile(client, cmd, { json: false, quiet: true });
          return await run(client, name, params, { env: {} }, json);
        }
        throw new AgentError('AGT_ERR_CONFIG_INVALID', `unknown command "${cmd}" (and no such .wasm file); see wasmedge_emit --help`);
      }
    }
  } finally {
    client.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = toAgentError(err);
    process.stderr.write(`wasmedge_emit: ${e.message}${e.code !== 'AGT_ERR_CONFIG_INVALID' ? ` [${e.code}]` : ''}\n`);
    process.exitCode = exitCodeFor(e.code);
  },
);
