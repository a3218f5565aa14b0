import test from 'ava';
import fs from 'node:fs';
import { example } from './helpers/paths.js';
import { startRunner } from './helpers/runner-process.js';

test('output of many instances is interleaved fairly when the channel is the bottleneck', async (t) => {
  const rt = await startRunner();
  try {
    const flood = await rt.put(fs.readFileSync(example('flood')));
    const hello = await rt.put(fs.readFileSync(example('hello')));
    const got = [0, 0];
    // A slow consumer: every chunk costs the agent side 1 ms, so the ring fills and the runner must choose.
    const slow = (i: number) => (c: Uint8Array): void => {
      got[i]! += c.length;
      const end = performance.now() + 1;
      while (performance.now() < end);
    };
    const a = await rt.link.run({ digest: flood, argv0: 'flood.wasm', args: [], env: {} }, { onStdout: slow(0), onStderr: () => undefined });
    const b = await rt.link.run({ digest: flood, argv0: 'flood.wasm', args: [], env: {} }, { onStdout: slow(1), onStderr: () => undefined });
    // Both floods start on runner workers that may wait for CPU on a loaded machine: measure from when both flow.
    const flowing = Date.now();
    while ((got[0] === 0 || got[1] === 0) && Date.now() - flowing < 30_000) await new Promise((r) => setTimeout(r, 50));
    t.true(got[0]! > 0 && got[1]! > 0, `both floods started: ${got[0]} vs ${got[1]}`);
    const base = [...got] as [number, number];
    // A third module starts behind two floods: its output and exit must still come through promptly.
    let helloOut = '';
    const h = await rt.link.run({ digest: hello, argv0: 'hello.wasm', args: ['late'], env: {} }, { onStdout: (c) => (helloOut += Buffer.from(c).toString()), onStderr: () => undefined });
    const exit = await Promise.race([h.exit, new Promise<'stuck'>((r) => setTimeout(() => r('stuck'), 10_000))]);
    t.not(exit, 'stuck', 'hello finished while two floods kept the channel full');
    t.is(helloOut, 'hello from wasm\nlate\n');
    await new Promise((r) => setTimeout(r, 1000));
    const [x, y] = [got[0]! - base[0], got[1]! - base[1]];
    t.log(`since both flowed: flood A ${x} bytes, flood B ${y} bytes`);
    // Round robin shares the channel while both have output queued. The consumer holds the agent's event loop
    // for most of this window, which must cost neither flood its run (the agent's heartbeat beats from that loop
    // and the ring yields to the loop on a time budget), so both keep flowing.
    t.true(x > 50_000 && y > 50_000, `both floods made progress: ${x} vs ${y}`);
    t.true(Math.min(x, y) / Math.max(x, y) > 0.2, `neither flood was starved: ${x} vs ${y}`);
    await a.kill(0);
    await b.kill(0);
    const [ea, eb] = await Promise.all([a.exit, b.exit]);
    t.is(ea.reason, 'killed');
    t.is(eb.reason, 'killed');
  } finally {
    await rt.stop();
  }
});

test('a flood with a slow reader does not grow the runner without bound (output is held in the engine)', async (t) => {
  const rt = await startRunner();
  try {
    const flood = await rt.put(fs.readFileSync(example('flood')));
    const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${rt.child.pid}/status`, 'utf8'))![1]);
    let bytes = 0;
    const run = await rt.link.run({ digest: flood, argv0: 'flood.wasm', args: [], env: {} }, {
      onStdout: (c) => {
        bytes += c.length;
        const end = performance.now() + 2;
        while (performance.now() < end);
      },
      onStderr: () => undefined,
    });
    const started = Date.now();
    while (bytes === 0 && Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 50));
    t.true(bytes > 0, 'the flood is flowing');
    await new Promise((r) => setTimeout(r, 1000));
    const before = rss();
    await new Promise((r) => setTimeout(r, 2000));
    const after = rss();
    t.log(`runner RSS ${before} kB -> ${after} kB while ${bytes} bytes were read`);
    t.true(after - before < 32 * 1024, 'runner memory stays flat under a flood');
    await run.kill(0);
    t.is((await run.exit).reason, 'killed');
  } finally {
    await rt.stop();
  }
});
