/**
 * The runner's handle on one engine worker: the thread, its output ring, its call queue and the control port.
 * Whoever holds the worker (a command run or a reactor instance) is its `owner` and receives its messages;
 * pool bookkeeping messages (`ready`, `load-failed`) go to the engine.
 */
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';

import { CTL, createCallQueue, header, QueueView, REQ_CONTROL } from './call-queue.js';
import { createOutputRing, RingReader } from './output-ring.js';
import type { ControlMessage, WorkerData, WorkerMessage } from './worker-protocol.js';

export interface WorkerOwner {
  onMessage(msg: WorkerMessage): void;
  onError(err: Error): void;
  onExit(code: number): void;
}

export interface HandleOptions {
  readonly workerUrl: URL;
  readonly ringBytes: number;
  readonly stackSizeMb: number;
  readonly spin: number;
  readonly queueWords: number;
}

export interface HandleEvents {
  /** `ready` / `load-failed`: warm-pool bookkeeping. */
  onPoolMessage(handle: WorkerHandle, msg: Extract<WorkerMessage, { type: 'ready' | 'load-failed' }>): void;
  /** A message or error with no owner to take it (an idle worker failing). */
  onOrphan(handle: WorkerHandle, what: string, err?: Error): void;
  onExit(handle: WorkerHandle): void;
}

let nextId = 1;

export class WorkerHandle {
  readonly id = nextId++;
  readonly worker: Worker;
  readonly ring: RingReader;
  readonly queue: QueueView;
  private readonly port: MessagePort;
  private current: WorkerOwner | undefined;
  dead = false;
  /** Variant keys whose module this worker holds, with how many instances of each it has ready. */
  readonly loaded = new Map<string, number>();
  /** Set while the worker belongs to a variant's warm pool. */
  poolKey: string | undefined;
  /** Words written to the request ring (the runner's copy of REQ_WRITE). */
  reqWrite = 0;
  /** Words consumed from the result ring (the runner's copy of RES_READ). */
  resRead = 0;
  private refs = 0;

  constructor(options: HandleOptions, events: HandleEvents) {
    const channel = new MessageChannel();
    const data: WorkerData = {
      ring: createOutputRing(options.ringBytes),
      queue: createCallQueue(options.queueWords),
      port: channel.port2,
      spin: options.spin,
    };
    this.port = channel.port1;
    this.ring = new RingReader(data.ring);
    this.queue = new QueueView(data.queue);
    this.worker = new Worker(options.workerUrl, {
      workerData: data,
      transferList: [channel.port2],
      resourceLimits: { stackSizeMb: options.stackSizeMb },
      stdin: false,
    });
    // Listeners live for the worker's lifetime and dispatch to whichever owner holds it; an 'error' without a
    // listener would crash the runner.
    this.worker.on('message', (msg: WorkerMessage) => {
      if (msg.type === 'ready' || msg.type === 'load-failed') events.onPoolMessage(this, msg);
      else if (this.current !== undefined) this.current.onMessage(msg);
    });
    this.worker.on('error', (err) => {
      if (this.current !== undefined) this.current.onError(err);
      else events.onOrphan(this, 'idle engine worker failed', err);
    });
    this.worker.on('exit', (code) => {
      this.dead = true;
      events.onExit(this);
      this.current?.onExit(code);
    });
    this.worker.unref();
    this.port.unref();
  }

  get owner(): WorkerOwner | undefined {
    return this.current;
  }

  /** Whoever holds the worker gets its messages and output doorbells. */
  set owner(owner: WorkerOwner | undefined) {
    this.current = owner;
    if (owner === undefined) this.ring.unwatch();
    else this.ring.watch(this.doorbell);
  }

  private readonly doorbell = (): void => {
    if (this.current !== undefined) this.current.onMessage({ type: 'doorbell' });
    else this.ring.drain(() => {});
  };

  /** Posts a control payload and the queue record that makes the worker pick it up. */
  send(msg: ControlMessage): void {
    this.port.postMessage(msg);
    const q = this.queue;
    // A control record is one word; the runner never has more than a few outstanding, so there is room.
    q.req.setPair(this.reqWrite, header(REQ_CONTROL, 0), 0);
    this.reqWrite = (this.reqWrite + 1) | 0;
    this.commit();
  }

  /** Free words in the request ring. */
  space(): number {
    return this.queue.req.size - ((this.reqWrite - Atomics.load(this.queue.ctl, CTL.REQ_READ)) | 0);
  }

  /** Publishes written request words and wakes the worker if it sleeps. */
  commit(): void {
    const ctl = this.queue.ctl;
    Atomics.store(ctl, CTL.REQ_WRITE, this.reqWrite);
    // One notify per sleep: the first commit that sees the worker asleep clears the flag and wakes it; commits
    // after it (the worker is still being scheduled) need none. A worker not yet in Atomics.wait sees REQ_WRITE
    // changed and does not sleep. Re-notifying per commit cost a futex syscall per call under load.
    if (Atomics.compareExchange(ctl, CTL.SLEEPING, 1, 0) === 1) Atomics.notify(ctl, CTL.REQ_WRITE, 1);
  }

  /** Keeps the runner's event loop alive while someone waits on this worker (counted). */
  ref(): void {
    if (this.refs++ === 0) this.worker.ref();
  }

  unref(): void {
    if (this.refs > 0 && --this.refs === 0) this.worker.unref();
  }

  /** Drops every ref at once (the worker changes owner or goes idle). */
  resetRefs(): void {
    if (this.refs > 0) this.worker.unref();
    this.refs = 0;
  }

  async terminate(): Promise<void> {
    if (this.dead) return;
    this.dead = true;
    this.ring.unwatch();
    // Releases anyone parked in Atomics.waitAsync on this queue.
    Atomics.add(this.queue.ctl, CTL.SIGNAL, 1);
    Atomics.notify(this.queue.ctl, CTL.SIGNAL);
    this.port.close();
    await this.worker.terminate();
  }
}
