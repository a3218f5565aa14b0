import { createRequire } from 'node:module';

/**
 * CRC32C (Castagnoli), the checksum of every frame header and of bodies that carry FLAG_BODY_CRC.
 * The native implementation (@node-rs/crc32, SSE4.2) is ~50x faster than table-driven JS on 64 KiB bodies; the JS
 * version is kept as the reference the native one is tested against, and as the fallback where the native
 * package is absent (e.g. a guest image without it).
 */
const TABLE = (() => {
  const t = new Uint32Array(256 * 8);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  // Slicing-by-8 tables: t[k*256+i] extends t[(k-1)*256+i] by one zero byte.
  for (let i = 0; i < 256; i++) {
    let c = t[i]!;
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff]! ^ (c >>> 8);
      t[k * 256 + i] = c >>> 0;
    }
  }
  return t;
})();

/**
 * CRC32C of the 20 bytes that five little-endian u32 words occupy: the frame header's checked part, computed
 * from values already in registers (the ring's fast path reads and writes headers as words) four bytes per step.
 */
export function crc32cHeaderWords(w0: number, w1: number, w2: number, w3: number, w4: number): number {
  const t = TABLE;
  let x = (w0 ^ 0xffffffff) >>> 0;
  let crc = t[768 + (x & 0xff)]! ^ t[512 + ((x >>> 8) & 0xff)]! ^ t[256 + ((x >>> 16) & 0xff)]! ^ t[x >>> 24]!;
  x = (crc ^ w1) >>> 0;
  crc = t[768 + (x & 0xff)]! ^ t[512 + ((x >>> 8) & 0xff)]! ^ t[256 + ((x >>> 16) & 0xff)]! ^ t[x >>> 24]!;
  x = (crc ^ w2) >>> 0;
  crc = t[768 + (x & 0xff)]! ^ t[512 + ((x >>> 8) & 0xff)]! ^ t[256 + ((x >>> 16) & 0xff)]! ^ t[x >>> 24]!;
  x = (crc ^ w3) >>> 0;
  crc = t[768 + (x & 0xff)]! ^ t[512 + ((x >>> 8) & 0xff)]! ^ t[256 + ((x >>> 16) & 0xff)]! ^ t[x >>> 24]!;
  x = (crc ^ w4) >>> 0;
  crc = t[768 + (x & 0xff)]! ^ t[512 + ((x >>> 8) & 0xff)]! ^ t[256 + ((x >>> 16) & 0xff)]! ^ t[x >>> 24]!;
  return ~crc >>> 0;
}

export function crc32cJs(bytes: Uint8Array, seed = 0): number {
  let crc = ~seed >>> 0;
  let i = 0;
  const n = bytes.length;
  const t = TABLE;
  for (; i + 8 <= n; i += 8) {
    const a = (crc ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))) >>> 0;
    crc =
      t[7 * 256 + (a & 0xff)]! ^
      t[6 * 256 + ((a >>> 8) & 0xff)]! ^
      t[5 * 256 + ((a >>> 16) & 0xff)]! ^
      t[4 * 256 + (a >>> 24)]! ^
      t[3 * 256 + bytes[i + 4]!]! ^
      t[2 * 256 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!;
  }
  for (; i < n; i++) crc = t[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

type NativeCrc = (input: Uint8Array, seed?: number) => number;

const native: NativeCrc | undefined = (() => {
  if (process.env.WASM_BRIDGE_CRC === 'js') return undefined;
  try {
    const require = createRequire(import.meta.url);
    const mod = require('@node-rs/crc32') as { crc32c: NativeCrc };
    // Guard against a broken binary: it must agree with the reference on the standard check value.
    return mod.crc32c(Buffer.from('123456789')) === 0xe3069283 ? mod.crc32c : undefined;
  } catch {
    return undefined;
  }
})();

/** Which implementation is in use, for `status` and benchmarks. */
export const crc32cImplementation: 'native' | 'js' = native ? 'native' : 'js';

/** Below this size the JS loop beats the cost of crossing into native code. */
const NATIVE_THRESHOLD = 256;

export function crc32c(bytes: Uint8Array, seed = 0): number {
  if (native !== undefined && bytes.length >= NATIVE_THRESHOLD) {
    const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    return native(buf, seed) >>> 0;
  }
  return crc32cJs(bytes, seed);
}
