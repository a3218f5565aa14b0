import { createHash } from 'node:crypto';
import { AgentError } from '../../../runner-proto/src/errors/index.js';

/** The only algorithm the store speaks; OCI uses the same `algorithm:hex` spelling. */
export const DIGEST_ALGORITHM = 'sha256';
const PREFIX = `${DIGEST_ALGORITHM}:`;
const HEX_LENGTH = 64;
const HEX = /^[0-9a-f]{64}$/;

export interface ParsedDigest {
  readonly algorithm: typeof DIGEST_ALGORITHM;
  readonly hex: string;
}

/**
 * Accepts exactly `sha256:<64 lowercase hex>`. Uppercase hex is refused rather than folded so that one
 * module has one spelling everywhere: on disk, on the wire and in the runner's cache.
 */
export function parseDigest(value: unknown): ParsedDigest {
  if (typeof value !== 'string') {
    throw digestError(`digest must be a string, received ${describe(value)}`, value);
  }
  const colon = value.indexOf(':');
  if (colon === -1) {
    throw digestError(`digest ${JSON.stringify(clip(value))} has no "${PREFIX}" prefix; expected "${PREFIX}<64 lowercase hex digits>"`, value);
  }
  const algorithm = value.slice(0, colon);
  if (algorithm !== DIGEST_ALGORITHM) {
    throw digestError(`digest algorithm ${JSON.stringify(clip(algorithm))} is not supported; expected "${DIGEST_ALGORITHM}"`, value);
  }
  const hex = value.slice(colon + 1);
  checkHex(hex, PREFIX.length, value);
  return { algorithm: DIGEST_ALGORITHM, hex };
}

/** `hex` must already be 64 lowercase hex digits; this is the inverse of parseDigest. */
export function formatDigest(hex: string): string {
  checkHex(hex, 0, hex);
  return PREFIX + hex;
}

export function digestOf(bytes: Uint8Array): string {
  return PREFIX + createHash(DIGEST_ALGORITHM).update(bytes).digest('hex');
}

export function isDigest(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(PREFIX) && HEX.test(value.slice(PREFIX.length));
}

function checkHex(hex: string, base: number, whole: unknown): void {
  if (hex.length !== HEX_LENGTH) {
    throw digestError(`digest hex part is ${hex.length} characters long; expected ${HEX_LENGTH} lowercase hex digits`, whole);
  }
  for (let i = 0; i < hex.length; i++) {
    const c = hex.charCodeAt(i);
    const ok = (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66);
    if (!ok) {
      const hint = c >= 0x41 && c <= 0x46 ? ' (uppercase is not accepted)' : '';
      throw digestError(
        `digest has ${JSON.stringify(hex[i])} at index ${base + i}; expected lowercase hex digits 0-9 a-f${hint}`,
        whole,
        base + i,
      );
    }
  }
}

function digestError(message: string, received: unknown, offset?: number): AgentError {
  const details: Record<string, unknown> = { field: 'digest', rule: 'digest-format' };
  if (typeof received === 'string') details.received = clip(received);
  if (offset !== undefined) details.offset = offset;
  return new AgentError('AGT_ERR_BAD_REQUEST', message, details);
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}
