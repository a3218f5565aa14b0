import type { WebSocket } from 'ws';
import { AgentError, toAgentError } from '../../../runner-proto/src/errors/index.js';
import { WS_STDERR, WS_STDOUT } from '../api-contract/index.js';
import type { LogEntry } from '../logs/index.js';
import type { ApiContext } from './context.js';
import { parseJson, validateValue } from './http-util.js';
import { logsQuery, wsCall, wsClientMessage, wsRunStart } from './schemas.js';

/**
 * WS /v1/run: send {module, args, env, limits}; receive {"type":"started"}, binary output frames (one tag byte,
 * 1 stdout / 2 stderr, then the bytes) and a final {"type":"exit", ...}. Send {"type":"kill"} to stop the run.
 */
export function runSocket(ctx: ApiContext, ws: WebSocket): void {
  const fail = (err: unknown): void => {
    const e = toAgentError(err);
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'error', error: e.toJSON() }));
    ws.close(1000);
  };
  // A client that never says what to run is dropped.
  const idle = setTimeout(() => fail(new AgentError('AGT_ERR_TIMEOUT', 'no run request within 30 s')), 30_000);
  ws.once('message', (data, isBinary) => {
    clearTimeout(idle);
    void (async () => {
      if (isBinary) throw new AgentError('AGT_ERR_BAD_REQUEST', 'the first WebSocket message must be a JSON run request');
      const start = parseJson(Buffer.from(data as Buffer), wsRunStart, 'WS /v1/run');
      const send = (tag: number, c: Uint8Array): void => {
        if (ws.readyState !== ws.OPEN) return;
        const msg = Buffer.allocUnsafe(c.length + 1);
        msg[0] = tag;
        msg.set(c, 1);
        ws.send(msg);
      };
      const handle = await ctx.core.run(start.module, start, {
        onStdout: (c) => send(WS_STDOUT, c),
        onStderr: (c) => send(WS_STDERR, c),
      });
      ws.send(JSON.stringify({ type: 'started', runId: handle.runId }));
      ws.on('message', (m, bin) => {
        try {
          if (bin) throw new AgentError('AGT_ERR_BAD_REQUEST', 'binary messages are not accepted after the run request');
          const msg = parseJson(Buffer.from(m as Buffer), wsClientMessage, 'WS /v1/run');
          if (msg.type === 'kill') void handle.kill(msg.graceMs ?? 0);
        } catch (err) {
          fail(err);
        }
      });
      ws.on('close', () => void handle.kill(0));
      const exit = await handle.exit;
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'exit', ...exit }));
      ws.close(1000);
    })().catch(fail);
  });
}

/** Calls in flight per socket; beyond it the client must wait for answers (back-pressure, bounded memory). */
const MAX_CALLS_IN_FLIGHT = 1024;

/**
 * WS /v1/calls: many calls on one socket, answered out of order. Send {id, app, fn, args, limits?}; receive
 * {id, ok: true, results, stats} or {id, ok: false, reason, exitCode, message, stats} (a trap or limit), or
 * {id, error: {code, message, details}} when the call was refused. What a FaaS gateway keeps open.
 */
export function callSocket(ctx: ApiContext, ws: WebSocket): void {
  let inFlight = 0;
  // Answers finishing in the same turn of the event loop leave in one write (corked until the next tick),
  // not one syscall each: with many calls in flight that is most of the socket cost.
  const sock = (ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
  let corked = false;
  const answer = (msg: string): void => {
    if (ws.readyState !== ws.OPEN) return;
    if (sock && !corked) {
      corked = true;
      sock.cork();
      process.nextTick(() => {
        corked = false;
        sock.uncork();
      });
    }
    ws.send(msg);
  };
  ws.on('message', (data, isBinary) => {
    let id: unknown;
    try {
      if (isBinary) throw new AgentError('AGT_ERR_BAD_REQUEST', 'WS /v1/calls takes JSON text messages');
      const text = (data as Buffer).toString();
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new AgentError('AGT_ERR_BAD_REQUEST', `WS /v1/calls: message is not valid JSON (${(err as Error).message})`);
      }
      id = (value as { id?: unknown } | null)?.id;
      const call = validateValue(value, wsCall, 'WS /v1/calls');
      if (inFlight >= MAX_CALLS_IN_FLIGHT) throw new AgentError('AGT_ERR_CONFLICT', `more than ${MAX_CALLS_IN_FLIGHT} calls in flight on this socket; wait for answers`, { rule: 'in-flight' });
      inFlight++;
      const { id: callId, app, ...body } = call;
      ctx.core.apps.call(app, body).then(
        (r) => {
          inFlight--;
          answer(JSON.stringify({ id: callId, ...r }));
        },
        (err: unknown) => {
          inFlight--;
          answer(JSON.stringify({ id: callId, error: toAgentError(err).toJSON() }));
        },
      );
    } catch (err) {
      answer(JSON.stringify({ id: typeof id === 'number' || typeof id === 'string' ? id : null, error: toAgentError(err).toJSON() }));
    }
  });
}

/** WS /v1/logs?app=&run=&source=&tail=&follow=: the same entries as GET /v1/logs, one JSON message each. */
export function logSocket(ctx: ApiContext, ws: WebSocket, query: Record<string, string>): void {
  let q;
  try {
    q = validateValue(query, logsQuery, 'WS /v1/logs: query');
  } catch (err) {
    ws.send(JSON.stringify({ type: 'error', error: toAgentError(err).toJSON() }));
    ws.close(1000);
    return;
  }
  const filter = { ...(q.app ? { app: q.app } : {}), ...(q.run !== undefined ? { run: q.run } : {}), ...(q.source ? { source: q.source } : {}), ...(q.after !== undefined ? { after: q.after } : {}) };
  const send = (e: LogEntry): void => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(e));
  };
  let last = q.after ?? 0;
  for (const e of ctx.core.logs.query(filter, q.tail ?? 100)) {
    send(e);
    last = e.seq;
  }
  if (q.follow === false) {
    ws.close(1000);
    return;
  }
  const stop = ctx.core.logs.follow({ ...filter, after: last }, (e) => {
    if (ws.bufferedAmount > 4 * 1024 * 1024) {
      ws.send(JSON.stringify({ type: 'truncated', resumeAfter: e.seq - 1 }));
      ws.close(1000);
      stop();
      return;
    }
    send(e);
  });
  ws.on('close', () => stop());
}
