import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { LocalSystem } from '../../agent/src/launch/index.js';

/** Raw HTTP against the agent's API (Unix socket, or TCP with headers given), bounded by a timeout. */
export interface ApiAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  readonly body: Buffer;
  json<T = any>(): T; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export function request(
  target: { socketPath: string } | { host: string; port: number },
  method: string,
  urlPath: string,
  o: { body?: Buffer | string; headers?: Record<string, string | number>; timeoutMs?: number } = {},
): Promise<ApiAnswer> {
  return new Promise((resolve, reject) => {
    const body = typeof o.body === 'string' ? Buffer.from(o.body) : o.body;
    const headers: Record<string, string | number> = { ...(o.headers ?? {}) };
    if (body && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) headers['content-length'] = body.length;
    // Like the CLI: large bodies wait for `100 Continue`, so a refusal arrives before the body is sent.
    const waitContinue = body !== undefined && body.length > 64 * 1024 && headers.expect === undefined;
    if (waitContinue) headers.expect = '100-continue';
    const req = http.request({ ...target, method, path: urlPath, headers, timeout: o.timeoutMs ?? 20_000, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (!req.writableFinished) req.destroy();
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, text: buf.toString(), json: () => JSON.parse(buf.toString()) });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: no answer within ${o.timeoutMs ?? 20_000} ms`)));
    req.on('error', reject);
    if (waitContinue) req.once('continue', () => req.end(body));
    else req.end(body);
  });
}

export function api(sys: LocalSystem, method: string, urlPath: string, o: { body?: Buffer | string | object; headers?: Record<string, string | number>; timeoutMs?: number } = {}): Promise<ApiAnswer> {
  const isObj = o.body !== undefined && !Buffer.isBuffer(o.body) && typeof o.body !== 'string';
  return request({ socketPath: sys.agentSocket }, method, urlPath, {
    ...(o.body !== undefined ? { body: isObj ? JSON.stringify(o.body) : (o.body as Buffer | string) } : {}),
    headers: { ...(isObj ? { 'content-type': 'application/json' } : {}), ...(o.headers ?? {}) },
    ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
  });
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, everyMs = 20): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** An ed25519 key pair; the public key written as PEM into `dir` (a trust store) under `label`.pem. */
export function makeSigner(dir: string, label: string): { privateKey: KeyObject; pemFile: string; sign(bytes: Uint8Array): Buffer } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  fs.mkdirSync(dir, { recursive: true });
  const pemFile = path.join(dir, `${label}.pem`);
  fs.writeFileSync(pemFile, publicKey.export({ type: 'spki', format: 'pem' }));
  return { privateKey, pemFile, sign: (bytes) => sign(null, bytes, privateKey) };
}
