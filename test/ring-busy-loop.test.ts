import test from 'ava';
import { peerState } from '../runner-proto/src/channel/index.js';
import { Side } from '../runner-proto/src/region/index.js';
import { ringPair } from './helpers/ring-region.js';

// An agent whose frame handlers are slow (an output listener that takes milliseconds per chunk) must still give
// its event loop to timers and sockets often, and must keep its heartbeat moving: the runner ends the runs of an
// agent whose heartbeat stands still for 600 ms (seen as a flood's output stopping in the fairness test).

const RING = 256 * 1024;

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

test.serial('a slow frame handler does not hold the event loop: the receive loop yields on a time budget', async (t) => {
  const { runner, agent } = await ringPair(t, 'slow-handler', RING);
  let frames = 0;
  agent.transport.start({ frame: () => (frames++, busy(2)), fault: () => {}, closed: () => {} });
  // 600 frames in the ring at once: at 2 ms each, a loop that yielded only every 256 frames would hold the event
  // loop for half a second at a time.
  const sends: Promise<void>[] = [];
  for (let i = 0; i < 600; i++) sends.push(runner.transport.send({ type: 3, flags: 0, corr: i, body: new Uint8Array(64) }));
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 5);
  const deadline = Date.now() + 20_000;
  while (frames < 600 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  clearInterval(timer);
  await Promise.all(sends);
  t.is(frames, 600);
  t.log(`longest gap between 5 ms timer ticks while 600 frames of 2 ms were handled: ${worst.toFixed(1)} ms`);
  // The budget is 10 ms; 150 ms leaves room for a loaded machine and is far below the 512 ms of 256 frames.
  t.true(worst < 150, `the event loop was held for ${worst.toFixed(1)} ms`);
});

test.serial('the agent side heartbeat thread keeps beating while its event loop is blocked', async (t) => {
  const { runner, agent } = await ringPair(t, 'hb-thread', RING, { heartbeatMs: 50, heartbeatThread: true });
  // Give the thread time to start and map the region.
  const started = Date.now();
  const first = peerState(runner.region, Side.Agent).heartbeat;
  while (peerState(runner.region, Side.Agent).heartbeat === first && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 20));
  const before = peerState(runner.region, Side.Agent).heartbeat;
  busy(800);
  const after = peerState(runner.region, Side.Agent).heartbeat;
  t.true(after - before >= 5, `the heartbeat moved ${after - before} times in 800 ms of a blocked loop`);

  // With the thread stopped (close), the loop-less side stops beating: the word is the thread's doing.
  await agent.close();
  const stopped = peerState(runner.region, Side.Agent).heartbeat;
  await new Promise((r) => setTimeout(r, 200));
  t.is(peerState(runner.region, Side.Agent).heartbeat, stopped, 'a closed link stops beating');
});
