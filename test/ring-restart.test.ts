import test from 'ava';
import { attachRing, createRing, type RingLink } from '../runner-proto/src/channel/index.js';
import type { Frame } from '../runner-proto/src/frame/index.js';
import { CTRL_RESET_ACK, CTRL_RESET_REQ, RING_CTRL_OFFSETS } from '../runner-proto/src/region/index.js';
import type { TransportFault } from '../runner-proto/src/transport/types.js';
import { scratchRegion } from './helpers/ring-region.js';

// A runner that restarts re-initialises the region in place while the agent's old link is still mapped. The
// old link reads the zeroed indices as a bad frame; it must not answer that with a reset request, which the new
// runner would carry out in the middle of the next session and drop that session's first answers (seen as apps
// stuck "pending" after a runner kill -9 under load).

const RING = 64 * 1024;

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function echo(link: RingLink): void {
  link.transport.start({
    frame: (f) => void link.transport.send({ type: f.type, flags: 0, corr: f.corr, body: f.body.slice() }),
    fault: () => {},
    closed: () => {},
  });
}

function collector(link: RingLink): { frames: Frame[]; faults: TransportFault[] } {
  const got = { frames: [] as Frame[], faults: [] as TransportFault[] };
  link.transport.start({ frame: (f) => got.frames.push(f), fault: (f) => got.faults.push(f), closed: () => {} });
  return got;
}

async function exchange(agent: RingLink, got: { frames: Frame[] }, n: number, base: number): Promise<void> {
  for (let i = 0; i < n; i++) await agent.transport.send({ type: 3, flags: 0, corr: base + i, body: new Uint8Array(100).fill(i) });
  await until(`${n} echoes`, () => got.frames.filter((f) => f.corr >= base && f.corr < base + n).length === n);
}

test('a runner restarted under an attached agent: the old link leaves the new rings alone and the next session loses nothing', async (t) => {
  const { path, links } = scratchRegion(t, 'restart');
  const runner1 = createRing({ path, ringSize: RING });
  links.push(runner1);
  echo(runner1);
  const agent1 = await attachRing({ path, timeoutMs: 2000 });
  links.push(agent1);
  const got1 = collector(agent1);
  await exchange(agent1, got1, 20, 0);

  // kill -9 of the runner: its loop stops, nothing is closed; a new runner initialises the same file.
  await runner1.transport.close();
  const runner2 = createRing({ path, ringSize: RING, create: false });
  links.push(runner2);
  echo(runner2);
  await until('the old agent link to notice the re-initialised ring', () => got1.faults.length > 0);
  const words = runner2.region.words;
  const ctrl = RING_CTRL_OFFSETS[1];
  t.is(Atomics.load(words, (ctrl + CTRL_RESET_REQ) >> 2), Atomics.load(words, (ctrl + CTRL_RESET_ACK) >> 2), 'no reset requested of the new runner');

  const agent2 = await attachRing({ path, timeoutMs: 2000 });
  links.push(agent2);
  const got2 = collector(agent2);
  await exchange(agent2, got2, 50, 1000);
  await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(got2.faults, []);
  t.is(got2.frames.length, 50);
  t.is(runner2.transport.faults, 0);
  t.is(runner2.transport.tx.resets, 0, 'the new runner was never asked to restart its ring');
});

test('a reset request left by an earlier session is withdrawn when an agent attaches', async (t) => {
  const { path, links } = scratchRegion(t, 'stale-reset');
  const runner = createRing({ path, ringSize: RING });
  links.push(runner);
  const words = runner.region.words;
  const ctrl = RING_CTRL_OFFSETS[1];
  Atomics.store(words, (ctrl + CTRL_RESET_REQ) >> 2, Atomics.load(words, (ctrl + CTRL_RESET_ACK) >> 2) + 1);
  const agent = await attachRing({ path, timeoutMs: 2000 });
  links.push(agent);
  t.is(Atomics.load(words, (ctrl + CTRL_RESET_REQ) >> 2), Atomics.load(words, (ctrl + CTRL_RESET_ACK) >> 2));
  echo(runner);
  const got = collector(agent);
  await exchange(agent, got, 30, 0);
  t.deepEqual(got.faults, []);
  t.is(runner.transport.tx.resets, 0, 'the runner restarted no ring');
});
