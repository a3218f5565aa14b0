import fs from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { randomInt } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { AgentError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { SocketNotifier, createNotifier, type Notifier, type NotifyMode } from '../notify/index.js';
import { Region, SIDE_EPOCH, SIDE_HEARTBEAT, SIDE_STATE, Side, regionSizeFor } from '../region/index.js';
import { createRegionFile, mapFile, type Mapping } from '../shm/index.js';
import { RingTransport, StreamTransport } from '../transport/index.js';
import { CharDeviceStream } from './serial.js';

export const SIDE_STATE_ATTACHED = 1;
/** Each side bumps its heartbeat word this often... */
export const HEARTBEAT_MS = 100;
/** ...and declares the peer gone when the word has not moved for this long (well inside the 1 s promise). */
export const PEER_STALE_MS = 600;

/** A mapped region plus this side's liveness words. */
export interface RingLink {
  readonly mapping: Mapping;
  readonly region: Region;
  readonly transport: RingTransport;
  readonly side: Side;
  readonly epoch: number;
  /** Stops the heartbeat, marks this side absent and unmaps. Does not remove the file. */
  close(): Promise<void>;
}

function newEpoch(): number {
  return randomInt(1, 0x7fffffff);
}

/** Stops a heartbeat; resolves when it no longer touches the region. */
type StopHeartbeat = () => Promise<void>;

function startHeartbeat(region: Region, side: Side, intervalMs: number, thread?: { path: string; size: number; logger?: Logger }): StopHeartbeat {
  const word = region.sideWord(side, SIDE_HEARTBEAT);
  let loopTimer: NodeJS.Timeout | undefined;
  const beatFromLoop = (): void => {
    loopTimer ??= setInterval(() => Atomics.add(region.words, word, 1), intervalMs);
    loopTimer.unref();
  };
  const stopLoop = async (): Promise<void> => clearInterval(loopTimer);
  // A thread that cannot start (its file missing, no memory for an isolate) must not take the process down, nor
  // leave this side without a heartbeat: beat from the loop instead, as every side did before threads.
  const fallBack = (err: unknown): void => {
    thread?.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'heartbeat thread failed; beating from the event loop');
    beatFromLoop();
  };
  if (!thread) {
    beatFromLoop();
    return stopLoop;
  }
  // The thread's file sits beside this module: dist/ after tsc, the bundle's folder after build/bundle.mjs.
  let w: Worker;
  try {
    w = new Worker(new URL('./heartbeat-thread.js', import.meta.url), {
      workerData: { path: thread.path, size: thread.size, wordIndex: word, intervalMs },
      resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 2 },
    });
  } catch (err) {
    fallBack(err);
    return stopLoop;
  }
  w.unref();
  let exited = false;
  const exit = new Promise<void>((resolve) => w.once('exit', () => ((exited = true), resolve())));
  w.once('error', fallBack);
  return async () => {
    clearInterval(loopTimer);
    if (exited) return;
    w.postMessage('stop');
    const killer = setTimeout(() => void w.terminate(), 1000);
    await exit;
    clearTimeout(killer);
  };
}

/** The doorbell socket of a region that uses `socket` notification: beside the region, by name. */
export function bellPath(regionPath: string): string {
  return `${regionPath}.bell`;
}

function linkFor(
  mapping: Mapping,
  region: Region,
  side: Side,
  notifier: Notifier,
  heartbeatMs: number,
  cleanup?: () => void,
  heartbeatThread = false,
  logger?: Logger,
): RingLink {
  const epoch = newEpoch();
  Atomics.store(region.words, region.sideWord(side, SIDE_EPOCH), epoch);
  Atomics.store(region.words, region.sideWord(side, SIDE_STATE), SIDE_STATE_ATTACHED);
  // Only the agent meets a region re-initialised under it (the runner creates the region; agents attach).
  const peer = side === Side.Agent ? Side.Runner : Side.Agent;
  const peerEpoch = Atomics.load(region.words, region.sideWord(peer, SIDE_EPOCH));
  const peerReplaced = side === Side.Agent ? () => Atomics.load(region.words, region.sideWord(peer, SIDE_EPOCH)) !== peerEpoch : undefined;
  const transport = new RingTransport({ region, side, notifier, baseAddress: mapping.address, peerReplaced });
  const stopHeartbeat = startHeartbeat(region, side, heartbeatMs, heartbeatThread ? { path: mapping.path, size: mapping.size, ...(logger ? { logger } : {}) } : undefined);
  let closed = false;
  return {
    mapping,
    region,
    transport,
    side,
    epoch,
    async close() {
      if (closed) return;
      closed = true;
      await stopHeartbeat();
      await transport.close();
      cleanup?.();
      Atomics.store(region.words, region.sideWord(side, SIDE_STATE), 0);
      mapping.unmap();
    },
  };
}

export interface RingOptions {
  readonly path: string;
  /** How this side sleeps and wakes its peer (default polling, which also works across a VM boundary). */
  readonly notify?: NotifyMode;
  readonly heartbeatMs?: number;
  /**
   * Beat from a worker thread, immune to a busy event loop (the runner's pools and compiles). Costs a thread and
   * about 8 MiB (a second isolate); falls back to the loop if the thread fails. The agent, whose loop stays
   * short, beats from its loop.
   */
  readonly heartbeatThread?: boolean;
  /**
   * With `notify: 'socket'`, the agent's doorbell: a Unix socket (default `bellPath(path)`, where the runner
   * listens) or a character device, such as a virtio-serial port in a guest whose host end QEMU connects to the
   * runner's `REGION.bell`. A character device found at the default path is used the same way, so a guest can
   * link REGION to the ivshmem BAR and REGION.bell to the port. The runner ignores this option.
   */
  readonly bellPath?: string;
}

/**
 * The runner creates the region (or re-initialises it in place, keeping the inode, so a guest that maps the
 * same file through ivshmem keeps seeing it) and waits for an agent.
 */
export function createRing(options: RingOptions & { ringSize: number; fileSize?: number; create?: boolean }): RingLink {
  const size = regionSizeFor(options.ringSize);
  const fileSize = Math.max(size, options.fileSize ?? 0);
  if (options.create !== false) {
    let existing = -1;
    try {
      existing = fs.statSync(options.path).size;
    } catch {
      existing = -1;
    }
    if (existing !== fileSize) createRegionFile(options.path, fileSize);
  }
  const mapping = mapFile(options.path, size);
  const region = Region.initialise(mapping.buffer, options.ringSize);
  const notify = options.notify ?? 'polling';
  const thread = options.heartbeatThread ?? false;
  if (notify !== 'socket') return linkFor(mapping, region, Side.Runner, createNotifier(notify), options.heartbeatMs ?? HEARTBEAT_MS, undefined, thread);
  // The runner listens for the agent's doorbell connection; a reconnecting agent replaces the old one.
  const notifier = new SocketNotifier();
  const bell = bellPath(options.path);
  fs.rmSync(bell, { force: true });
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    notifier.attach(sock);
  });
  server.listen(bell);
  return linkFor(
    mapping,
    region,
    Side.Runner,
    notifier,
    options.heartbeatMs ?? HEARTBEAT_MS,
    () => {
      server.close();
      fs.rmSync(bell, { force: true });
    },
    thread,
  );
}

/** Opens the doorbell: a character device (a virtio-serial port) as a stream, else a Unix socket. */
async function openBell(path: string, deadline: number): Promise<Duplex> {
  let isCharDevice = false;
  try {
    isCharDevice = fs.statSync(path).isCharacterDevice();
  } catch {
    isCharDevice = false;
  }
  if (!isCharDevice) return connectBell(path, deadline);
  const fd = await new Promise<number>((resolve, reject) => {
    fs.open(path, fs.constants.O_RDWR | fs.constants.O_NOCTTY, (err, fd) => (err ? reject(err) : resolve(fd)));
  });
  return new CharDeviceStream(fd);
}

async function connectBell(path: string, deadline: number): Promise<net.Socket> {
  for (;;) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const sock = net.connect(path);
        sock.once('connect', () => {
          sock.removeAllListeners('error');
          sock.setNoDelay(true);
          resolve(sock);
        });
        sock.once('error', reject);
      });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * The agent waits (bounded) for the runner's region to appear with a valid header, then attaches. Frames the
 * runner published for a previous agent are discarded: they answer requests nobody is waiting for.
 */
export async function attachRing(options: RingOptions & { timeoutMs?: number; logger?: Logger }): Promise<RingLink> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let lastError: unknown;
  for (;;) {
    try {
      const size = fs.statSync(options.path).size;
      const mapping = mapFile(options.path, size);
      try {
        const region = Region.attach(mapping.buffer);
        const notify = options.notify ?? 'polling';
        let notifier: Notifier = createNotifier(notify);
        let cleanup: (() => void) | undefined;
        if (notify === 'socket') {
          const sock = await openBell(options.bellPath ?? bellPath(options.path), deadline);
          const n = new SocketNotifier();
          n.attach(sock);
          notifier = n;
          cleanup = () => sock.destroy();
        }
        const link = linkFor(mapping, region, Side.Agent, notifier, options.heartbeatMs ?? HEARTBEAT_MS, cleanup, options.heartbeatThread ?? false, options.logger);
        link.transport.rx.withdrawReset();
        link.transport.rx.skipToTail();
        return link;
      } catch (err) {
        mapping.unmap();
        throw err;
      }
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? lastError.message : String(lastError);
      throw new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', `no runner region at ${options.path}: ${why}`, { path: options.path });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Reads the peer's liveness words: the epoch changes when it restarts, the heartbeat moves while it lives. */
export function peerState(region: Region, peer: Side): { epoch: number; heartbeat: number; attached: boolean } {
  return {
    epoch: Atomics.load(region.words, region.sideWord(peer, SIDE_EPOCH)),
    heartbeat: Atomics.load(region.words, region.sideWord(peer, SIDE_HEARTBEAT)),
    attached: Atomics.load(region.words, region.sideWord(peer, SIDE_STATE)) === SIDE_STATE_ATTACHED,
  };
}

/** Stream transport: the runner listens on a Unix socket, the agent connects. */
export function connectStream(path: string, timeoutMs = 10_000): Promise<StreamTransport> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      const sock = net.connect(path);
      sock.once('connect', () => {
        sock.removeAllListeners('error');
        resolve(new StreamTransport(sock));
      });
      sock.once('error', (err) => {
        sock.destroy();
        if (Date.now() > deadline) {
          reject(new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', `cannot connect to runner stream ${path}: ${err.message}`, { path }));
        } else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}
