import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { crc32cJs } from '../../runner-proto/src/crc/index.js';
import { FLAG_BODY_CRC, FLAG_JSON, FRAME_HEADER_SIZE, FRAME_MAGIC, decodeFrame, encodeFrame, isFault, readHeader } from '../../runner-proto/src/frame/index.js';
import {
  MsgType,
  decodeCallBatchRequest,
  decodeCallBatchResults,
  encodeCallBatchRequest,
  encodeCallBatchResults,
  encodeJson,
  errorBodySchema,
  helloAckSchema,
  helloSchema,
  msgTypeName,
} from '../../runner-proto/src/protocol/index.js';
import {
  CTRL_DOORBELL,
  CTRL_HEAD,
  CTRL_RESET_ACK,
  CTRL_RESET_REQ,
  CTRL_TAIL,
  CTRL_WANT_KICK,
  DATA_OFFSET,
  RING_CTRL_OFFSETS,
  Region,
  regionSizeFor,
} from '../../runner-proto/src/region/index.js';
import { PAD_WORD, RingConsumer, RingProducer, recordSize } from '../../runner-proto/src/ring/index.js';

/*
 * The protocol test vectors of docs/protocol.md: their inputs, how the TypeScript implementation produces their
 * bytes, how those bytes are rendered into the document and parsed back out of it, and how documented bytes are
 * decoded into documented fields. The same inputs are hard-coded in the C peer (`peer --vectors`).
 *
 * In the document each vector is two fenced blocks:
 *
 *   ```hex vector:NAME        lines "OFFSET: xx xx ...  # comment"; OFFSET is hex (a frame offset for frames, a
 *                             region offset for regions); bytes of a region vector not listed are zero
 *   ```json fields:NAME       what the bytes decode to
 *
 * `node dist/build/protocol-vectors.js --write` regenerates both blocks from the code; the test fails when the
 * document and the code disagree.
 */

export const VECTOR_RING_SIZE = 64 * 1024;
export const HEADER_RING_SIZE = 1024 * 1024;

/** A tiny complete module, `(module (func (export "_start")))`: the MODULE_CHUNK vector's body. */
export const TINY_MODULE = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00, 0x07, 0x0a,
  0x01, 0x06, 0x5f, 0x73, 0x74, 0x61, 0x72, 0x74, 0x00, 0x00, 0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b,
]);
export const TINY_MODULE_DIGEST = `sha256:${createHash('sha256').update(TINY_MODULE).digest('hex')}`;

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

export interface FrameVectorDef {
  readonly kind: 'frame';
  readonly name: string;
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly corr: number;
  readonly body: Uint8Array;
  /** For JSON bodies: the schema the body must satisfy (the one the receiver applies). */
  readonly schema?: z.ZodType;
  /** For binary bodies with a structure: what the receiver's decoder makes of them (shown as `decoded`). */
  readonly decodeBody?: (body: Uint8Array) => unknown;
}

export interface RegionVectorDef {
  readonly kind: 'region';
  readonly name: string;
  readonly ringSize: number;
  /** [start, end) region byte ranges the vector covers; bytes in them that the document does not list are zero. */
  readonly ranges: ReadonlyArray<readonly [number, number]>;
  /** Runs the scenario with the real code and returns the region. */
  build(): ArrayBuffer;
  /** What the bytes mean (control words, frames a consumer reads, header fields). */
  decode(buffer: ArrayBuffer): unknown;
}

export type VectorDef = FrameVectorDef | RegionVectorDef;

// Sample bodies, spelled out (not taken from CAPABILITIES etc.) so a vector changes only when the wire format does.
const HELLO = {
  versions: [1],
  role: 'agent',
  epoch: 0x12345678,
  capabilities: ['module-transfer', 'run'],
  maxBody: HEADER_RING_SIZE / 2 - FRAME_HEADER_SIZE,
  software: 'wasmedge-agent',
};
const HELLO_ACK = {
  version: 1,
  epoch: 0x0badcafe,
  capabilities: ['module-transfer', 'run'],
  engines: ['v8'],
  modules: 0,
  software: 'wasmedge-runner',
};
const NOT_FOUND = {
  code: 'AGT_ERR_NOT_FOUND',
  message: `runner does not hold module ${TINY_MODULE_DIGEST}`,
  details: { field: 'digest' },
};

// CALL_BATCH_BIN: four calls (every value type, both limits, an app that is not there) and their answers.
const CALLS = [
  { app: 'calc', fn: 'add', args: [{ type: 'i32', value: 20 }, { type: 'i32', value: 22 }] },
  { app: 'calc', fn: 'mul64', args: [{ type: 'i64', value: '-3' }, { type: 'i64', value: '4' }], limits: { timeMs: 100, gas: 5000 } },
  { app: 'calc', fn: 'fdiv', args: [{ type: 'f64', value: 1 }, { type: 'f64', value: 4 }] },
  { app: 'nope', fn: 'scale', args: [{ type: 'f32', value: 1.5 }, { type: 'f32', value: 2 }] },
] as const;
const CALL_RESULTS = [
  { ok: true, results: [{ type: 'i32', value: 42 }], stats: { wallMs: 0.125, peakPages: 2, start: 'warm', startMs: 0.25 } },
  { ok: true, results: [{ type: 'i64', value: '-12' }], stats: { wallMs: 0.5, peakPages: 2, instructions: 9, start: 'warm', startMs: 0.625 } },
  { ok: true, results: [{ type: 'f64', value: 0.25 }], stats: { wallMs: 1.5, peakPages: 2, start: 'cold', startMs: 12.75 } },
  { ok: false, reason: 'load', exitCode: 1, message: 'AGT_ERR_NOT_FOUND: no app named nope is deployed on the runner', stats: { wallMs: 0, peakPages: 0 } },
] as const;

export const FRAME_VECTORS: readonly FrameVectorDef[] = [
  { kind: 'frame', name: 'frame-echo-empty', type: MsgType.ECHO, flags: 0, seq: 0, corr: 2, body: new Uint8Array(0) },
  { kind: 'frame', name: 'frame-hello', type: MsgType.HELLO, flags: FLAG_JSON | FLAG_BODY_CRC, seq: 1, corr: 4, body: encodeJson(HELLO), schema: helloSchema },
  { kind: 'frame', name: 'frame-hello-ack', type: MsgType.RESULT, flags: FLAG_JSON | FLAG_BODY_CRC, seq: 0, corr: 4, body: encodeJson(HELLO_ACK), schema: helloAckSchema },
  { kind: 'frame', name: 'frame-module-chunk', type: MsgType.MODULE_CHUNK, flags: 0, seq: 3, corr: 6, body: TINY_MODULE },
  { kind: 'frame', name: 'frame-error', type: MsgType.ERROR, flags: FLAG_JSON | FLAG_BODY_CRC, seq: 2, corr: 8, body: encodeJson(NOT_FOUND), schema: errorBodySchema },
  {
    kind: 'frame',
    name: 'frame-call-batch-bin',
    type: MsgType.CALL_BATCH_BIN,
    flags: FLAG_BODY_CRC,
    seq: 4,
    corr: 10,
    body: encodeCallBatchRequest(CALLS.map((c) => ({ ...c, args: [...c.args] }))),
    decodeBody: (b) => ({ calls: decodeCallBatchRequest(b) }),
  },
  {
    kind: 'frame',
    name: 'frame-call-batch-bin-result',
    type: MsgType.RESULT,
    flags: FLAG_BODY_CRC,
    seq: 3,
    corr: 10,
    body: encodeCallBatchResults(CALL_RESULTS),
    decodeBody: (b) => ({ results: decodeCallBatchResults(b) }),
  },
];

// ---------------------------------------------------------------------------------------------------------------
// Ring scenarios (ring 0 of a region with 64 KiB rings; the region header itself is its own vector)

const CTRL0 = RING_CTRL_OFFSETS[0];
const RING_RANGES: ReadonlyArray<readonly [number, number]> = [
  [CTRL0, CTRL0 + 0x100],
  [DATA_OFFSET, DATA_OFFSET + VECTOR_RING_SIZE],
];

function freshRing(): { buffer: ArrayBuffer; region: Region; producer: RingProducer; consumer: RingConsumer } {
  const buffer = new ArrayBuffer(regionSizeFor(VECTOR_RING_SIZE));
  const region = Region.initialise(buffer, VECTOR_RING_SIZE);
  return { buffer, region, producer: new RingProducer(region.ring(0)), consumer: new RingConsumer(region.ring(0)) };
}

function mustWrite(p: RingProducer, type: number, flags: number, corr: number, body: Uint8Array): void {
  if (!p.tryWrite({ type, flags, corr, body })) throw new Error(`vector scenario: ring refused a ${body.length}-byte frame`);
}

function mustRead(c: RingConsumer): void {
  const r = c.read();
  if (r === undefined || 'code' in r) throw new Error(`vector scenario: expected a frame, got ${JSON.stringify(r)}`);
  c.release();
}

export interface CtrlWords {
  tail: number;
  resetAck: number;
  head: number;
  resetReq: number;
  wantKick: number;
  doorbell: number;
}

export function ctrlWords(buffer: ArrayBuffer, ring: 0 | 1 = 0): CtrlWords {
  const v = new DataView(buffer);
  const at = (off: number): number => v.getUint32(RING_CTRL_OFFSETS[ring] + off, true);
  return {
    tail: at(CTRL_TAIL),
    resetAck: at(CTRL_RESET_ACK),
    head: at(CTRL_HEAD),
    resetReq: at(CTRL_RESET_REQ),
    wantKick: at(CTRL_WANT_KICK),
    doorbell: at(CTRL_DOORBELL),
  };
}

const hex32 = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/** A frame as the document shows it: header fields, then the body as JSON, text or hex. */
export function frameFields(f: { type: number; flags: number; seq: number; corr: number; body: Uint8Array }, bodyCrc: number): Record<string, unknown> {
  const out: Record<string, unknown> = {
    type: msgTypeName(f.type),
    flags: f.flags,
    length: f.body.length,
    seq: f.seq,
    corr: f.corr,
    bodyCrc: hex32(bodyCrc),
  };
  if (f.flags & FLAG_JSON) out.json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(f.body));
  else if (f.body.length > 0 && f.body.every((b) => b >= 0x20 && b < 0x7f)) out.text = new TextDecoder().decode(f.body);
  else out.hex = Buffer.from(f.body).toString('hex');
  return out;
}

/** Mounts a ring-state dump on a fresh 64 KiB region and reads ring 0 the way a consumer attaching to it would. */
function decodeRingState(buffer: ArrayBuffer): unknown {
  const work = new ArrayBuffer(regionSizeFor(VECTOR_RING_SIZE));
  const region = Region.initialise(work, VECTOR_RING_SIZE);
  const src = new Uint8Array(buffer);
  const dst = new Uint8Array(work);
  for (const [a, b] of RING_RANGES) dst.set(src.subarray(a, b), a);
  const ctrl = ctrlWords(work);
  const consumer = new RingConsumer(region.ring(0));
  const reads: unknown[] = [];
  for (let i = 0; i < 16; i++) {
    const r = consumer.read();
    if (r === undefined) break;
    if ('code' in r) {
      reads.push({ fault: r.code });
      break;
    }
    consumer.release();
    // The frame was accepted, so its header's body CRC word is the CRC of the body (or 0 without the flag).
    reads.push(frameFields(r, r.flags & FLAG_BODY_CRC ? crc32cJs(r.body) : 0));
  }
  return { ringSize: VECTOR_RING_SIZE, ctrl, reads };
}

export const REGION_VECTORS: readonly RegionVectorDef[] = [
  {
    kind: 'region',
    name: 'region-header-1mib',
    ringSize: HEADER_RING_SIZE,
    ranges: [[0, DATA_OFFSET]],
    build: () => {
      const buffer = new ArrayBuffer(regionSizeFor(HEADER_RING_SIZE));
      Region.initialise(buffer, HEADER_RING_SIZE);
      return buffer;
    },
    decode: (buffer) => {
      const size = regionSizeFor(new DataView(buffer).getUint32(16, true));
      const work = new ArrayBuffer(Math.max(size, DATA_OFFSET));
      new Uint8Array(work).set(new Uint8Array(buffer, 0, DATA_OFFSET));
      let r: Region;
      try {
        r = Region.attach(work);
      } catch (err) {
        return { fault: (err as Error).message };
      }
      const v = new DataView(work);
      return {
        magic: new TextDecoder().decode(new Uint8Array(work, 0, 8)),
        layoutVersion: v.getUint32(8, true),
        regionSize: r.info.regionSize,
        ringSize: r.info.ringSize,
        ring0Data: hex32(v.getUint32(20, true)),
        ring1Data: hex32(v.getUint32(24, true)),
        headerCrc: hex32(v.getUint32(28, true)),
      };
    },
  },
  {
    kind: 'region',
    name: 'ring-two-frames',
    ringSize: VECTOR_RING_SIZE,
    ranges: RING_RANGES,
    build: () => {
      const { buffer, producer, consumer } = freshRing();
      // The consumer is about to sleep: flag-and-recheck says the ring is empty, so the flag stays set.
      if (!consumer.armKick()) throw new Error('vector scenario: armKick saw work');
      mustWrite(producer, MsgType.ECHO, 0, 2, text('hello'));
      mustWrite(producer, MsgType.PING, FLAG_JSON | FLAG_BODY_CRC, 4, text('{}'));
      // One publish for the batch; the consumer asked for a kick, so it clears the flag and rings the doorbell.
      if (!producer.publish()) throw new Error('vector scenario: publish did not kick');
      return buffer;
    },
    decode: decodeRingState,
  },
  {
    kind: 'region',
    name: 'ring-wrap',
    ringSize: VECTOR_RING_SIZE,
    ranges: RING_RANGES,
    build: () => {
      const { buffer, producer, consumer } = freshRing();
      // Two raw chunks of zeroes (only their headers are non-zero) bring tail to 16 bytes before the end.
      mustWrite(producer, MsgType.MODULE_CHUNK, 0, 2, new Uint8Array(VECTOR_RING_SIZE / 2 - FRAME_HEADER_SIZE));
      producer.publish();
      mustRead(consumer);
      mustWrite(producer, MsgType.MODULE_CHUNK, 0, 2, new Uint8Array(VECTOR_RING_SIZE / 2 - FRAME_HEADER_SIZE - 16));
      producer.publish();
      mustRead(consumer);
      // A 32-byte record does not fit in the last 16 bytes: PAD word there, the record at offset 0.
      mustWrite(producer, MsgType.ECHO, FLAG_BODY_CRC, 4, text('wrap!'));
      producer.publish();
      return buffer;
    },
    decode: decodeRingState,
  },
  {
    kind: 'region',
    name: 'ring-reset-requested',
    ringSize: VECTOR_RING_SIZE,
    ranges: RING_RANGES,
    build: () => resetScenario(false),
    decode: decodeRingState,
  },
  {
    kind: 'region',
    name: 'ring-reset-done',
    ringSize: VECTOR_RING_SIZE,
    ranges: RING_RANGES,
    build: () => resetScenario(true),
    decode: decodeRingState,
  },
];

/** Byte (in the second record) that the reset scenario corrupts: its correlation id's low byte. */
export const RESET_SCRIBBLE_OFFSET = 32 + 12;

function resetScenario(complete: boolean): ArrayBuffer {
  const { buffer, producer, consumer } = freshRing();
  mustWrite(producer, MsgType.ECHO, FLAG_BODY_CRC, 2, text('one'));
  mustWrite(producer, MsgType.ECHO, FLAG_BODY_CRC, 4, text('two'));
  producer.publish();
  mustRead(consumer);
  new Uint8Array(buffer, DATA_OFFSET)[RESET_SCRIBBLE_OFFSET]! ^= 0xff; // a scribble on the published second record
  const r = consumer.read();
  if (r === undefined || !('code' in r) || r.code !== 'header-crc') throw new Error('vector scenario: the scribble was not detected');
  consumer.requestReset(); // step 1
  if (consumer.read() !== undefined) throw new Error('vector scenario: read during a pending reset');
  if (!complete) return buffer;
  if (!producer.serviceReset()) throw new Error('vector scenario: no reset to service'); // step 2
  if (consumer.read() !== undefined) throw new Error('vector scenario: read after the ack'); // step 3: head = 0
  mustWrite(producer, MsgType.ECHO, FLAG_BODY_CRC, 6, text('three'));
  producer.publish();
  return buffer;
}

export const VECTORS: readonly VectorDef[] = [...FRAME_VECTORS, ...REGION_VECTORS];

// ---------------------------------------------------------------------------------------------------------------
// Computing a vector with the TypeScript implementation

export interface Computed {
  readonly name: string;
  /** Frames: the frame bytes. Regions: the whole region. */
  readonly bytes: Uint8Array;
  readonly ranges: ReadonlyArray<readonly [number, number]>;
  readonly fields: unknown;
}

export function compute(v: VectorDef): Computed {
  if (v.kind === 'frame') {
    const bytes = encodeFrame(v);
    return { name: v.name, bytes, ranges: [[0, bytes.length]], fields: decodeVectorBytes(v, bytes) };
  }
  const buffer = v.build();
  return { name: v.name, bytes: new Uint8Array(buffer), ranges: v.ranges, fields: v.decode(buffer) };
}

/** Decodes documented bytes into fields with the TypeScript decoder (frames: decodeFrame; regions: attach/read). */
export function decodeVectorBytes(v: VectorDef, bytes: Uint8Array): unknown {
  if (v.kind === 'frame') {
    const f = decodeFrame(bytes, 1 << 30);
    if ('code' in f) return { fault: f.code };
    if (bytes.length !== FRAME_HEADER_SIZE + f.body.length) return { fault: `trailing bytes: ${bytes.length - FRAME_HEADER_SIZE - f.body.length}` };
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const fields = { ...frameFields(f, view.getUint32(16, true)), headerCrc: hex32(view.getUint32(20, true)) };
    if (!v.decodeBody) return fields;
    try {
      return { ...fields, decoded: v.decodeBody(f.body) };
    } catch (err) {
      return { ...fields, decoded: { fault: (err as Error).message } };
    }
  }
  const buffer = new ArrayBuffer(regionSizeFor(v.ringSize));
  const dst = new Uint8Array(buffer);
  for (const [a, b] of v.ranges) dst.set(bytes.subarray(a, b), a);
  return v.decode(buffer);
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering (the generator) and parsing (the test)

const HEX_COL = 16 * 3;
const hx = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
const ascii = (b: Uint8Array): string => Array.from(b, (x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '.')).join('');
const le32 = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

function line(offset: number, digits: number, bytes: Uint8Array, comment?: string): string {
  const head = `${offset.toString(16).padStart(digits, '0')}: ${hx(bytes)}`;
  return comment ? `${head.padEnd(digits + 2 + HEX_COL)}# ${comment}` : head;
}

function flagNames(flags: number): string {
  const names = [];
  if (flags & FLAG_BODY_CRC) names.push('BODY_CRC');
  if (flags & FLAG_JSON) names.push('JSON');
  return names.length ? names.join('|') : 'none';
}

/** Annotated header lines of the frame whose header starts at `at` in `b`, offsets shown from `base`. */
function headerLines(b: Uint8Array, at: number, base: number, digits: number): string[] {
  const type = b[at + 2]!;
  const flags = b[at + 3]!;
  const bodyCrc = le32(b, at + 16);
  return [
    line(base, digits, b.subarray(at, at + 2), `magic 0x${FRAME_MAGIC.toString(16)} ("WS")`),
    line(base + 2, digits, b.subarray(at + 2, at + 3), `type 0x${type.toString(16).padStart(2, '0')} ${msgTypeName(type)}`),
    line(base + 3, digits, b.subarray(at + 3, at + 4), `flags 0x${flags.toString(16).padStart(2, '0')} (${flagNames(flags)})`),
    line(base + 4, digits, b.subarray(at + 4, at + 8), `body length ${le32(b, at + 4)}`),
    line(base + 8, digits, b.subarray(at + 8, at + 12), `sequence ${le32(b, at + 8)}`),
    line(base + 12, digits, b.subarray(at + 12, at + 16), `correlation ${le32(b, at + 12)}`),
    line(base + 16, digits, b.subarray(at + 16, at + 20), flags & FLAG_BODY_CRC ? `body CRC32C ${hex32(bodyCrc)}` : 'body CRC32C: 0, FLAG_BODY_CRC is clear'),
    line(base + 20, digits, b.subarray(at + 20, at + 24), `header CRC32C of bytes +0..+19 = ${hex32(le32(b, at + 20))}`),
  ];
}

function renderFrame(bytes: Uint8Array): string {
  const out = headerLines(bytes, 0, 0, 4);
  for (let off = FRAME_HEADER_SIZE; off < bytes.length; off += 16) {
    const chunk = bytes.subarray(off, Math.min(off + 16, bytes.length));
    out.push(line(off, 4, chunk, `|${ascii(chunk)}|`));
  }
  return out.join('\n');
}

function renderHeader(bytes: Uint8Array): string {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return [
    line(0x00, 5, bytes.subarray(0, 8), 'magic "WASMRING"'),
    line(0x08, 5, bytes.subarray(8, 12), `layout version ${v.getUint32(8, true)}`),
    line(0x0c, 5, bytes.subarray(12, 16), `region size ${hex32(v.getUint32(12, true))} (0x1000 + 2 x ring size)`),
    line(0x10, 5, bytes.subarray(16, 20), `ring data size ${hex32(v.getUint32(16, true))} (${v.getUint32(16, true) / 1024} KiB)`),
    line(0x14, 5, bytes.subarray(20, 24), `ring 0 data offset ${hex32(v.getUint32(20, true))}`),
    line(0x18, 5, bytes.subarray(24, 28), `ring 1 data offset ${hex32(v.getUint32(24, true))}`),
    line(0x1c, 5, bytes.subarray(28, 32), `CRC32C of bytes 0x00..0x1b = ${hex32(v.getUint32(28, true))}`),
  ].join('\n');
}

/** Ring 0 of a region: the six control words, then every data line that is not all zeroes, with what it holds. */
function renderRing(bytes: Uint8Array, ringSize: number): string {
  const c = ctrlWords(bytes.buffer as ArrayBuffer);
  const word = (off: number, what: string): string => line(CTRL0 + off, 5, bytes.subarray(CTRL0 + off, CTRL0 + off + 4), what);
  const out = [
    word(CTRL_TAIL, `tail = ${c.tail} (${hex32(c.tail)}), producer`),
    word(CTRL_RESET_ACK, `reset-ack = ${c.resetAck}, producer`),
    word(CTRL_HEAD, `head = ${c.head} (${hex32(c.head)}), consumer`),
    word(CTRL_RESET_REQ, `reset-req = ${c.resetReq}, consumer`),
    word(CTRL_WANT_KICK, `want-kick = ${c.wantKick}, consumer sets / producer clears`),
    word(CTRL_DOORBELL, `doorbell = ${c.doorbell}, producer`),
  ];
  const data = bytes.subarray(DATA_OFFSET, DATA_OFFSET + ringSize);
  // What each record start between head and tail is (a live frame, a PAD word, or a record that fails its checks).
  const live = new Map<number, string>();
  let pos = c.head;
  for (let i = 0; i < 64 && pos !== c.tail; i++) {
    const at = pos & (ringSize - 1);
    if (le32(data, at) === PAD_WORD) {
      live.set(at, 'PAD word 0xffffffff: the rest of the data area is unused this lap');
      pos = (pos + ringSize - at) >>> 0;
      continue;
    }
    const h = readHeader(new DataView(data.buffer, data.byteOffset, data.byteLength), data, at, ringSize / 2 - FRAME_HEADER_SIZE);
    if (isFault(h)) {
      live.set(at, `unreadable record (${h.code})`);
      break;
    }
    live.set(at, `record: ${msgTypeName(h.type)} length ${h.length} seq ${h.seq} corr ${h.corr}, ${recordSize(h.length)} bytes`);
    pos = (pos + recordSize(h.length)) >>> 0;
  }
  for (let off = 0; off < ringSize; off += 16) {
    const chunk = data.subarray(off, off + 16);
    if (chunk.every((x) => x === 0)) continue;
    const notes: string[] = [];
    for (let k = off; k < off + 16; k += 8) {
      const note = live.get(k);
      if (note) notes.push(`+${(k - off).toString(16)} ${note}`);
      else if (le32(data, k) & 0xffff && (le32(data, k) & 0xffff) === FRAME_MAGIC) notes.push(`+${(k - off).toString(16)} stale record (outside head..tail)`);
    }
    out.push(line(DATA_OFFSET + off, 5, chunk, notes.length ? `data+${off.toString(16).padStart(4, '0')} ${notes.join('; ')}` : `data+${off.toString(16).padStart(4, '0')} |${ascii(chunk)}|`));
  }
  return out.join('\n');
}

export function renderHex(v: VectorDef, c: Computed): string {
  if (v.kind === 'frame') return renderFrame(c.bytes);
  if (v.name === 'region-header-1mib') return renderHeader(c.bytes);
  return renderRing(c.bytes, v.ringSize);
}

export function renderFields(c: Computed): string {
  return JSON.stringify(c.fields, null, 2);
}

export interface DocBlock {
  readonly info: string;
  readonly name: string;
  readonly body: string;
  /** Character offsets of the body in the document (for rewriting it). */
  readonly start: number;
  readonly end: number;
}

/** Every ```hex vector:NAME and ```json fields:NAME block of a document. */
export function findBlocks(doc: string): { hex: Map<string, DocBlock>; fields: Map<string, DocBlock>; duplicates: string[] } {
  const hex = new Map<string, DocBlock>();
  const fields = new Map<string, DocBlock>();
  const duplicates: string[] = [];
  const re = /^```(hex vector|json fields):([A-Za-z0-9_.-]+)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm;
  for (let m = re.exec(doc); m !== null; m = re.exec(doc)) {
    const start = m.index + m[0].indexOf('\n') + 1;
    const block: DocBlock = { info: m[1]!, name: m[2]!, body: m[3]!, start, end: start + m[3]!.length };
    const map = m[1] === 'hex vector' ? hex : fields;
    if (map.has(block.name)) duplicates.push(`${m[1]}:${block.name}`);
    map.set(block.name, block);
  }
  return { hex, fields, duplicates };
}

/** Parses "OFFSET: xx xx ...  # comment" lines into (offset, byte) pairs; throws on anything else. */
export function parseHexBlock(body: string): Array<{ offset: number; bytes: Uint8Array }> {
  const out: Array<{ offset: number; bytes: Uint8Array }> = [];
  for (const [i, raw] of body.split('\n').entries()) {
    const ln = raw.replace(/#.*$/, '').trim();
    if (ln === '') continue;
    const m = /^(?:0x)?([0-9a-fA-F]+):((?:\s+[0-9a-fA-F]{2})+)$/.exec(ln);
    if (!m) throw new Error(`hex block line ${i + 1} is not "OFFSET: xx xx ...": ${raw}`);
    out.push({ offset: parseInt(m[1]!, 16), bytes: Uint8Array.from(m[2]!.trim().split(/\s+/), (x) => parseInt(x, 16)) });
  }
  return out;
}

/**
 * The bytes a documented vector stands for. Frames: the lines must run contiguously from offset 0. Regions: a
 * zeroed region of the vector's size with the listed bytes placed at their offsets (each inside a covered range,
 * none listed twice).
 */
export function docBytes(v: VectorDef, body: string): Uint8Array {
  const lines = parseHexBlock(body);
  if (v.kind === 'frame') {
    const parts: number[] = [];
    for (const l of lines) {
      if (l.offset !== parts.length) throw new Error(`${v.name}: line at offset 0x${l.offset.toString(16)} does not follow 0x${parts.length.toString(16)}`);
      parts.push(...l.bytes);
    }
    return Uint8Array.from(parts);
  }
  const out = new Uint8Array(regionSizeFor(v.ringSize));
  const seen = new Set<number>();
  for (const l of lines) {
    for (let k = 0; k < l.bytes.length; k++) {
      const at = l.offset + k;
      if (!v.ranges.some(([a, b]) => at >= a && at < b)) throw new Error(`${v.name}: byte at 0x${at.toString(16)} is outside the vector's ranges`);
      if (seen.has(at)) throw new Error(`${v.name}: byte at 0x${at.toString(16)} is listed twice`);
      seen.add(at);
      out[at] = l.bytes[k]!;
    }
  }
  return out;
}

/** Byte offsets (within the covered ranges) where two renderings of a vector differ, at most `limit` of them. */
export function diffRanges(a: Uint8Array, b: Uint8Array, ranges: ReadonlyArray<readonly [number, number]>, limit = 8): string[] {
  const out: string[] = [];
  for (const [s, e] of ranges) {
    for (let i = s; i < e && out.length < limit; i++) {
      const x = a[i] ?? -1;
      const y = b[i] ?? -1;
      if (x !== y) out.push(`0x${i.toString(16)}: ${x === -1 ? '--' : x.toString(16).padStart(2, '0')} vs ${y === -1 ? '--' : y.toString(16).padStart(2, '0')}`);
    }
  }
  return out;
}

/**
 * Parses `peer --vectors` output: one line per vector, "NAME OFFSET:HEX ..." (OFFSET hex, HEX a run of bytes);
 * bytes of a region vector not given are zero.
 */
export function parseCVectors(out: string): Map<string, Array<{ offset: number; bytes: Uint8Array }>> {
  const map = new Map<string, Array<{ offset: number; bytes: Uint8Array }>>();
  for (const raw of out.split('\n')) {
    const ln = raw.trim();
    if (ln === '') continue;
    const [name, ...runs] = ln.split(/\s+/);
    map.set(
      name!,
      runs.map((r) => {
        const [off, hexText] = r.split(':');
        return { offset: parseInt(off!, 16), bytes: Uint8Array.from(Buffer.from(hexText ?? '', 'hex')) };
      }),
    );
  }
  return map;
}

/** Materialises C runs as the same kind of byte array `compute` returns. */
export function cBytes(v: VectorDef, runs: Array<{ offset: number; bytes: Uint8Array }>): Uint8Array {
  if (v.kind === 'frame') {
    const total = runs.reduce((n, r) => Math.max(n, r.offset + r.bytes.length), 0);
    const out = new Uint8Array(total);
    for (const r of runs) out.set(r.bytes, r.offset);
    return out;
  }
  const out = new Uint8Array(regionSizeFor(v.ringSize));
  for (const r of runs) out.set(r.bytes, r.offset);
  return out;
}
