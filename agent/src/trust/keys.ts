import { createHash, createPublicKey, type KeyObject } from 'node:crypto';

/** DER prefix of an ed25519 SubjectPublicKeyInfo; the 32 key bytes follow it (RFC 8410). */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface TrustedKey {
  /** `ed25519:` + the first 16 hex digits of sha256(raw public key): stable, short, printable. */
  readonly id: string;
  /** File the key came from (its base name), for logs and `status`. */
  readonly label: string;
  readonly key: KeyObject;
}

export function keyIdOf(raw32: Uint8Array): string {
  return `ed25519:${createHash('sha256').update(raw32).digest('hex').slice(0, 16)}`;
}

function fromRaw(raw: Buffer, label: string): TrustedKey {
  const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
  return { id: keyIdOf(raw), label, key };
}

/**
 * Parses one public key file. Accepted: PEM (`-----BEGIN PUBLIC KEY-----`, what `openssl pkey -pubout` writes),
 * 32 raw bytes, or 32 bytes as base64 or hex text. Returns a reason string for anything else.
 */
export function parsePublicKey(content: Buffer, label: string): TrustedKey | string {
  const text = content.toString('utf8').trim();
  try {
    if (text.startsWith('-----BEGIN')) {
      const key = createPublicKey(text);
      if (key.asymmetricKeyType !== 'ed25519') return `is a ${key.asymmetricKeyType ?? 'unknown'} key; expected ed25519`;
      const der = key.export({ format: 'der', type: 'spki' });
      return { id: keyIdOf(der.subarray(der.length - 32)), label, key };
    }
    if (content.length === 32) return fromRaw(content, label);
    if (/^[0-9a-fA-F]{64}$/.test(text)) return fromRaw(Buffer.from(text, 'hex'), label);
    const b64 = Buffer.from(text, 'base64');
    if (b64.length === 32 && /^[A-Za-z0-9+/=_-]+$/.test(text)) return fromRaw(b64, label);
    if (b64.length === 44 && b64.subarray(0, 12).equals(ED25519_SPKI_PREFIX)) return fromRaw(b64.subarray(12), label);
  } catch (err) {
    return `cannot be parsed: ${(err as Error).message}`;
  }
  return `holds ${content.length} bytes that are neither PEM, 32 raw bytes, nor 32 bytes in base64 or hex`;
}

/**
 * Decodes a detached signature: 64 raw bytes, or base64 / hex text of 64 bytes (what `openssl pkeyutl -sign
 * -rawin` writes, possibly piped through `base64`). Returns undefined when it is none of these.
 */
export function decodeSignature(data: Uint8Array | string): Buffer | undefined {
  if (typeof data !== 'string' && data.length === 64) return Buffer.from(data);
  const text = (typeof data === 'string' ? data : Buffer.from(data).toString('utf8')).trim();
  if (/^[0-9a-fA-F]{128}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    const b = Buffer.from(text, 'base64');
    if (b.length === 64) return b;
  }
  return undefined;
}
