/**
 * Load generators for bench/agent.ts, kept light so the client is not what gets measured:
 *   - pipelinedHttp: raw HTTP/1.1 over keep-alive connections, P requests in flight on each (what autocannon
 *     and wrk do); responses are split by Content-Length, nothing else is parsed.
 *   - wsCalls: the agent's WS /v1/calls with W calls in flight, answers matched by count.
 */
import net from 'node:net';
import { WebSocket } from 'ws';

export interface LoadResult {
  readonly calls: number;
  readonly errors: number;
  readonly seconds: number;
  readonly perSecond: number;
}

/** Sends `request` (a complete HTTP/1.1 request) over `connections` sockets, `depth` in flight on each, for `seconds`. */
export async function pipelinedHttp(socketPath: string, request: Buffer, connections: number, depth: number, seconds: number): Promise<LoadResult> {
  let calls = 0;
  let errors = 0;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, () =>
      new Promise<void>((resolve, reject) => {
        const sock = net.connect(socketPath);
        let inFlight = 0;
        let buf: Buffer = Buffer.alloc(0);
        let stopping = false;
        const fill = (): void => {
          const n = depth - inFlight;
          if (n <= 0 || stopping) return;
          sock.write(n === 1 ? request : Buffer.concat(Array.from({ length: n }, () => request)));
          inFlight += n;
        };
        sock.on('connect', fill);
        sock.on('error', reject);
        sock.on('data', (chunk: Buffer) => {
          buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
          for (;;) {
            const end = buf.indexOf('\r\n\r\n');
            if (end < 0) break;
            const head = buf.subarray(0, end).toString('latin1');
            const m = /content-length: *(\d+)/i.exec(head);
            const len = m ? Number(m[1]) : 0;
            if (buf.length < end + 4 + len) break;
            if (!head.startsWith('HTTP/1.1 200')) errors++;
            calls++;
            inFlight--;
            buf = buf.subarray(end + 4 + len);
          }
          if (performance.now() >= until) {
            stopping = true;
            if (inFlight === 0) {
              sock.end();
              resolve();
            }
          } else fill();
        });
      }),
    ),
  );
  const s = (performance.now() - t0) / 1000;
  return { calls, errors, seconds: s, perSecond: calls / s };
}

/** Calls over one WebSocket with `window` calls in flight, for `seconds`. */
export async function wsCalls(socketPath: string, message: (id: number) => string, window: number, seconds: number): Promise<LoadResult> {
  const ws = new WebSocket(`ws+unix://${socketPath}:/v1/calls`);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let calls = 0;
  let errors = 0;
  let id = 0;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  await new Promise<void>((resolve) => {
    let inFlight = 0;
    ws.on('message', (d: Buffer) => {
      inFlight--;
      calls++;
      if (!d.includes('"ok":true')) errors++;
      if (performance.now() < until) {
        ws.send(message(id++));
        inFlight++;
      } else if (inFlight === 0) resolve();
    });
    for (; inFlight < window; inFlight++) ws.send(message(id++));
  });
  const s = (performance.now() - t0) / 1000;
  ws.close();
  return { calls, errors, seconds: s, perSecond: calls / s };
}
