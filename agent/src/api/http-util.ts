import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { AgentError, toAgentError } from '../../../runner-proto/src/errors/index.js';
import { parseParams } from '../../../runner-proto/src/protocol/index.js';

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/**
 * A refused body is still read (and dropped) up to this much, for this long, before the refusal is sent. Node
 * closes a connection whose request is unfinished when the answer ends, and a client still sending then gets
 * EPIPE and may never read the answer; draining first lets it finish and read the 413 on a live connection.
 * Bodies beyond the budget are answered at once and the connection closed (clients that send
 * `Expect: 100-continue`, as the CLI does for large bodies, are refused before sending anything).
 */
const DRAIN_BYTES = 16 * 1024 * 1024;
const DRAIN_MS = 5000;

/** What happened to a refused request's body: cut off unread, or never sent (refused before `100 Continue`). */
const kBody = Symbol('api.body');

export function markBodyUnread(req: IncomingMessage): void {
  (req as unknown as Record<symbol, string>)[kBody] = 'unsent';
}

/**
 * Errors as data: the HTTP surface renders them as {error: {code, message, details}} with the catalogue status.
 * A request whose body was left unread gets `connection: close` (its end on the wire is unknown).
 */
export function sendError(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  const e = toAgentError(err);
  if (res.headersSent) {
    res.destroy(e);
    return;
  }
  const extra: Record<string, string> = {};
  if (e.code === 'AGT_ERR_UNAUTHORIZED') extra['www-authenticate'] = 'Bearer realm="wasmedge-agent"';
  if ((req as unknown as Record<symbol, string | undefined>)[kBody] !== undefined || !req.complete) extra.connection = 'close';
  sendJson(res, e.status, { error: e.toJSON() }, extra);
}

/** Reads and drops the rest of a refused body within the drain budget; resolves true when it ended in time. */
function drain(req: IncomingMessage, already: number): Promise<boolean> {
  if (req.complete) return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    let dropped = already;
    const finish = (ended: boolean): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onEnd);
      if (!ended) req.pause();
      resolve(ended);
    };
    const onData = (c: Buffer): void => {
      dropped += c.length;
      if (dropped > DRAIN_BYTES) finish(false);
    };
    const onEnd = (): void => finish(req.complete);
    const timer = setTimeout(() => finish(false), DRAIN_MS);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onEnd);
    req.resume();
  });
}

/**
 * Reads a request body up to `limit` bytes as it streams in. A body declared (Content-Length) or found to be
 * larger is refused with AGT_ERR_TOO_LARGE; nothing beyond the limit is kept in memory.
 */
export async function readBody(req: IncomingMessage, limit: number, what = 'request body'): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    const e = new AgentError('AGT_ERR_TOO_LARGE', `${what} of ${declared} bytes exceeds the limit of ${limit} bytes`, { limit, field: 'body' });
    if (Number(declared) > DRAIN_BYTES || !(await drain(req, 0))) (req as unknown as Record<symbol, string>)[kBody] = 'cut';
    throw e;
  }
  // Events rather than an async iterator: this runs on every call, and the iterator costs more than the call.
  const body = await new Promise<Buffer | number>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (value: Buffer | number | Error): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      if (value instanceof Error) reject(value);
      else resolve(value);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0;
        done(size);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => done(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    const onError = (err: Error): void => done(err);
    const onAborted = (): void => done(new AgentError('AGT_ERR_BAD_REQUEST', `${what} was cut off by the client`, { field: 'body' }));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
  if (typeof body === 'number') {
    const e = new AgentError('AGT_ERR_TOO_LARGE', `${what} exceeds the limit of ${limit} bytes`, { limit, field: 'body' });
    if (!(await drain(req, body))) (req as unknown as Record<symbol, string>)[kBody] = 'cut';
    throw e;
  }
  return body;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const extra = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
  return `${issue.message}${extra}`;
}

/** Validates a parsed value; the error names the failing field. */
export function validateValue<T extends z.ZodType>(value: unknown, schema: T, where: string): z.infer<T> {
  const r = schema.safeParse(value, parseParams(schema));
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.') || '(body)';
    throw new AgentError('AGT_ERR_BAD_REQUEST', `${where}: field ${field}: ${describeIssue(issue)}`, { field });
  }
  return r.data;
}

/** Parses JSON and validates it; the error names the failing field. */
export function parseJson<T extends z.ZodType>(raw: Buffer | string, schema: T, where: string): z.infer<T> {
  let value: unknown;
  const text = raw.toString();
  try {
    value = text.length === 0 ? {} : JSON.parse(text);
  } catch (err) {
    throw new AgentError('AGT_ERR_BAD_REQUEST', `${where}: body is not valid JSON (${(err as Error).message})`, { field: '(body)' });
  }
  return validateValue(value, schema, where);
}

/** Query string parameters as a plain object (last one wins). */
export function queryOf(req: IncomingMessage): Record<string, string> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? {} : Object.fromEntries(new URLSearchParams(url.slice(q + 1)));
}

export function isJsonContent(req: IncomingMessage): boolean {
  return /^application\/json\b/i.test(req.headers['content-type'] ?? '');
}

/** A header value that must be a single string. */
export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
