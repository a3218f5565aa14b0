import type { LogEntry } from '../logs/index.js';
import type { AgentClient } from '../client/index.js';
import { parseFlags, usage } from './args.js';
import { EXIT } from './exit-codes.js';
import { out, shortDigest, table } from './output.js';

export async function status(client: AgentClient, argv: string[], json: boolean): Promise<number> {
  const f = parseFlags('status', argv, {});
  const s = await client.status();
  if (json || f.values.json) {
    out(JSON.stringify(s));
    return EXIT.OK;
  }
  const r = s.runner;
  out(`runner:  ${r.connected ? 'connected' : 'DISCONNECTED'} via ${r.transport} ${r.path}${r.connected ? ` (protocol v${r.protocolVersion}, engines ${r.engines?.join(',')}, epoch ${r.runnerEpoch}${r.lastPingMs !== undefined ? `, ping ${r.lastPingMs.toFixed(2)} ms` : ''})` : ''}`);
  out(`channel: ${r.channel.framesOut} frames out, ${r.channel.framesIn} in, ${r.channel.faults} faults, ${r.channel.kicks} kicks; ${r.connects} connection(s)${r.since ? ` since ${r.since}` : ''}`);
  out(`apps:    ${s.apps.length === 0 ? 'none' : `${s.apps.filter((a) => a.status === 'running').length} of ${s.apps.length} running`}`);
  if (s.apps.length > 0) {
    const rows = [['APP', 'KIND', 'STATUS', 'DIGEST', 'INSTANCES', 'IDLE', 'CALLS'], ...s.apps.map((a) => [a.name, a.kind, a.status, shortDigest(a.digest), String(a.runner?.instances ?? 0), String(a.runner?.idle ?? 0), String(a.runner?.calls ?? 0)])];
    for (const line of table(rows)) out(`  ${line}`);
  }
  out(`modules: ${s.modules}`);
  out(`runs:    ${s.runsActive} active, ${s.runsTotal} total`);
  out(`trust:   ${s.trust.requireSignature ? 'signatures required' : 'signatures optional'}, ${s.trust.keys.length} key(s)`);
  out(`agent:   pid ${s.agent.pid}, ${(s.agent.rssBytes / 1048576).toFixed(1)} MiB RSS, node ${s.agent.node}, up ${s.uptimeSec}s`);
  return EXIT.OK;
}

function formatEntry(e: LogEntry): string {
  const t = new Date(e.ts).toISOString().slice(11, 23);
  const who = e.source === 'agent' ? 'agent' : `${e.app ?? '?'}${e.run ? `#${e.run}` : ''}`;
  const tag = e.stream === 'event' ? (e.level ?? 'info') : e.stream;
  return `${t} ${who} ${tag}: ${e.line}`;
}

export async function logs(client: AgentClient, argv: string[], json: boolean): Promise<number> {
  const f = parseFlags('logs', argv, { follow: 'boolean', f: 'boolean', tail: 'int', run: 'int', agent: 'boolean' });
  if (f.positional.length > 1) throw usage('usage: wasmedge_emit logs [APP] [-f] [--tail N] [--run ID] [--agent]');
  const follow = f.values.follow === true || f.values.f === true;
  const asJson = json || f.values.json === true;
  const ac = new AbortController();
  const onSignal = (): void => ac.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await client.logs(
      {
        ...(f.positional[0] ? { app: f.positional[0] } : {}),
        ...(f.values.agent ? { source: 'agent' as const } : {}),
        ...(f.values.tail !== undefined ? { tail: f.values.tail as number } : {}),
        ...(f.values.run !== undefined ? { run: f.values.run as number } : {}),
        follow,
      },
      (e) => out(asJson ? JSON.stringify(e) : formatEntry(e)),
      ac.signal,
    );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return EXIT.OK;
}

export async function metrics(client: AgentClient, argv: string[]): Promise<number> {
  parseFlags('metrics', argv, {});
  process.stdout.write(await client.metrics());
  return EXIT.OK;
}
