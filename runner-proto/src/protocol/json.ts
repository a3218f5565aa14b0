import type { z } from 'zod';
import { AgentError } from '../errors/index.js';
import { FLAG_BODY_CRC, FLAG_JSON, allocBytes, utf8Bytes } from '../frame/index.js';
import { parseParams } from './lazy.js';
import { msgTypeName } from './messages.js';

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Control bodies are small: always checksummed. */
export const JSON_FLAGS = FLAG_JSON | FLAG_BODY_CRC;

export function encodeJson(value: unknown): Uint8Array {
  return utf8Bytes(JSON.stringify(value));
}

/** Parses and validates a JSON body; the error names the frame type and the failing field. */
export function decodeJson<T extends z.ZodType>(type: number, body: Uint8Array, schema: T): z.infer<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(body));
  } catch (err) {
    throw new AgentError('AGT_ERR_PROTOCOL', `${msgTypeName(type)} body is not valid UTF-8 JSON: ${(err as Error).message}`);
  }
  const r = schema.safeParse(raw, parseParams(schema));
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.') || '(body)';
    throw new AgentError('AGT_ERR_PROTOCOL', `${msgTypeName(type)} body field ${field}: ${issue.message}`, { field });
  }
  return r.data;
}

/**
 * A body made of a JSON head and raw bytes: u32 little-endian head length, the head (UTF-8 JSON), the bytes.
 * Used where metadata travels with a payload (INVOKE's stdin and stdout).
 */
export function joinHead(head: unknown, raw: Uint8Array): Uint8Array {
  const h = utf8Bytes(JSON.stringify(head));
  const out = allocBytes(4 + h.length + raw.length);
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(0, h.length, true);
  out.set(h, 4);
  out.set(raw, 4 + h.length);
  return out;
}

export function splitHead<T extends z.ZodType>(type: number, body: Uint8Array, schema: T): { head: z.infer<T>; raw: Uint8Array } {
  if (body.length < 4) throw new AgentError('AGT_ERR_PROTOCOL', `${msgTypeName(type)} body of ${body.length} bytes has no head length`);
  const n = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0, true);
  if (n > body.length - 4) throw new AgentError('AGT_ERR_PROTOCOL', `${msgTypeName(type)} head length ${n} exceeds the body (${body.length - 4} bytes)`);
  return { head: decodeJson(type, body.subarray(4, 4 + n), schema), raw: body.subarray(4 + n) };
}
