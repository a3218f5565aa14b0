import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { AgentError, toAgentError } from '../../../runner-proto/src/errors/index.js';

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Errors as data: the HTTP surface renders them as {error: {code, message, details}} with the catalogue status. */
export function sendError(res: ServerResponse, err: unknown): void {
  const e = toAgentError(err);
  if (res.headersSent) {
    res.destroy(e);
    return;
  }
  sendJson(res, e.status, { error: e.toJSON() });
}

/** Reads a request body up to `limit` bytes; refuses early on Content-Length, and again while streaming. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    throw new AgentError('AGT_ERR_TOO_LARGE', `request body of ${declared} bytes exceeds the limit of ${limit} bytes`, { limit });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.destroy();
      throw new AgentError('AGT_ERR_TOO_LARGE', `request body exceeds the limit of ${limit} bytes`, { limit });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** Parses JSON and validates it; the error names the failing field. */
export function parseJson<T extends z.ZodType>(raw: Buffer | string, schema: T, where: string): z.infer<T> {
  let value: unknown;
  const text = raw.toString();
  try {
    value = text.length === 0 ? {} : JSON.parse(text);
  } catch (err) {
    throw new AgentError('AGT_ERR_BAD_REQUEST', `${where}: body is not valid JSON (${(err as Error).message})`);
  }
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.') || '(body)';
    throw new AgentError('AGT_ERR_BAD_REQUEST', `${where}: field ${field}: ${issue.message}`, { field });
  }
  return r.data;
}
