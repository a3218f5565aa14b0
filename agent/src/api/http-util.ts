import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { AgentError, toAgentError } from '../../../runner-proto/src/errors/index.js';

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** Set on a request whose body was cut off mid-stream (over its limit without a Content-Length to say so). */
const kCutOff = Symbol('api.bodyCutOff');

/**
 * Errors as data: the HTTP surface renders them as {error: {code, message, details}} with the catalogue status.
 * A body refused by its Content-Length is discarded by Node after the answer (bounded by that length and the
 * request timeout), so the client finishes sending and reads the 413. A body cut off mid-stream has no known
 * end: the connection is closed after the answer.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  const e = toAgentError(err);
  if (res.headersSent) {
    res.destroy(e);
    return;
  }
  const extra: Record<string, string> = {};
  if (e.code === 'AGT_ERR_UNAUTHORIZED') extra['www-authenticate'] = 'Bearer realm="wasmedge-agent"';
  if ((req as unknown as Record<symbol, boolean>)[kCutOff]) {
    // Node ends the connection after a response that says so.
    extra.connection = 'close';
  }
  sendJson(res, e.status, { error: e.toJSON() }, extra);
}

/**
 * Reads a request body up to `limit` bytes as it streams in: refused at once when Content-Length says it is too
 * big, and as soon as the running count passes the limit otherwise (nothing beyond the limit is buffered).
 */
export async function readBody(req: IncomingMessage, limit: number, what = 'request body'): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    throw new AgentError('AGT_ERR_TOO_LARGE', `${what} of ${declared} bytes exceeds the limit of ${limit} bytes`, { limit, field: 'body' });
  }
  // Events rather than an async iterator: this runs on every call, and the iterator costs more than the call.
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err?: unknown): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      if (err) reject(err);
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        (req as unknown as Record<symbol, boolean>)[kCutOff] = true;
        done(new AgentError('AGT_ERR_TOO_LARGE', `${what} exceeds the limit of ${limit} bytes`, { limit, field: 'body' }));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => done();
    const onError = (err: Error): void => done(err);
    const onAborted = (): void => done(new AgentError('AGT_ERR_BAD_REQUEST', `${what} was cut off by the client`, { field: 'body' }));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const extra = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
  return `${issue.message}${extra}`;
}

/** Validates a parsed value; the error names the failing field. */
export function validateValue<T extends z.ZodType>(value: unknown, schema: T, where: string): z.infer<T> {
  const r = schema.safeParse(value);
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
