import type { z } from 'zod';
import { AgentError } from '../errors/index.js';
import { FLAG_BODY_CRC, FLAG_JSON } from '../frame/index.js';
import { msgTypeName } from './messages.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Control bodies are small: always checksummed. */
export const JSON_FLAGS = FLAG_JSON | FLAG_BODY_CRC;

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Parses and validates a JSON body; the error names the frame type and the failing field. */
export function decodeJson<T extends z.ZodType>(type: number, body: Uint8Array, schema: T): z.infer<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(body));
  } catch (err) {
    throw new AgentError('AGT_ERR_PROTOCOL', `${msgTypeName(type)} body is not valid UTF-8 JSON: ${(err as Error).message}`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.') || '(body)';
    throw new AgentError('AGT_ERR_PROTOCOL', `${msgTypeName(type)} body field ${field}: ${issue.message}`, { field });
  }
  return r.data;
}
