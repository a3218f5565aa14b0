import type { IncomingMessage, ServerResponse } from 'node:http';
import { AgentError } from '../../../runner-proto/src/errors/index.js';
import type { LogEntry } from '../logs/index.js';
import type { ApiContext } from './context.js';
import { queryOf, sendJson, validateValue } from './http-util.js';
import type { Route } from './router.js';
import { logsQuery } from './schemas.js';

/**
 *   GET  /v1/status          runner link, apps and instances, modules, runs, trust
 *   GET  /v1/health          200 while the agent serves (liveness); says whether the runner is connected
 *   GET  /v1/ready           200 when the runner is connected and every running app is deployed, else 503
 *   GET  /metrics            Prometheus text format (also /v1/metrics)
 *   GET  /v1/logs            recent lines as NDJSON; ?app= ?run= ?source=agent|app ?tail=N ?after=SEQ ?follow=1
 *   POST /v1/reconcile       compare the runner with the desired state now; answers the report
 *   POST /v1/trust/reload    re-read the trust store's key directory (as SIGHUP does)
 */
export function systemRoutes(ctx: ApiContext): Route[] {
  const { core } = ctx;
  const metrics = async (_q: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!core.metrics) throw new AgentError('AGT_ERR_NOT_FOUND', 'metrics are disabled (metrics.enabled: false)');
    const text = await core.metrics.text();
    res.writeHead(200, { 'content-type': core.metrics.contentType, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  return [
    { method: 'GET', path: '/v1/status', handler: async (_q, res) => sendJson(res, 200, await core.status()) },
    { method: 'GET', path: '/v1/health', handler: async (_q, res) => sendJson(res, 200, { ok: true, runner: core.link.status().connected }) },
    {
      method: 'GET',
      path: '/v1/ready',
      handler: async (_q, res) => {
        const apps = await core.apps.list();
        const notReady = apps.filter((a) => a.running && a.status !== 'running').map((a) => ({ name: a.name, status: a.status }));
        const connected = core.link.status().connected;
        sendJson(res, connected && notReady.length === 0 ? 200 : 503, { ready: connected && notReady.length === 0, runner: connected, notReady });
      },
    },
    { method: 'GET', path: '/metrics', handler: metrics },
    { method: 'GET', path: '/v1/metrics', handler: metrics },
    { method: 'GET', path: '/v1/logs', handler: (req, res) => streamLogs(ctx, req, res) },
    { method: 'POST', path: '/v1/reconcile', handler: async (_q, res) => sendJson(res, 200, { report: (await core.reconciler.converge('manual')) ?? null }) },
    {
      method: 'POST',
      path: '/v1/trust/reload',
      handler: async (_q, res) => {
        core.trust.reload();
        sendJson(res, 200, { keys: core.trust.list() });
      },
    },
  ];
}

/** NDJSON of log entries; with follow, the response stays open and later entries are written as they come. */
async function streamLogs(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const q = validateValue(queryOf(req), logsQuery, 'GET /v1/logs: query');
  const filter = { ...(q.app ? { app: q.app } : {}), ...(q.run !== undefined ? { run: q.run } : {}), ...(q.source ? { source: q.source } : {}), ...(q.after !== undefined ? { after: q.after } : {}) };
  const ring = ctx.core.logs;
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  const write = (e: LogEntry): boolean => res.write(`${JSON.stringify(e)}\n`);
  let last = 0;
  for (const e of ring.query(filter, q.tail ?? (q.follow ? 100 : 1000))) {
    write(e);
    last = e.seq;
  }
  if (!q.follow) {
    res.end();
    return;
  }
  // A slow reader is not allowed to grow the agent's memory: when its socket buffer is full, it is cut off
  // with a last line saying where to resume (?after=SEQ).
  await new Promise<void>((resolve) => {
    const stop = ring.follow({ ...filter, after: last }, (e) => {
      if (res.writableLength > 4 * 1024 * 1024) {
        res.end(`${JSON.stringify({ truncated: true, resumeAfter: e.seq - 1 })}\n`);
        stop();
        resolve();
        return;
      }
      write(e);
    });
    // Keep-alive comments would break NDJSON; an empty line every 15 s keeps proxies from timing out.
    const ping = setInterval(() => res.write('\n'), 15_000);
    ping.unref();
    res.on('close', () => {
      clearInterval(ping);
      stop();
      resolve();
    });
  });
}
