#!/usr/bin/env node
import fs from 'node:fs';
import path from 'node:path';
import { AgentError, toAgentError } from '../../../runner-proto/src/errors/index.js';
import type { ExitMessage } from '../../../runner-proto/src/protocol/index.js';
import { AgentClient, defaultSocketPath } from '../client/index.js';
import { takeGlobal, takeRunOptions, type RunOptions } from './args.js';
import { EXIT, exitCodeFor } from './exit-codes.js';

const HELP = `wasmedge_emit: upload WebAssembly to the agent and run it on the seL4 runner

usage:
  wasmedge_emit [--socket PATH] [--json] COMMAND ...
  wasmedge_emit FILE.wasm [ARGS...]             upload FILE and run it (the original form)

commands:
  upload FILE [--name NAME]                     check and store a module (name defaults to the file's base name)
  run NAME|FILE [OPTIONS] [-- ARGS...]          run a module; streams its output, exits with its exit code
      --env NAME=VALUE   (repeatable)  --time-limit MS  --memory-page-limit PAGES  --output-limit BYTES
  ls                                            list stored modules
  rm NAME                                       remove a module
  status                                        runner link, modules, runs

exit codes: run passes the module's code through (WASI exit code; 134 trap or limit; 1 load error);
otherwise 0 ok, 1 failure, 2 usage, 3 module or input rejected, 4 not found, 5 agent or runner unavailable.
The agent socket is --socket, else $WASMEDGE_AGENT_SOCKET, else /run/wasmedge-agent.sock.`;

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function looksLikeFile(ref: string): boolean {
  return ref.endsWith('.wasm') || ref.includes('/') ? fs.existsSync(ref) : false;
}

function nameFromFile(file: string): string {
  return path.basename(file).replace(/\.wasm$/i, '');
}

function readModule(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new AgentError('AGT_ERR_NOT_FOUND', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { path: file });
  }
}

async function upload(client: AgentClient, file: string, name: string | undefined, json: boolean, quiet = false): Promise<string> {
  const bytes = readModule(file);
  const moduleName = name ?? nameFromFile(file);
  const r = await client.upload(moduleName, bytes);
  if (json) out(JSON.stringify(r));
  else if (!quiet) out(`${r.created ? 'stored' : 'unchanged'} ${r.name} ${r.digest} (${r.size} bytes, ${r.module.kind})`);
  return r.name;
}

async function run(client: AgentClient, ref: string, args: string[], opts: RunOptions, json: boolean): Promise<number> {
  const limits = { timeMs: opts.timeMs, memoryPages: opts.memoryPages, outputBytes: opts.outputBytes };
  const ac = new AbortController();
  const onSignal = (): void => ac.abort();
  process.once('SIGINT', onSignal);
  let exit: ExitMessage;
  try {
    exit = await client.run(
      ref,
      { args, env: opts.env, limits: Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined)) },
      { onStdout: (c) => process.stdout.write(c), onStderr: (c) => process.stderr.write(c) },
      { signal: ac.signal },
    );
  } finally {
    process.off('SIGINT', onSignal);
  }
  if (json) process.stderr.write(`${JSON.stringify(exit)}\n`);
  else if (exit.reason !== 'exit') process.stderr.write(`wasmedge_emit: ${ref}: ${exit.reason}${exit.message ? `: ${exit.message}` : ''} (exit ${exit.exitCode})\n`);
  return exit.exitCode;
}

async function main(argv: string[]): Promise<number> {
  const { global, rest } = takeGlobal(argv);
  const client = new AgentClient(global.socket ?? defaultSocketPath());
  const [cmd, ...params] = rest;
  switch (cmd) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      out(HELP);
      return cmd === undefined ? EXIT.USAGE : EXIT.OK;
    case 'upload': {
      let file: string | undefined;
      let name: string | undefined;
      let json = global.json;
      for (let i = 0; i < params.length; i++) {
        const p = params[i]!;
        if (p === '--name') name = params[++i];
        else if (p === '--json') json = true;
        else if (p.startsWith('-')) throw new AgentError('AGT_ERR_CONFIG_INVALID', `unknown option ${p} for upload`);
        else if (file === undefined) file = p;
        else throw new AgentError('AGT_ERR_CONFIG_INVALID', `upload takes one FILE, got also "${p}"`);
      }
      if (!file) throw new AgentError('AGT_ERR_CONFIG_INVALID', 'usage: wasmedge_emit upload FILE [--name NAME]');
      await upload(client, file, name, json);
      return EXIT.OK;
    }
    case 'run': {
      const { opts, json, positional, passthrough } = takeRunOptions(params);
      const ref = positional[0];
      if (!ref) throw new AgentError('AGT_ERR_CONFIG_INVALID', 'usage: wasmedge_emit run NAME|FILE [OPTIONS] [-- ARGS...]');
      const target = looksLikeFile(ref) ? await upload(client, ref, undefined, false, true) : ref;
      return run(client, target, passthrough, opts, json || global.json);
    }
    case 'ls': {
      const mods = await client.list();
      if (global.json || params.includes('--json')) out(JSON.stringify(mods));
      else for (const m of mods) out(`${m.name.padEnd(24)} ${m.digest.slice(0, 19)}  ${String(m.size).padStart(9)}  ${m.updatedAt}`);
      return EXIT.OK;
    }
    case 'rm': {
      const name = params.find((p) => !p.startsWith('-'));
      if (!name) throw new AgentError('AGT_ERR_CONFIG_INVALID', 'usage: wasmedge_emit rm NAME');
      const r = await client.remove(name);
      if (global.json || params.includes('--json')) out(JSON.stringify(r));
      else out(`removed ${r.name}`);
      return EXIT.OK;
    }
    case 'status': {
      const s = await client.status();
      if (global.json || params.includes('--json')) out(JSON.stringify(s));
      else {
        const r = s.runner;
        out(`runner:  ${r.connected ? 'connected' : 'DISCONNECTED'} via ${r.transport} ${r.path}${r.connected ? ` (protocol v${r.protocolVersion}, engines ${r.engines?.join(',')}, epoch ${r.runnerEpoch})` : ''}`);
        out(`modules: ${s.modules}`);
        out(`runs:    ${s.runsActive} active, ${s.runsTotal} total`);
        out(`uptime:  ${s.uptimeSec}s`);
      }
      return EXIT.OK;
    }
    default: {
      // The original form: wasmedge_emit FILE [ARGS...] uploads and runs.
      if (looksLikeFile(cmd)) {
        const name = await upload(client, cmd, undefined, false, true);
        return run(client, name, params, { env: {} }, global.json);
      }
      throw new AgentError('AGT_ERR_CONFIG_INVALID', `unknown command "${cmd}" (and no such .wasm file); see wasmedge_emit --help`);
    }
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
