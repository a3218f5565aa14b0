/**
 * Worker-thread side of the V8 engine: runs one instance per `run` message, synchronously, and reports how it
 * ended. Running in a worker is what lets the runner end a spin loop (`worker.terminate()` interrupts wasm) while
 * its own event loop stays free. Everything a run creates is local to `runOnce`, which is what makes it safe to
 * hand the worker another run after this one ended by itself.
 */
import { parentPort, workerData } from 'node:worker_threads';

import { type WasiEnding, WasiExit, WasiHost, WasiOutputLimit, type WasmInstance, type WasmMemory, wasmApi } from '../wasi/index.js';
import { EXIT_CODE_ABORT, EXIT_CODE_LOAD } from './types.js';
import { RingWriter } from './output-ring.js';
import type { Outcome, RunMessage, WorkerData, WorkerMessage } from './worker-protocol.js';

const PAGE = 65536;

if (parentPort === null) throw new Error('v8-worker must run as a worker thread');
const port = parentPort;
const data = workerData as WorkerData;
const post = (message: WorkerMessage): void => port.postMessage(message);
const ring = new RingWriter(data.ring, () => post({ type: 'doorbell' }));
const Wasm = wasmApi();

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function endingOutcome(ending: WasiEnding): Outcome {
  if (ending instanceof WasiExit) {
    // The WASI code is 32 bits; like `wasmedge run`, what a process can report is its low 8 bits.
    const exitCode = ending.code & 0xff;
    return exitCode === ending.code
      ? { reason: 'exit', exitCode }
      : { reason: 'exit', exitCode, message: `proc_exit(${ending.code})` };
  }
  return { reason: 'output', exitCode: EXIT_CODE_ABORT, message: `output exceeded the limit of ${ending.limit} bytes` };
}

function isStackOverflow(err: unknown): boolean {
  return err instanceof RangeError && /call stack size/i.test(err.message);
}

/** Everything thrown out of `_start` that is not one of our sentinels ends the instance as a trap. */
function trapOutcome(err: unknown): Outcome {
  if (err instanceof Wasm.RuntimeError || isStackOverflow(err)) {
    return { reason: 'trap', exitCode: EXIT_CODE_ABORT, message: describe(err) };
  }
  if (err instanceof Error) return { reason: 'trap', exitCode: EXIT_CODE_ABORT, message: `host error: ${err.message}` };
  return { reason: 'trap', exitCode: EXIT_CODE_ABORT, message: 'uncaught WebAssembly exception' };
}

function load(message: string): Outcome {
  return { reason: 'load', exitCode: EXIT_CODE_LOAD, message };
}

function runOnce(msg: RunMessage): { outcome: Outcome; peakPages: number } {
  let memory: WasmMemory | undefined;
  const pages = (): number => (memory === undefined ? 0 : Math.floor(memory.buffer.byteLength / PAGE));
  let host: WasiHost;
  try {
    host = new WasiHost({
      args: msg.args,
      env: msg.env,
      preopens: msg.preopens,
      stdin: msg.stdin,
      outputLimit: msg.outputBytes,
      output: (fd, chunk) => ring.write(fd, chunk),
      onCall: () => ring.setPages(pages()),
      onEnd: (ending) => post({ type: 'ending', outcome: endingOutcome(ending) }),
    });
  } catch (err) {
    return { outcome: load(`cannot set up WASI: ${describe(err)}`), peakPages: 0 };
  }
  try {
    let instance: WasmInstance;
    try {
      instance = new Wasm.Instance(msg.module, { wasi_snapshot_preview1: host.wasiImport });
    } catch (err) {
      // A start function may legitimately call proc_exit; anything else failing here is a load failure.
      const ending = host.ended;
      if (ending !== undefined) return { outcome: endingOutcome(ending), peakPages: pages() };
      return { outcome: load(`instantiation failed: ${describe(err)}`), peakPages: 0 };
    }
    const exported = instance.exports.memory;
    if (exported instanceof Wasm.Memory) memory = exported;
    host.initialize(instance);
    ring.setPages(pages());
    const start = instance.exports._start;
    if (typeof start !== 'function') return { outcome: load('the module exports no _start function'), peakPages: pages() };
    let outcome: Outcome = { reason: 'exit', exitCode: 0 };
    try {
      (start as () => unknown)();
    } catch (err) {
      outcome = err instanceof WasiExit || err instanceof WasiOutputLimit ? endingOutcome(err) : trapOutcome(err);
    }
    // If the module caught our sentinel (exception handling) and went on, the ending still decides.
    const ending = host.ended;
    if (ending !== undefined) outcome = endingOutcome(ending);
    return { outcome, peakPages: pages() };
  } finally {
    host.close();
  }
}

port.on('message', (msg: RunMessage) => {
  post({ type: 'started' });
  let result: { outcome: Outcome; peakPages: number };
  try {
    result = runOnce(msg);
  } catch (err) {
    result = { outcome: trapOutcome(err), peakPages: 0 };
  }
  ring.setPages(result.peakPages);
  post({ type: 'done', outcome: result.outcome, peakPages: result.peakPages });
});
