import test from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { HEARTBEAT_MS, PEER_STALE_MS } from '../runner-proto/src/channel/index.js';
import { FLAG_JSON, FRAME_HEADER_SIZE, FRAME_MAGIC } from '../runner-proto/src/frame/index.js';
import { CAPABILITIES, MsgType, PROTOCOL_VERSION, encodeJson } from '../runner-proto/src/protocol/index.js';
import { DATA_OFFSET, LAYOUT_VERSION, RING_CTRL_OFFSETS } from '../runner-proto/src/region/index.js';
import { MIN_RING_SIZE, MAX_RING_SIZE } from '../runner-proto/src/region/layout.js';
import { PAD_WORD, RECORD_ALIGN } from '../runner-proto/src/ring/index.js';
import { STREAM_MAX_BODY } from '../runner-proto/src/transport/stream-transport.js';
import { buildC, peerOnce } from './helpers/c-peer.js';
import { ROOT } from './helpers/paths.js';
import {
  FRAME_VECTORS,
  VECTORS,
  cBytes,
  compute,
  decodeVectorBytes,
  diffRanges,
  docBytes,
  findBlocks,
  parseCVectors,
  type VectorDef,
} from './helpers/vectors.js';

// docs/protocol.md is the specification; its test vectors must be exactly what the TypeScript implementation and
// the C reference produce, and must decode back to the fields the document states next to them.

const DOC_PATH = path.join(ROOT, 'docs', 'protocol.md');
const doc = fs.readFileSync(DOC_PATH, 'utf8');
const blocks = findBlocks(doc);

function documented(v: VectorDef): { bytes: Uint8Array; fields: unknown } {
  const hex = blocks.hex.get(v.name);
  const fields = blocks.fields.get(v.name);
  if (!hex || !fields) throw new Error(`docs/protocol.md has no \`\`\`hex vector:${v.name} / \`\`\`json fields:${v.name} block`);
  return { bytes: docBytes(v, hex.body), fields: JSON.parse(fields.body) as unknown };
}

/** Equal over the vector's covered ranges (frames: the whole frame, length included). */
function sameBytes(v: VectorDef, a: Uint8Array, b: Uint8Array): string[] {
  if (v.kind === 'frame' && a.length !== b.length) return [`length ${a.length} vs ${b.length}`];
  return diffRanges(a, b, v.kind === 'frame' ? [[0, a.length]] : v.ranges);
}

test('the document has exactly one hex block and one fields block per vector, and none for unknown vectors', (t) => {
  t.deepEqual(blocks.duplicates, []);
  const names = VECTORS.map((v) => v.name).sort();
  t.deepEqual([...blocks.hex.keys()].sort(), names);
  t.deepEqual([...blocks.fields.keys()].sort(), names);
  // The ones the spec promises.
  for (const n of ['frame-echo-empty', 'frame-hello', 'frame-module-chunk', 'frame-error', 'region-header-1mib', 'ring-two-frames', 'ring-wrap', 'ring-reset-done']) {
    t.true(names.includes(n), n);
  }
});

for (const v of VECTORS) {
  test(`vector ${v.name}: TypeScript encodes exactly the documented bytes`, (t) => {
    const d = documented(v);
    const c = compute(v);
    t.deepEqual(sameBytes(v, d.bytes, c.bytes), [], 'documented vs TypeScript bytes (offset: doc vs code)');
  });

  test(`vector ${v.name}: the documented bytes decode to the documented fields`, (t) => {
    const d = documented(v);
    t.deepEqual(decodeVectorBytes(v, d.bytes), d.fields);
    t.deepEqual(compute(v).fields, d.fields, 'and the code computes the same fields');
  });
}

for (const v of FRAME_VECTORS) {
  test(`vector ${v.name}: the body satisfies its message schema and re-encodes byte for byte`, (t) => {
    const d = documented(v) as { bytes: Uint8Array; fields: { json?: unknown; type: string } };
    t.is(Number(MsgType[d.fields.type as keyof typeof MsgType]), v.type);
    const body = d.bytes.subarray(FRAME_HEADER_SIZE);
    if ((v.flags & FLAG_JSON) === 0) {
      t.is(v.schema, undefined);
      return;
    }
    t.deepEqual(Buffer.from(encodeJson(d.fields.json)), Buffer.from(body), 'encodeJson(documented json) is the documented body');
    const r = v.schema!.safeParse(d.fields.json);
    t.true(r.success, r.success ? '' : JSON.stringify(r.error.issues));
  });
}

test('a byte or a field changed in the document is detected (the comparison is not vacuous)', (t) => {
  for (const v of VECTORS) {
    const d = documented(v);
    const c = compute(v);
    const changed = Uint8Array.from(d.bytes);
    const at = v.kind === 'frame' ? 5 : v.ranges[0]![0]; // body length / first byte of the header or tail word
    changed[at]! ^= 0x01;
    t.notDeepEqual(sameBytes(v, changed, c.bytes), [], `${v.name}: flipped byte 0x${at.toString(16)} not noticed`);
    t.notDeepEqual(decodeVectorBytes(v, changed), d.fields, `${v.name}: flipped byte still decodes to the documented fields`);
  }
});

test('the generator agrees with the document, comments included (node dist/build/protocol-vectors.js --check)', async (t) => {
  const script = path.join(ROOT, 'dist', 'build', 'protocol-vectors.js');
  const r = await promisify(execFile)(process.execPath, [script, '--check']).catch((err: { stderr?: string; code?: number }) => err);
  t.is((r as { code?: number }).code ?? 0, 0, String((r as { stderr?: string }).stderr ?? ''));
});

// ---------------------------------------------------------------------------------------------------------------
// The C reference produces the same bytes

test.serial('the C peer (peer --vectors) produces exactly the documented bytes for every vector', async (t) => {
  await buildC();
  const runs = parseCVectors(await peerOnce(['--vectors']));
  t.deepEqual([...runs.keys()].sort(), VECTORS.map((v) => v.name).sort(), 'the C peer prints every vector');
  for (const v of VECTORS) {
    const c = runs.get(v.name);
    if (!c) continue;
    t.deepEqual(sameBytes(v, documented(v).bytes, cBytes(v, c)), [], `${v.name}: documented vs C bytes (offset: doc vs C)`);
  }
});

test.serial('the C peer decodes the documented frames to the documented header fields', async (t) => {
  await buildC();
  for (const v of FRAME_VECTORS) {
    const d = documented(v) as { bytes: Uint8Array; fields: Record<string, unknown> };
    const out = JSON.parse(await peerOnce(['--decode-vector', Buffer.from(d.bytes).toString('hex')])) as Record<string, unknown>;
    t.like(out, {
      ok: true,
      type: MsgType[d.fields.type as keyof typeof MsgType],
      flags: d.fields.flags,
      length: d.fields.length,
      seq: d.fields.seq,
      corr: d.fields.corr,
      bodyCrc: parseInt(String(d.fields.bodyCrc), 16),
      body: Buffer.from(d.bytes.subarray(FRAME_HEADER_SIZE)).toString('hex'),
    }, v.name);
  }
});

// ---------------------------------------------------------------------------------------------------------------
// The rest of the document tracks the code: every message type, capability and constant

test('every message type is in the message table with its number, and every capability is described', (t) => {
  for (const [name, num] of Object.entries(MsgType)) {
    const hex = `0x${num.toString(16).padStart(2, '0')}`;
    t.regex(doc, new RegExp(`^\\|\\s*\`${hex}\`\\s*\\|\\s*\`${name}\`\\s*\\|`, 'mi'), `message table row for ${name} (${hex})`);
  }
  for (const cap of CAPABILITIES) t.regex(doc, new RegExp(`^\\|\\s*\`${cap}\`\\s*\\|`, 'm'), `capability table row for ${cap}`);
});

test('the constants table matches the code', (t) => {
  const constants: Record<string, number | string> = {
    PROTOCOL_VERSION,
    LAYOUT_VERSION,
    FRAME_MAGIC: `0x${FRAME_MAGIC.toString(16)}`,
    FRAME_HEADER_SIZE,
    RECORD_ALIGN,
    PAD_WORD: `0x${PAD_WORD.toString(16)}`,
    DATA_OFFSET: `0x${DATA_OFFSET.toString(16)}`,
    RING0_CTRL: `0x${RING_CTRL_OFFSETS[0].toString(16)}`,
    RING1_CTRL: `0x${RING_CTRL_OFFSETS[1].toString(16)}`,
    MIN_RING_SIZE,
    MAX_RING_SIZE,
    STREAM_MAX_BODY,
    HEARTBEAT_MS,
    PEER_STALE_MS,
  };
  for (const [name, value] of Object.entries(constants)) {
    const m = new RegExp(`^\\|\\s*\`${name}\`\\s*\\|\\s*\`?([^|\`]+?)\`?\\s*\\|`, 'm').exec(doc);
    t.truthy(m, `constants table row for ${name}`);
    if (m) t.is(m[1]!.replace(/_/g, ''), String(value), name);
  }
});
