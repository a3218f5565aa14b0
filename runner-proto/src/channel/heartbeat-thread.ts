/**
 * Runs in a worker thread: maps the region file on its own and bumps this side's heartbeat word on a timer,
 * so a main event loop busy for a while (spawning a pool of instances, compiling a large module) is not mistaken
 * for a dead process. Liveness means "the process exists"; responsiveness is the job of request timeouts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { mapFile } from '../shm/index.js';

interface HeartbeatData {
  readonly path: string;
  readonly size: number;
  readonly wordIndex: number;
  readonly intervalMs: number;
}

const data = workerData as HeartbeatData;
const mapping = mapFile(data.path, data.size);
const words = new Int32Array(mapping.buffer);
const timer = setInterval(() => Atomics.add(words, data.wordIndex, 1), data.intervalMs);

parentPort?.on('message', (m: unknown) => {
  if (m === 'stop') {
    clearInterval(timer);
    mapping.unmap();
    parentPort?.close();
  }
});
