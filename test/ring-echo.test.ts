import test from 'ava';
import { FLAG_BODY_CRC, FLAG_JSON, type Frame } from '../runner-proto/src/frame/index.js';
import { MsgType } from '../runner-proto/src/protocol/index.js';
import { Region, regionSizeFor } from '../runner-proto/src/region/index.js';
import { RingConsumer, RingProducer, frameSlot, maxBodyFor } from '../runner-proto/src/ring/index.js';
import { ringPair } from './helpers/ring-region.js';

// An ECHO's answer is its own bytes. The consumer can look at a frame's header without making its body (peek), and
// a producer can copy that body straight from the other ring (tryWriteFrom): the transport answers ECHO that way,
// with no frame object, handler or view.

const RING = 64 * 1024;

function body(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (seed * 7 + i * 31) & 0xff;
  return b;
}

/** Ring 0 carries requests in, ring 1 answers out, as on one side of a real region. */
function twoRings(): { inP: RingProducer; inC: RingConsumer; outP: RingProducer; outC: RingConsumer; buffer: ArrayBuffer } {
  const buffer = new ArrayBuffer(regionSizeFor(RING));
  const region = Region.initialise(buffer, RING);
  return { inP: new RingProducer(region.ring(0)), inC: new RingConsumer(region.ring(0)), outP: new RingProducer(region.ring(1)), outC: new RingConsumer(region.ring(1)), buffer };
}

test('peek leaves the frame where it is; take and skip move past it', (t) => {
  const { inP, inC } = twoRings();
  for (let i = 0; i < 3; i++) t.true(inP.tryWrite({ type: MsgType.ECHO, flags: FLAG_JSON, corr: 10 + i, body: body(20 + i, i) }));
  inP.publish();
  const s = frameSlot();
  t.is(inC.peek(s), true);
  t.like(s, { type: MsgType.ECHO, flags: FLAG_JSON, seq: 0, corr: 10, length: 20, bodyCrc: 0 });
  t.is(inC.peek(s), true, 'a second peek finds the same frame');
  t.is(s.corr, 10);
  const f = inC.take(s, false);
  t.false('code' in f);
  t.deepEqual((f as Frame).body, body(20, 0));
  t.false(inC.lends((f as Frame).body), 'take without borrow hands out a copy');
  t.is(inC.peek(s), true);
  t.is(s.corr, 11);
  inC.skip(s);
  t.is(inC.peek(s), true);
  t.is(s.corr, 12);
  const lent = inC.take(s, true) as Frame;
  t.true(inC.lends(lent.body), 'take with borrow hands out a view into the ring');
  t.deepEqual(lent.body, body(22, 2));
  t.is(inC.peek(s), false, 'then the ring is empty');
});

test('tryWriteFrom copies bodies of every length ring to ring, across wraps of both rings, CRC computed over the copy', (t) => {
  const { inP, inC, outP, outC } = twoRings();
  const s = frameSlot();
  // 0-300 take the word loop, the larger ones set(); the sizes do not divide the ring, so records land at every
  // offset and both rings wrap (with a PAD) many times.
  const sizes = [...Array.from({ length: 301 }, (_, i) => i), 1000, 4093, maxBodyFor(RING)];
  let corr = 0;
  let answered = 0;
  for (let round = 0; round < 8; round++) {
    for (const len of sizes) {
      const flags = corr % 3 === 0 ? FLAG_BODY_CRC : corr % 3 === 1 ? FLAG_JSON : 0;
      t.true(inP.tryWrite({ type: MsgType.ECHO, flags, corr, body: body(len, corr) }));
      inP.publish();
      t.is(inC.peek(s), true);
      t.true(outP.tryWriteFrom(MsgType.RESULT, s.flags, s.corr, inC, s));
      inC.skip(s);
      inC.release();
      outP.publish();
      const got = outC.read(); // checks the header CRC, and the body CRC where flagged
      if (got === undefined || 'code' in got) return t.fail(`answer ${corr}: ${JSON.stringify(got)}`);
      outC.release();
      if (got.type !== MsgType.RESULT || got.corr !== corr || got.flags !== flags || Buffer.compare(got.body, body(len, corr)) !== 0) {
        return t.fail(`answer ${corr} (${len} B, flags ${flags}) differs from its request`);
      }
      answered++;
      corr++;
    }
  }
  t.is(answered, 8 * sizes.length);
});

test('tryWriteFrom refuses when the answer ring is full and leaves the request to be taken again', (t) => {
  const { inP, inC, outP } = twoRings();
  const s = frameSlot();
  const big = new Uint8Array(maxBodyFor(RING));
  // Two half-ring records fill the answer ring to the last byte.
  t.true(outP.tryWrite({ type: MsgType.STDOUT, flags: 0, corr: 1, body: big }));
  t.true(outP.tryWrite({ type: MsgType.STDOUT, flags: 0, corr: 2, body: big }));
  t.true(inP.tryWrite({ type: MsgType.ECHO, flags: 0, corr: 7, body: new Uint8Array(8) }));
  inP.publish();
  t.is(inC.peek(s), true);
  t.false(outP.tryWriteFrom(MsgType.RESULT, s.flags, s.corr, inC, s), 'no room left for the answer');
  t.is(inC.peek(s), true);
  t.is(s.corr, 7, 'the request is still the next frame');
});

test('peek refuses a damaged header with the fault read names, and moves nothing', (t) => {
  const { inP, inC, buffer } = twoRings();
  t.true(inP.tryWrite({ type: MsgType.ECHO, flags: 0, corr: 5, body: body(64, 5) }));
  inP.publish();
  new Uint8Array(buffer, 0x1000 + 12, 1)[0]! ^= 0x40; // a bit of corr: the header CRC no longer matches
  const s = frameSlot();
  const fault = inC.peek(s);
  t.true(typeof fault === 'object' && fault.code === 'header-crc', JSON.stringify(fault));
  t.deepEqual(inC.peek(s), fault, 'peeking again finds the same damaged frame');
  const read = inC.read();
  t.true(read !== undefined && 'code' in read && read.code === 'header-crc');
});

test.serial('a transport with echo set answers ECHOs itself, byte for byte, and hands every other frame to its handler', async (t) => {
  const { runner, agent } = await ringPair(t, 'echo-fast', RING);
  const rt = runner.transport;
  rt.echo = { request: MsgType.ECHO, answer: MsgType.RESULT };
  const handled: number[] = [];
  // The handler answers too (as the runner's does), so an ECHO that reached it shows up below, not as a timeout.
  rt.start({
    frame: (f) => {
      handled.push(f.type);
      if (f.type === MsgType.ECHO) void rt.send({ type: MsgType.RESULT, flags: f.flags, corr: f.corr, body: f.body });
    },
    fault: () => {},
    closed: () => {},
  });
  const answers = new Map<number, Frame>();
  agent.transport.start({ frame: (f) => void answers.set(f.corr, f), fault: () => {}, closed: () => {} });
  // 600 x ~140 B laps the 64 KiB rings. Sent 100 at a time, each lot answered before the next: the answers never
  // fill the runner's transmit ring (a full ring is the one case the transport hands an ECHO to the handler).
  const N = 600;
  const deadline = Date.now() + 20_000;
  for (let lot = 0; lot < N; lot += 100) {
    for (let i = lot; i < lot + 100; i++) await agent.transport.send({ type: MsgType.ECHO, flags: i % 2 === 0 ? FLAG_JSON : 0, corr: i, body: body(i % 250, i) });
    while (answers.size < lot + 100 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  }
  await agent.transport.send({ type: MsgType.STDOUT, flags: 0, corr: N, body: body(8, 1) });
  while (handled.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.is(answers.size, N);
  for (let i = 0; i < N; i++) {
    const a = answers.get(i);
    if (!a || a.type !== MsgType.RESULT || a.flags !== (i % 2 === 0 ? FLAG_JSON : 0) || Buffer.compare(a.body, body(i % 250, i)) !== 0) return t.fail(`answer ${i}: ${JSON.stringify(a && { type: a.type, flags: a.flags, len: a.body.length })}`);
  }
  t.deepEqual(handled, [MsgType.STDOUT], 'no ECHO reached the handler; the STDOUT did');
  t.is(rt.framesIn, N + 1);
  t.is(rt.framesOut, N);
});

test.serial('ECHOs with a body CRC, or behind queued sends, take the handler path, and answers keep their order', async (t) => {
  const { runner, agent } = await ringPair(t, 'echo-queued', RING);
  const rt = runner.transport;
  rt.echo = { request: MsgType.ECHO, answer: MsgType.RESULT };
  rt.borrow = (type) => type === MsgType.ECHO;
  const viaHandler: number[] = [];
  rt.start({
    frame: (f) => {
      viaHandler.push(f.corr);
      void rt.send({ type: MsgType.RESULT, flags: f.flags, corr: f.corr, body: f.body });
    },
    fault: () => {},
    closed: () => {},
  });
  // While the agent reads nothing: a half-ring frame and a small one leave room for small answers but not for a
  // second half-ring frame, which queues. An answer written past it would overtake it.
  const half = new Uint8Array(rt.maxBody);
  const sent = [rt.send({ type: MsgType.STDOUT, flags: 0, corr: 1_000_001, body: half }), rt.send({ type: MsgType.STDOUT, flags: 0, corr: 1_000_002, body: new Uint8Array(100) })];
  sent.push(rt.send({ type: MsgType.STDOUT, flags: 0, corr: 1_000_003, body: half }));
  // The flagged ECHO, then plain ones: all through the handler, whose answers queue behind the third frame.
  await agent.transport.send({ type: MsgType.ECHO, flags: FLAG_BODY_CRC, corr: 0, body: body(32, 0) });
  const N = 50;
  for (let i = 1; i <= N; i++) await agent.transport.send({ type: MsgType.ECHO, flags: 0, corr: i, body: body(100, i) });
  const deadline = Date.now() + 10_000;
  while (viaHandler.length < N + 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.deepEqual(viaHandler, Array.from({ length: N + 1 }, (_, i) => i), 'the flagged ECHO and every ECHO behind the queue went to the handler');
  const order: number[] = [];
  const bodies = new Map<number, Uint8Array>();
  agent.transport.start({
    frame: (f) => {
      order.push(f.corr);
      bodies.set(f.corr, f.body);
    },
    fault: () => {},
    closed: () => {},
  });
  await Promise.all(sent);
  while (order.length < N + 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.deepEqual(order, [1_000_001, 1_000_002, 1_000_003, ...Array.from({ length: N + 1 }, (_, i) => i)]);
  t.deepEqual(bodies.get(0), body(32, 0));
  for (let i = 1; i <= N; i++) t.deepEqual(bodies.get(i), body(100, i));
});
