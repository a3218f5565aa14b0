/**
 * Isolation: a stack overflow, an output flood, a spin loop and a memory bomb running at the same time as a
 * healthy command (run over and over) and a healthy reactor (called over and over) never disturb them.
 */
import test from 'ava';

import { type RunEvents, V8Engine } from '../runner-proto/src/engine/index.js';
import { createLogger } from '../runner-proto/src/log/index.js';
import { exampleBytes, requestOf, runCollect } from './helpers/engine-wasm.js';

const quiet: RunEvents = { onStdout: () => {}, onStderr: () => {} };

test('overflow, flood, spin and grow beside healthy hello runs and calc calls', async (t) => {
  const engine = new V8Engine({ poolSize: 4, logger: createLogger('isolation-test', { level: 'silent' }) });
  t.teardown(() => engine.close());
  const [hello, overflow, flood, spin, grow, calc] = await Promise.all(
    ['hello', 'overflow', 'flood', 'spin', 'grow', 'calc'].map((name) => engine.compile(`sha256:${name}`, exampleBytes(name))),
  );
  const adder = await engine.instantiate(calc!, requestOf('calc.wasm'), quiet);

  let stop = false;
  const troublemakers = (async () => {
    const results = [];
    // Each kind is started again as soon as it ends, for as long as the healthy side is measured.
    while (!stop) {
      results.push(
        ...(await Promise.all([
          runCollect(engine, overflow!, requestOf('overflow.wasm')),
          runCollect(engine, flood!, requestOf('flood.wasm', { limits: { outputBytes: 2 << 20 } })),
          runCollect(engine, flood!, requestOf('flood.wasm', { limits: { timeMs: 300 } })),
          runCollect(engine, spin!, requestOf('spin.wasm', { limits: { timeMs: 400 } })),
          runCollect(engine, grow!, requestOf('grow.wasm', { limits: { memoryPages: 16384 } })),
        ])),
      );
    }
    return results;
  })();

  const healthy: string[] = [];
  let calls = 0;
  const started = performance.now();
  for (let i = 0; i < 40; i++) {
    const run = await runCollect(engine, hello!, requestOf('hello.wasm', { args: [`n${i}`] }));
    if (run.stdout !== `hello from wasm\nn${i}\n` || run.result.exitCode !== 0) healthy.push(`run ${i}: ${run.result.reason} ${JSON.stringify(run.stdout)}`);
    const sums = await Promise.all(Array.from({ length: 50 }, (_, k) => adder.call('add', [{ type: 'i32', value: i }, { type: 'i32', value: k }])));
    for (const [k, r] of sums.entries()) {
      calls++;
      if (!r.ok || r.results[0]?.value !== i + k) healthy.push(`call ${i}/${k}: ${JSON.stringify(r)}`);
    }
  }
  const healthyMs = performance.now() - started;
  stop = true;
  const bad = await troublemakers;

  t.deepEqual(healthy, [], 'every healthy run and call answered correctly');
  t.is(calls, 2000);
  t.true(adder.alive);
  t.true(healthyMs < 30_000, `healthy work took ${healthyMs.toFixed(0)} ms`);
  const reasons = new Set(bad.map((r) => `${r.result.reason}/${r.result.exitCode}`));
  t.true(reasons.has('trap/134'), 'stack overflow is a trap');
  t.true(reasons.has('output/134'), 'the flood hit its output limit');
  t.true(reasons.has('timeout/134'), 'spin and flood hit their time limits');
  t.true(reasons.has('exit/0'), 'grow ended by itself under its page limit');
  t.true(bad.every((r) => r.result.exitCode === 134 || r.result.reason === 'exit'));
  await adder.close();
});
