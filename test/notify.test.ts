import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalSystem } from '../agent/src/launch/index.js';
import { FutexNotifier, PollingNotifier } from '../runner-proto/src/notify/index.js';
import { createRegionFile, mapFile } from '../runner-proto/src/shm/index.js';
import { example } from './helpers/paths.js';

for (const notify of ['polling', 'futex', 'socket'] as const) {
  test(`runs end to end with ${notify} notification on both sides`, async (t) => {
    const sys = new LocalSystem({ transport: 'ring', notify });
    await sys.start();
    try {
      t.is((await sys.cli(['upload', example('hello')])).code, 0);
      for (let i = 0; i < 3; i++) {
        const r = await sys.cli(['run', 'hello', '--', String(i)]);
        t.is(r.stdout, `hello from wasm\n${i}\n`);
      }
      if (notify === 'socket') t.true(fs.existsSync(`${sys.region}.bell`), 'doorbell socket beside the region');
    } finally {
      await sys.stop();
    }
    t.false(fs.existsSync(`${sys.region}.bell`), 'doorbell socket removed');
  });
}

function cpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

for (const notify of ['futex', 'socket'] as const) {
  test(`idle agent and runner burn (almost) no CPU with the ${notify} blocking wait`, async (t) => {
    const sys = new LocalSystem({ transport: 'ring', notify });
    await sys.start();
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const a0 = cpuTicks(sys.agent!.pid!);
      const r0 = cpuTicks(sys.runner!.pid!);
      await new Promise((r) => setTimeout(r, 3000));
      const agent = cpuTicks(sys.agent!.pid!) - a0;
      const runner = cpuTicks(sys.runner!.pid!) - r0;
      t.log(`idle ticks over 3 s (100 per CPU-second): agent ${agent}, runner ${runner}`);
      // 3 ticks = 1% of one CPU over the window; a polling loop would use 15+ (see docs/benchmarks.md).
      t.true(agent <= 3, `agent used ${agent} ticks`);
      t.true(runner <= 3, `runner used ${runner} ticks`);
    } finally {
      await sys.stop();
    }
  });
}

test('futex: an interrupted wait returns at once; the next one reuses the parked sleeper and still wakes on a kick', async (t) => {
  t.true(FutexNotifier.supported());
  const file = path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), `notify-test-${process.pid}`);
  createRegionFile(file, 4096);
  const map = mapFile(file, 4096);
  const words = new Int32Array(map.buffer);
  // Two sides of one doorbell word (index 0): the consumer sleeps on it, the producer bumps it and kicks.
  const consumer = new FutexNotifier({ maxSleepMs: 5000 });
  consumer.bind({ words, rxIndex: 0, txIndex: 1, baseAddress: map.address });
  const producer = new FutexNotifier();
  producer.bind({ words, rxIndex: 1, txIndex: 0, baseAddress: map.address });
  try {
    const t0 = performance.now();
    const first = consumer.wait(() => false, 5000);
    await new Promise((r) => setTimeout(r, 50));
    consumer.interrupt();
    t.false(await first);
    t.true(performance.now() - t0 < 1000, 'interrupted well before its timeout');
    // The FUTEX_WAIT is still parked in the kernel; a new wait waits on it, and a kick wakes it.
    let bell = Atomics.load(words, 0);
    const second = consumer.wait(() => Atomics.load(words, 0) !== bell, 5000);
    await new Promise((r) => setTimeout(r, 50));
    t.is((consumer as unknown as { sleeping: number }).sleeping, 1, 'one worker thread asleep, not two');
    Atomics.add(words, 0, 1);
    producer.kick();
    t.true(await second);
    // Nothing is left parked: a third wait sleeps afresh and is woken the same way.
    bell = Atomics.load(words, 0);
    const third = consumer.wait(() => Atomics.load(words, 0) !== bell, 5000);
    await new Promise((r) => setTimeout(r, 20));
    Atomics.add(words, 0, 1);
    producer.kick();
    t.true(await third);
    t.true(performance.now() - t0 < 2000, 'every wake came from a kick, not a timeout');
    // close() after an interrupt resolves once the parked sleeper has returned.
    const fourth = consumer.wait(() => false, 5000);
    await new Promise((r) => setTimeout(r, 20));
    consumer.interrupt();
    t.false(await fourth);
    const c0 = performance.now();
    await consumer.close();
    t.true(performance.now() - c0 < 1000, 'close woke the parked sleeper');
  } finally {
    producer.close();
    map.unmap();
    fs.rmSync(file, { force: true });
  }
});

test('polling: an interrupted wait returns from its timer sleep at once, and the next wait still sees a change', async (t) => {
  // Sleeps of up to 1 s, so a wait that was not cut short would be plain to see.
  const poller = new PollingNotifier({ spinUs: 0, hotMs: 0, maxSleepMs: 1000 });
  const t0 = performance.now();
  const first = poller.wait(() => false, 10_000);
  await new Promise((r) => setTimeout(r, 300)); // well into the timer back-off
  const cut = performance.now();
  poller.interrupt();
  t.false(await first);
  t.true(performance.now() - cut < 200, `returned ${(performance.now() - cut).toFixed(0)} ms after the interrupt`);
  let flag = false;
  const second = poller.wait(() => flag, 10_000);
  setTimeout(() => (flag = true), 20);
  t.true(await second, 'a later wait is not cut short by the earlier interrupt');
  t.true(performance.now() - t0 < 3000);
  poller.close();
});
