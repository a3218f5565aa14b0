import test from 'ava';
import fc from 'fast-check';
import { allocBytes, copyBytes, encodeFrame, decodeFrame, utf8Bytes, FLAG_BODY_CRC } from '../runner-proto/src/frame/index.js';
import { joinHead, splitHead } from '../runner-proto/src/protocol/index.js';
import { z } from 'zod';

test('copyBytes: every size gives exactly the bytes asked for, as a private copy the source cannot change', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 9000 }), fc.integer({ min: 0, max: 500 }), (n, start) => {
      const src = new Uint8Array(start + n + 16).map((_, i) => (i * 7 + 3) & 0xff);
      const out = copyBytes(src, start, start + n);
      if (out.length !== n || !(out instanceof Uint8Array) || Buffer.isBuffer(out)) return false;
      for (let i = 0; i < n; i++) if (out[i] !== src[start + i]) return false;
      src.fill(0);
      for (let i = 0; i < n; i++) if (out[i] !== (((start + i) * 7 + 3) & 0xff)) return false;
      return true;
    }),
  );
  t.pass();
});

test('allocBytes: buffers from the shared slab are zeroed, 8-aligned, and never overlap', (t) => {
  const live: Uint8Array[] = [];
  for (let i = 0; i < 400; i++) {
    const b = allocBytes(65 + ((i * 37) % 4000));
    t.is(b.byteOffset % 8, 0);
    t.true(b.every((x) => x === 0), 'zeroed');
    b.fill(i & 0xff);
    live.push(b);
  }
  // Had two of them shared bytes, a later fill would have overwritten an earlier one's.
  live.forEach((b, i) => t.true(b.every((x) => x === (i & 0xff)), `buffer ${i} intact`));
});

test('pooled bodies survive the paths that view them through byteOffset: frame codec and head+bytes bodies', (t) => {
  for (const n of [0, 64, 65, 300, 4095, 4097]) {
    const body = copyBytes(new Uint8Array(n + 3).map((_, i) => i & 0xff), 3, n + 3);
    const frame = decodeFrame(encodeFrame({ type: 0x21, flags: FLAG_BODY_CRC, seq: 1, corr: 2, body }), 1 << 20);
    if ('code' in frame) return t.fail(`fault ${frame.code} at ${n}`);
    t.deepEqual(frame.body, body, `frame of ${n} bytes`);
    const joined = joinHead({ n }, body);
    const split = splitHead(0x21, joined, z.object({ n: z.number() }));
    t.is(split.head.n, n);
    t.deepEqual(new Uint8Array(split.raw), body);
  }
});

test('utf8Bytes encodes as TextEncoder does, lone surrogates included', (t) => {
  for (const s of ['', 'plain', 'é😀\u0000', '\uD800 lone', 'x'.repeat(5000)]) t.deepEqual(new Uint8Array(utf8Bytes(s)), new TextEncoder().encode(s), JSON.stringify(s.slice(0, 20)));
});
