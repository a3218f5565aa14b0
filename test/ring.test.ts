import test from 'ava';
import fc from 'fast-check';
import { crc32c } from '../runner-proto/src/crc/index.js';
import { decodeFrame, encodeFrame, FRAME_HEADER_SIZE, FLAG_BODY_CRC, FLAG_JSON, readHeader, writeHeader } from '../runner-proto/src/frame/index.js';
import { CTRL_HEAD, CTRL_TAIL, Region, regionSizeFor } from '../runner-proto/src/region/index.js';
import { RingConsumer, RingProducer, maxBodyFor, recordSize } from '../runner-proto/src/ring/index.js';
import type { Frame } from '../runner-proto/src/frame/index.js';

const RING = 64 * 1024;

function freshRing(): { region: Region; producer: RingProducer; consumer: RingConsumer; buffer: ArrayBuffer } {
  const buffer = new ArrayBuffer(regionSizeFor(RING));
  const region = Region.initialise(buffer, RING);
  return { region, producer: new RingProducer(region.ring(0)), consumer: new RingConsumer(region.ring(0)), buffer };
}

function body(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (seed + i * 31) & 0xff;
  return b;
}

test('frames round-trip through the ring in order, across many wraps', (t) => {
  const { producer, consumer } = freshRing();
  let sent = 0;
  let got = 0;
  const sizes = [0, 1, 7, 8, 63, 64, 1000, 4096, maxBodyFor(RING)];
  for (let round = 0; round < 200; round++) {
    for (const len of sizes) {
      if (!producer.tryWrite({ type: 0x21, flags: FLAG_BODY_CRC, corr: sent, body: body(len, sent) })) break;
      sent++;
    }
    producer.publish();
    for (let f = consumer.read(); f !== undefined; f = consumer.read()) {
      if ('code' in f) return t.fail(`fault ${f.code}`);
      t.is(f.corr, got);
      t.deepEqual(f.body, body(f.body.length, got));
      got++;
    }
    consumer.release();
  }
  t.is(got, sent);
  t.true(sent > 1000);
});

test('back-pressure: a full ring refuses writes until the consumer releases', (t) => {
  const { producer, consumer } = freshRing();
  const big = new Uint8Array(8000);
  let n = 0;
  while (producer.tryWrite({ type: 1, flags: 0, corr: n, body: big })) n++;
  producer.publish();
  t.is(n, Math.floor(RING / recordSize(big.length)));
  t.false(producer.tryWrite({ type: 1, flags: 0, corr: 99, body: big }));
  const f = consumer.read();
  t.truthy(f && !('code' in f));
  t.false(producer.tryWrite({ type: 1, flags: 0, corr: 99, body: big }), 'head not yet released');
  consumer.release();
  t.true(producer.tryWrite({ type: 1, flags: 0, corr: 99, body: big }));
});

test('a body over half the ring is refused at the producer', (t) => {
  const { producer } = freshRing();
  t.throws(() => producer.tryWrite({ type: 1, flags: 0, corr: 0, body: new Uint8Array(maxBodyFor(RING) + 1) }), { instanceOf: RangeError });
});

test('flag-and-recheck: the producer asks for a kick only when the consumer armed it', (t) => {
  const { producer, consumer } = freshRing();
  producer.tryWrite({ type: 1, flags: 0, corr: 0, body: new Uint8Array(4) });
  t.false(producer.publish(), 'consumer did not ask');
  t.false(consumer.armKick(), 'work is pending: arming is withdrawn');
  consumer.read();
  consumer.release();
  t.true(consumer.armKick(), 'empty: safe to sleep');
  const bell = consumer.doorbell();
  producer.tryWrite({ type: 1, flags: 0, corr: 1, body: new Uint8Array(4) });
  t.true(producer.publish(), 'consumer asked: kick');
  t.is(consumer.doorbell(), bell + 1);
  producer.tryWrite({ type: 1, flags: 0, corr: 2, body: new Uint8Array(4) });
  t.false(producer.publish(), 'flag consumed by the first kick');
});

test('property: any sequence of writes and reads matches a FIFO reference model', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.record({ op: fc.constant('w' as const), len: fc.integer({ min: 0, max: 20000 }) }), fc.record({ op: fc.constant('r' as const), n: fc.integer({ min: 1, max: 8 }) })), { maxLength: 300 }),
      (ops) => {
        const { producer, consumer } = freshRing();
        const model: Array<{ corr: number; len: number }> = [];
        let corr = 0;
        for (const o of ops) {
          if (o.op === 'w') {
            const ok = producer.tryWrite({ type: 2, flags: FLAG_BODY_CRC, corr, body: body(o.len, corr) });
            producer.publish();
            if (ok) model.push({ corr, len: o.len });
            corr++;
          } else {
            for (let i = 0; i < o.n; i++) {
              const f = consumer.read();
              const want = model.shift();
              if (want === undefined) {
                if (f !== undefined) return false;
                break;
              }
              if (f === undefined || 'code' in f || f.corr !== want.corr || f.body.length !== want.len) return false;
            }
            consumer.release();
          }
        }
        return true;
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('property: the frame decoder never throws and never accepts a mutated frame as the original', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 0xffff }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), (b, corr, flips) => {
      const enc = encodeFrame({ type: 0x20, flags: FLAG_JSON | FLAG_BODY_CRC, seq: 7, corr, body: b });
      const ok = decodeFrame(enc, 1 << 20);
      if ('code' in ok) return false;
      const bad = enc.slice();
      for (const [pos, x] of flips) bad[pos % bad.length]! ^= x;
      const r = decodeFrame(bad, 1 << 20);
      // CRC32C catches every burst of up to 32 bits; random multi-byte flips are caught with overwhelming odds.
      return 'code' in r || (r.corr === corr && Buffer.compare(Buffer.from(r.body), Buffer.from(b)) === 0);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
      const r = decodeFrame(junk, 1 << 16);
      return 'code' in r || r.body.length <= junk.length - FRAME_HEADER_SIZE;
    }),
  );
  t.pass();
});

test('property: scribbling on the ring data and indices yields faults, never an out-of-range read or a throw', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat({ max: regionSizeFor(RING) - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 64 }),
      fc.integer({ min: 1, max: 40 }),
      (scribbles, frames) => {
        const { producer, consumer, buffer } = freshRing();
        for (let i = 0; i < frames; i++) producer.tryWrite({ type: 3, flags: FLAG_BODY_CRC, corr: i, body: body(500 + i * 13, i) });
        producer.publish();
        const bytes = new Uint8Array(buffer);
        for (const [pos, v] of scribbles) if (pos >= 0x100) bytes[pos] = v; // everything but the header
        let faults = 0;
        for (let i = 0; i < frames + 4; i++) {
          const f = consumer.read();
          if (f === undefined) break;
          if ('code' in f) {
            faults++;
            break;
          }
          if (f.body.length > maxBodyFor(RING)) return false;
        }
        return faults <= 1;
      },
    ),
    { numRuns: 500 },
  );
  t.pass();
});

test('reset handshake: after corruption the consumer asks, the producer restarts at 0, traffic resumes', (t) => {
  const { producer, consumer, buffer } = freshRing();
  for (let i = 0; i < 5; i++) producer.tryWrite({ type: 3, flags: FLAG_BODY_CRC, corr: i, body: body(100, i) });
  producer.publish();
  new Uint8Array(buffer)[0x1000 + 30] ^= 0xff; // corrupt the first body
  const f = consumer.read();
  t.true(f !== undefined && 'code' in f && f.code === 'body-crc');
  consumer.requestReset();
  t.is(consumer.read(), undefined, 'nothing is read while the reset is pending');
  t.true(producer.serviceReset());
  t.false(producer.serviceReset(), 'a request is carried out once');
  producer.tryWrite({ type: 3, flags: FLAG_BODY_CRC, corr: 42, body: body(10, 42) });
  producer.publish();
  const g = consumer.read() as Frame;
  t.is(g.corr, 42);
  t.deepEqual(g.body, body(10, 42));
});

test('region header: a wrong magic, version or size is refused with the byte offset', (t) => {
  const buffer = new ArrayBuffer(regionSizeFor(RING));
  Region.initialise(buffer, RING);
  t.notThrows(() => Region.attach(buffer));
  const v = new DataView(buffer);
  v.setUint32(8, 2, true);
  t.throws(() => Region.attach(buffer), { message: /CRC32C mismatch at byte 28|version/ });
  Region.initialise(buffer, RING);
  new Uint8Array(buffer)[0] = 0x58;
  t.throws(() => Region.attach(buffer), { message: /magic.*at byte 0/ });
  t.throws(() => Region.attach(new ArrayBuffer(100)), { message: /only 100 bytes/ });
});

test('property: the ring writes headers as words exactly as writeHeader does, and checks them as readHeader does', (t) => {
  fc.assert(
    fc.property(
      fc.record({
        type: fc.integer({ min: 0, max: 255 }),
        flags: fc.constantFrom(0, FLAG_BODY_CRC, FLAG_JSON, FLAG_BODY_CRC | FLAG_JSON),
        corr: fc.integer({ min: 0, max: 0xffffffff }),
        len: fc.integer({ min: 0, max: 300 }),
      }),
      fc.integer({ min: 0, max: 23 }),
      fc.integer({ min: 1, max: 255 }),
      ({ type, flags, corr, len }, at, xor) => {
        const { producer, consumer, buffer } = freshRing();
        const b = body(len, corr & 0xff);
        t.true(producer.tryWrite({ type, flags, corr, body: b }));
        producer.publish();
        const ring = new Uint8Array(buffer, 0x1000, FRAME_HEADER_SIZE);
        const expected = new Uint8Array(FRAME_HEADER_SIZE);
        writeHeader(new DataView(expected.buffer), 0, { type, flags, length: len, seq: 0, corr, bodyCrc: flags & FLAG_BODY_CRC ? crc32c(b) : 0 });
        t.deepEqual(new Uint8Array(ring), expected);
        // One damaged header byte: the ring refuses it with the fault readHeader names.
        ring[at]! ^= xor;
        const copy = new Uint8Array(ring);
        const want = readHeader(new DataView(copy.buffer), copy, 0, maxBodyFor(RING));
        const got = consumer.read();
        t.true(got !== undefined && 'code' in got && 'code' in want && got.code === want.code, `byte ${at}: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`);
      },
    ),
    { numRuns: 300 },
  );
});

// The counters are free-running u32; the TypeScript ends keep them as int32 (the same bits). Start a ring just
// below 2^31 and just below 2^32 and push it across: order, bodies, back-pressure and the published word must
// all come out as they do near 0.
for (const [name, start] of [['2^31', 2 ** 31 - 8 * 1024], ['2^32', 2 ** 32 - 8 * 1024]] as const) {
  test(`the ring's free-running counters cross ${name} without a fault, a lost frame or a wrong free count`, (t) => {
    const buffer = new ArrayBuffer(regionSizeFor(RING));
    const region = Region.initialise(buffer, RING);
    const mem = region.ring(0);
    Atomics.store(mem.words, (mem.ctrl + CTRL_TAIL) >> 2, start | 0);
    Atomics.store(mem.words, (mem.ctrl + CTRL_HEAD) >> 2, start | 0);
    const producer = new RingProducer(mem);
    const consumer = new RingConsumer(mem);
    t.is(producer.published, start, 'the producer adopts the published tail');
    t.is(producer.free(), RING);
    let sent = 0;
    let got = 0;
    let fulls = 0;
    // 3000 B bodies: a lap of the 64 KiB ring every 21 frames, so the ring also wraps its data area on the way.
    while (sent < 200) {
      while (producer.tryWrite({ type: 0x21, flags: FLAG_BODY_CRC, corr: sent, body: body(3000, sent) })) sent++;
      fulls++;
      t.true(producer.free() < recordSize(3000) * 2, 'a refused write means the ring is nearly full');
      producer.publish();
      for (let f = consumer.read(); f !== undefined; f = consumer.read()) {
        if ('code' in f) return t.fail(`fault ${f.code} after ${got} frames`);
        t.is(f.corr, got);
        t.deepEqual(f.body, body(3000, got));
        got++;
      }
      consumer.release();
      t.is(producer.free(), RING);
    }
    t.is(got, sent);
    t.true(fulls > 5, 'the ring filled up on the way');
    const tailWord = Atomics.load(mem.words, (mem.ctrl + CTRL_TAIL) >> 2) >>> 0;
    t.is(tailWord, producer.published);
    if (name === '2^31') t.true(tailWord > 2 ** 31, `the tail word crossed 2^31 (${tailWord})`);
    else t.true(tailWord < start, `the tail word wrapped past 2^32 (${tailWord})`);
  });
}
