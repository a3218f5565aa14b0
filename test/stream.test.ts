import test from 'ava';
import { PassThrough, Duplex } from 'node:stream';
import { encodeFrame, FLAG_BODY_CRC, type Frame } from '../runner-proto/src/frame/index.js';
import { StreamTransport, type TransportFault } from '../runner-proto/src/transport/index.js';

/** A transport reading from a PassThrough we write raw bytes into. */
function harness(): { input: PassThrough; frames: Frame[]; faults: TransportFault[] } {
  const input = new PassThrough();
  const duplex = Duplex.from({ readable: input, writable: new PassThrough() });
  const frames: Frame[] = [];
  const faults: TransportFault[] = [];
  new StreamTransport(duplex).start({ frame: (f) => frames.push(f), fault: (f) => faults.push(f), closed: () => undefined });
  return { input, frames, faults };
}

const frame = (corr: number, len: number): Uint8Array =>
  encodeFrame({ type: 0x21, flags: FLAG_BODY_CRC, seq: corr, corr, body: Buffer.alloc(len, corr & 0xff) });

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('frames split at every byte boundary are reassembled', async (t) => {
  const { input, frames } = harness();
  const all = Buffer.concat([frame(1, 10), frame(2, 0), frame(3, 3000)]);
  for (let i = 0; i < all.length; i += 7) input.write(all.subarray(i, i + 7));
  await tick();
  t.deepEqual(frames.map((f) => [f.corr, f.body.length]), [[1, 10], [2, 0], [3, 3000]]);
});

test('garbage between frames is skipped with one fault, and the next valid frame is delivered', async (t) => {
  const { input, frames, faults } = harness();
  input.write(Buffer.concat([frame(1, 5), Buffer.from('this is not a frame header at all, definitely'), frame(2, 5)]));
  await tick();
  t.deepEqual(frames.map((f) => f.corr), [1, 2]);
  t.is(faults.length, 1);
});

test('a corrupted body is refused by its CRC and the stream continues', async (t) => {
  const { input, frames, faults } = harness();
  const bad = Buffer.from(frame(7, 100));
  bad[50] ^= 0x55;
  input.write(Buffer.concat([bad, frame(8, 1)]));
  await tick();
  t.deepEqual(frames.map((f) => f.corr), [8]);
  t.is(faults[0]!.code, 'body-crc');
});
