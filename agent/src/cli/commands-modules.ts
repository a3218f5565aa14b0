import type { ExitMessage } from '../../../runner-proto/src/protocol/index.js';
import type { AgentClient } from '../client/index.js';
import { parseFlags, usage, type RunOptions } from './args.js';
import { EXIT } from './exit-codes.js';
import { nameFromFile, out, progressFor, readFileOrFail, shortDigest, signatureFor, table } from './output.js';

export async function uploadFile(client: AgentClient, file: string, o: { name?: string; kind?: 'command' | 'reactor'; sig?: string; json: boolean; quiet?: boolean }): Promise<string> {
  const bytes = readFileOrFail(file, 'module');
  const name = o.name ?? nameFromFile(file);
  const signature = signatureFor(file, o.sig);
  const bar = await progressFor(`upload ${name}`, bytes.length, o.json || o.quiet === true);
  let r;
  try {
    r = await client.upload(name, bytes, { ...(signature ? { signature } : {}), ...(o.kind ? { kind: o.kind } : {}), ...(bar ? { onProgress: (n: number) => bar.update(n) } : {}) });
  } finally {
    bar?.stop();
  }
  if (o.json) out(JSON.stringify(r));
  else if (!o.quiet) out(`${r.created ? 'stored' : 'unchanged'} ${r.name} ${r.digest} (${r.size} bytes, ${r.module.kind})${r.signer ? ` signed by ${r.signer}` : ''}`);
  return r.name;
}

export async function upload(client: AgentClient, argv: string[], json: boolean): Promise<number> {
  const f = parseFlags('upload', argv, { name: 'string', kind: 'string', sig: 'string' });
  const file = f.positional[0];
  if (f.positional.length !== 1 || !file) throw usage('usage: wasmedge_emit upload FILE [--name NAME] [--kind command|reactor] [--sig FILE]');
  const kind = f.values.kind as string | undefined;
  if (kind !== undefined && kind !== 'command' && kind !== 'reactor') throw usage(`--kind expects command or reactor, got "${kind}"`);
  await uploadFile(client, file, {
    json: json || f.values.json === true,
    ...(f.values.name ? { name: f.values.name as string } : {}),
    ...(kind ? { kind } : {}),
    ...(f.values.sig ? { sig: f.values.sig as string } : {}),
  });
  return EXIT.OK;
}

export async function run(client: AgentClient, ref: string, args: string[], opts: RunOptions, json: boolean): Promise<number> {
  const limits = { timeMs: opts.timeMs, memoryPages: opts.memoryPages, outputBytes: opts.outputBytes, gas: opts.gas };
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

export async function ls(client: AgentClient, argv: string[], json: boolean): Promise<number> {
  const f = parseFlags('ls', argv, {});
  const mods = await client.list();
  if (json || f.values.json) out(JSON.stringify(mods));
  else if (mods.length > 0) {
    for (const line of table([['NAME', 'DIGEST', 'SIZE', 'KIND', 'UPDATED'], ...mods.map((m) => [m.name, shortDigest(m.digest), String(m.size), String(m.meta?.kind ?? ''), m.updatedAt])])) out(line);
  }
  return EXIT.OK;
}

export async function rm(client: AgentClient, argv: string[], json: boolean): Promise<number> {
  const f = parseFlags('rm', argv, {});
  const name = f.positional[0];
  if (f.positional.length !== 1 || !name) throw usage('usage: wasmedge_emit rm NAME');
  const r = await client.remove(name);
  if (json || f.values.json) out(JSON.stringify(r));
  else out(`removed ${r.name}`);
  return EXIT.OK;
}
