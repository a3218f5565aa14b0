import { crc32c, crc32cHeaderWords } from '../crc/index.js';
import { allocBytes, copyBytes } from './bytes.js';

/*
 * Frame = 24-byte header + body. All integers little-endian.
 *
 *   0      2      3      4              8              12             16             20             24
 *   +------+------+------+--------------+--------------+--------------+--------------+--------------+
 *   |magic |type  |flags |  body length |   sequence   | correlation  |  body CRC32C | header CRC32C|
 *   | u16  | u8   | u8   |     u32      |     u32      |     u32      |     u32      | over 0..19   |
 *   +------+------+------+--------------+--------------+--------------+--------------+--------------+
 *
 * The header CRC is always checked; the body CRC only when FLAG_BODY_CRC is set (bulk module chunks are
 * instead verified as a whole against their sha256 digest on arrival).
 */
export const FRAME_MAGIC = 0x5357; // bytes 'W','S'
export const FRAME_HEADER_SIZE = 24;

export const FLAG_BODY_CRC = 0x01;
export const FLAG_JSON = 0x02;

export interface FrameHeader {
  readonly type: number;
  readonly flags: number;
  readonly length: number;
  readonly seq: number;
  readonly corr: number;
  readonly bodyCrc: number;
}

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly corr: number;
  readonly body: Uint8Array;
}

/** Why a frame was refused; a readonly union keyed on `code` so every surface can format it its own way. */
export type FrameFault =
  | { readonly code: 'bad-magic'; readonly got: number }
  | { readonly code: 'header-crc'; readonly got: number; readonly want: number }
  | { readonly code: 'body-crc'; readonly got: number; readonly want: number }
  | { readonly code: 'too-long'; readonly length: number; readonly max: number }
  | { readonly code: 'truncated'; readonly have: number; readonly need: number }
  | { readonly code: 'bad-flags'; readonly flags: number };

const KNOWN_FLAGS = FLAG_BODY_CRC | FLAG_JSON;

export function describeFault(f: FrameFault): string {
  switch (f.code) {
    case 'bad-magic':
      return `frame magic 0x${f.got.toString(16)} (expected 0x${FRAME_MAGIC.toString(16)})`;
    case 'header-crc':
      return `header CRC32C 0x${f.got.toString(16)} (computed 0x${f.want.toString(16)})`;
    case 'body-crc':
      return `body CRC32C 0x${f.got.toString(16)} (computed 0x${f.want.toString(16)})`;
    case 'too-long':
      return `body length ${f.length} exceeds the maximum ${f.max}`;
    case 'truncated':
      return `frame truncated: ${f.have} bytes available, ${f.need} needed`;
    case 'bad-flags':
      return `unknown flag bits 0x${f.flags.toString(16)}`;
  }
}

/** Writes a header at `offset` of `view`; the body must already be (or will be) at offset+24. */
export function writeHeader(
  view: DataView,
  offset: number,
  h: { type: number; flags: number; length: number; seq: number; corr: number; bodyCrc: number },
): void {
  const w0 = headerWord0(h.type, h.flags);
  const w1 = h.length >>> 0;
  const w2 = h.seq >>> 0;
  const w3 = h.corr >>> 0;
  const w4 = h.bodyCrc >>> 0;
  view.setUint32(offset, w0, true);
  view.setUint32(offset + 4, w1, true);
  view.setUint32(offset + 8, w2, true);
  view.setUint32(offset + 12, w3, true);
  view.setUint32(offset + 16, w4, true);
  view.setUint32(offset + 20, crc32cHeaderWords(w0, w1, w2, w3, w4), true);
}

/** Reads and checks a header; returns the header or the fault. Never reads outside `bytes`. */
export function readHeader(
  view: DataView,
  bytes: Uint8Array,
  offset: number,
  maxBody: number,
): FrameHeader | FrameFault {
  if (offset < 0 || offset + FRAME_HEADER_SIZE > bytes.length) {
    return { code: 'truncated', have: Math.max(0, bytes.length - offset), need: FRAME_HEADER_SIZE };
  }
  const w0 = view.getUint32(offset, true);
  const w1 = view.getUint32(offset + 4, true);
  const w2 = view.getUint32(offset + 8, true);
  const w3 = view.getUint32(offset + 12, true);
  const w4 = view.getUint32(offset + 16, true);
  const fault = checkHeaderWords(w0, w1, w2, w3, w4, view.getUint32(offset + 20, true), maxBody);
  if (fault !== undefined) return fault;
  return { type: (w0 >>> 16) & 0xff, flags: w0 >>> 24, length: w1, seq: w2, corr: w3, bodyCrc: w4 };
}

/** True where a Uint32Array stores words little-endian, as the frame format does (x86, Arm as run here). */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * The header as its six little-endian words (word 0 = magic | type << 16 | flags << 24), for code that moves
 * headers as words (the ring, on a little-endian host): the same bytes writeHeader produces.
 */
export function headerWord0(type: number, flags: number): number {
  return (FRAME_MAGIC | ((type & 0xff) << 16) | ((flags & 0xff) << 24)) >>> 0;
}

/** readHeader's checks over a header already loaded as words (a private copy); undefined when it is sound. */
export function checkHeaderWords(w0: number, w1: number, w2: number, w3: number, w4: number, w5: number, maxBody: number): FrameFault | undefined {
  const magic = w0 & 0xffff;
  if (magic !== FRAME_MAGIC) return { code: 'bad-magic', got: magic };
  const want = crc32cHeaderWords(w0, w1, w2, w3, w4);
  if (w5 >>> 0 !== want) return { code: 'header-crc', got: w5 >>> 0, want };
  const flags = w0 >>> 24;
  if ((flags & ~KNOWN_FLAGS) !== 0) return { code: 'bad-flags', flags };
  if (w1 >>> 0 > maxBody) return { code: 'too-long', length: w1 >>> 0, max: maxBody };
  return undefined;
}

export function isFault(x: FrameHeader | FrameFault): x is FrameFault {
  return 'code' in x;
}

export function checkBody(h: FrameHeader, body: Uint8Array): FrameFault | undefined {
  if ((h.flags & FLAG_BODY_CRC) === 0) return undefined;
  const want = crc32c(body);
  return want === h.bodyCrc ? undefined : { code: 'body-crc', got: h.bodyCrc, want };
}

export function bodyCrcFor(flags: number, body: Uint8Array): number {
  return (flags & FLAG_BODY_CRC) !== 0 ? crc32c(body) : 0;
}

/** Encodes a whole frame into a fresh buffer (stream transports, test vectors). */
export function encodeFrame(f: Frame): Uint8Array {
  const out = allocBytes(FRAME_HEADER_SIZE + f.body.length);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out.set(f.body, FRAME_HEADER_SIZE);
  writeHeader(view, 0, {
    type: f.type,
    flags: f.flags,
    length: f.body.length,
    seq: f.seq,
    corr: f.corr,
    bodyCrc: bodyCrcFor(f.flags, f.body),
  });
  return out;
}

/** Decodes one frame at the start of `bytes`; the body is a copy. */
export function decodeFrame(bytes: Uint8Array, maxBody: number): Frame | FrameFault {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = readHeader(view, bytes, 0, maxBody);
  if (isFault(h)) return h;
  if (FRAME_HEADER_SIZE + h.length > bytes.length) {
    return { code: 'truncated', have: bytes.length, need: FRAME_HEADER_SIZE + h.length };
  }
  const body = copyBytes(bytes, FRAME_HEADER_SIZE, FRAME_HEADER_SIZE + h.length);
  const fault = checkBody(h, body);
  if (fault) return fault;
  return { type: h.type, flags: h.flags, seq: h.seq, corr: h.corr, body };
}
