import test from 'ava';
import type { Frame } from '../runner-proto/src/frame/index.js';
import { MsgType } from '../runner-proto/src/protocol/index.js';
import { ringPair } from './helpers/ring-region.js';

// A transport may lend a frame's body (a view into its receive ring, valid until the handler returns) to handlers
// that consume it at once: module chunks, and ECHO, whose body goes straight back through send(). A lent body that
// has to wait behind a full transmit ring must be copied, or the ring would reuse its bytes under the queued frame.

const RING = 64 * 1024;

function pattern(i: number): Uint8Array {
  const b = new Uint8Array(200);
  for (let k = 0; k < b.length; k++) b[k] = (i * 31 + k) & 0xff;
  return b;
}

test.serial('a lent ECHO body sent back behind a full ring arrives with its own bytes, after the ring has lapped', async (t) => {
  const { runner, agent } = await ringPair(t, 'borrow-echo', RING);
  const rt = agent.transport;
  let lent = 0;
  let copiedBack = 0;
  rt.borrow = (type) => type === MsgType.ECHO;
  rt.start({
    frame: (f) => {
      if (rt.rx.lends(f.body)) lent++;
      void rt.send({ type: MsgType.RESULT, flags: f.flags, corr: f.corr, body: f.body }).then(() => copiedBack++);
    },
    fault: () => {},
    closed: () => {},
  });
  // Fill the agent's transmit ring while nobody reads it: every answer below has to wait in the queue.
  const filler = new Uint8Array(rt.maxBody);
  const fill = [0, 1, 2].map((i) => rt.send({ type: MsgType.STDOUT, flags: 0, corr: 1_000_000 + i, body: filler }));
  // 1000 ECHOs of 200 B lap the 64 KiB ring about three times, so the bytes every early answer was lent from are
  // overwritten by later requests before that answer can leave.
  const N = 1000;
  for (let i = 0; i < N; i++) await runner.transport.send({ type: MsgType.ECHO, flags: 0, corr: i, body: pattern(i) });
  const deadline = Date.now() + 10_000;
  while (lent < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.is(lent, N, 'every ECHO body was lent, not copied, by the receive ring');
  t.is(copiedBack, 0, 'no answer could be written while the transmit ring was full');

  const answers = new Map<number, Uint8Array>();
  runner.transport.start({ frame: (f: Frame) => void (f.type === MsgType.RESULT && answers.set(f.corr, f.body)), fault: () => {}, closed: () => {} });
  await Promise.all(fill);
  while (answers.size < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.is(answers.size, N);
  let wrong = 0;
  for (let i = 0; i < N; i++) if (Buffer.compare(answers.get(i) ?? new Uint8Array(0), pattern(i)) !== 0) wrong++;
  t.is(wrong, 0, `${wrong} answers carried bytes other than their request's`);
});

test.serial('a body the handler keeps without sending is only valid if it was copied: types not lent get copies', async (t) => {
  const { runner, agent } = await ringPair(t, 'borrow-kept', RING);
  const rt = agent.transport;
  rt.borrow = (type) => type === MsgType.ECHO;
  const kept: Frame[] = [];
  rt.start({ frame: (f) => void kept.push(f), fault: () => {}, closed: () => {} });
  const N = 1000;
  for (let i = 0; i < N; i++) await runner.transport.send({ type: MsgType.STDOUT, flags: 0, corr: i, body: pattern(i) });
  const deadline = Date.now() + 10_000;
  while (kept.length < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.is(kept.length, N);
  t.false(kept.some((f) => rt.rx.lends(f.body)), 'a type the transport does not lend is never a view into the ring');
  t.true(kept.every((f) => Buffer.compare(f.body, pattern(f.corr)) === 0));
});
