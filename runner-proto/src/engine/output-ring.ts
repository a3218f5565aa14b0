import { allocBytes } from '../frame/bytes.js';

/**
 * stdout/stderr travel from the worker to the runner through a ring in a SharedArrayBuffer, not as one
 * postMessage per write: messages still queued when `worker.terminate()` runs are dropped (measured on Node 20),
 * whereas the ring outlives the worker and is drained after it stops, so output written just before a timeout or
 * kill is still delivered, in order. A full ring blocks the writer, which bounds the runner's memory however
 * fast a module floods. A "doorbell" tells the runner there is something to drain: the writer sets DOORBELL
 * and calls Atomics.notify on it, and the runner waits on it with Atomics.waitAsync (`RingReader.watch`), which
 * wakes it in microseconds where a postMessage takes a few hundred.
 */

const WRITE = 0;
const READ = 1;
const DOORBELL = 2;
const PAGES = 3;
const HEADER_BYTES = 64;
const RECORD_HEADER = 8;
const WAIT_SLICE_MS = 100;

export const DEFAULT_RING_BYTES = 256 * 1024;

export function createOutputRing(capacity = DEFAULT_RING_BYTES): SharedArrayBuffer {
  if (capacity < 1024 || (capacity & (capacity - 1)) !== 0) throw new RangeError('ring capacity must be a power of two ≥ 1024');
  return new SharedArrayBuffer(HEADER_BYTES + capacity);
}

class RingView {
  protected readonly header: Int32Array;
  protected readonly data: Uint8Array;
  protected readonly mask: number;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.data = new Uint8Array(buffer, HEADER_BYTES);
    this.mask = this.data.length - 1;
  }

  /** An int32 difference, like the counters themselves: `>>> 0` would deoptimise past 2^31 (see ring/spsc.ts). */
  protected used(): number {
    return (Atomics.load(this.header, WRITE) - Atomics.load(this.header, READ)) | 0;
  }
}

/** Atomics.waitAsync is in ES2024's lib, which this project does not compile against (V8 has it). */
type WaitAsyncResult = { readonly async: false; readonly value: 'not-equal' | 'timed-out' } | { readonly async: true; readonly value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync(array: Int32Array, index: number, value: number): WaitAsyncResult }).waitAsync;

export class RingWriter extends RingView {
  private readonly scratch = new DataView(new ArrayBuffer(RECORD_HEADER));
  private readonly ring: () => void;

  /** `ring` defaults to waking a runner parked in `RingReader.watch`. */
  constructor(buffer: SharedArrayBuffer, ring?: () => void) {
    super(buffer);
    this.ring = ring ?? (() => Atomics.notify(this.header, DOORBELL));
  }

  /** Copies `bytes` in (splitting large writes); blocks while the runner has not made room. */
  write(fd: number, bytes: Uint8Array): void {
    const piece = this.data.length / 2 - RECORD_HEADER;
    for (let at = 0; at < bytes.length; at += piece) {
      this.put(fd, bytes.subarray(at, Math.min(bytes.length, at + piece)));
    }
  }

  /** Latest known linear-memory size, readable by the runner even after the worker is gone. */
  setPages(pages: number): void {
    Atomics.store(this.header, PAGES, pages);
  }

  private put(fd: number, bytes: Uint8Array): void {
    const need = RECORD_HEADER + bytes.length;
    while (this.data.length - this.used() < need) {
      this.doorbell();
      Atomics.wait(this.header, READ, Atomics.load(this.header, READ), WAIT_SLICE_MS);
    }
    const start = Atomics.load(this.header, WRITE);
    this.scratch.setUint32(0, fd, true);
    this.scratch.setUint32(4, bytes.length, true);
    this.copyIn(start, new Uint8Array(this.scratch.buffer));
    this.copyIn(start + RECORD_HEADER, bytes);
    Atomics.store(this.header, WRITE, (start + need) | 0);
    this.doorbell();
  }

  private copyIn(counter: number, bytes: Uint8Array): void {
    const at = counter & this.mask;
    const first = Math.min(bytes.length, this.data.length - at);
    this.data.set(bytes.subarray(0, first), at);
    if (first < bytes.length) this.data.set(bytes.subarray(first), 0);
  }

  private doorbell(): void {
    if (Atomics.compareExchange(this.header, DOORBELL, 0, 1) === 0) this.ring();
  }
}

export class RingReader extends RingView {
  private watching: (() => void) | undefined;
  private armed = false;

  /**
   * Calls `onData` on the event loop each time the writer rings, until `unwatch()`. Does not keep the process
   * alive by itself (Atomics.waitAsync holds no handle).
   */
  watch(onData: () => void): void {
    this.watching = onData;
    this.arm();
  }

  unwatch(): void {
    if (this.watching === undefined) return;
    this.watching = undefined;
    // Releases our parked waiter now rather than at the next write.
    Atomics.notify(this.header, DOORBELL);
  }

  private arm(): void {
    if (this.armed || this.watching === undefined) return;
    this.armed = true;
    const fire = (): void => {
      this.armed = false;
      const onData = this.watching;
      if (onData === undefined) return;
      onData();
      // onData normally drains, which clears DOORBELL; if it is set again (a write landed since, or nobody
      // drained), waiting on 0 returns at once, so the next look is deferred to keep the event loop turning.
      if (Atomics.load(this.header, DOORBELL) === 0) this.arm();
      else setImmediate(() => this.arm());
    };
    const waited = waitAsync(this.header, DOORBELL, 0);
    if (waited.async) void waited.value.then(fire);
    else queueMicrotask(fire);
  }

  /**
   * Empties the ring, handing each record to `deliver` as a fresh copy, then wakes a blocked writer. A deliver
   * that returns false stops the drain after that record (the consumer is full: back-pressure to the writer).
   * Returns false if it stopped early.
   */
  drain(deliver: (fd: number, chunk: Uint8Array) => unknown): boolean {
    // Cleared first: a write landing after this point rings again, so nothing is left unannounced.
    Atomics.store(this.header, DOORBELL, 0);
    let read = Atomics.load(this.header, READ);
    const write = Atomics.load(this.header, WRITE);
    while (read !== write) {
      const head = this.copyOut(read, RECORD_HEADER);
      const view = new DataView(head.buffer);
      const fd = view.getUint32(0, true);
      const len = view.getUint32(4, true);
      const chunk = this.copyOut(read + RECORD_HEADER, len);
      read = (read + RECORD_HEADER + len) | 0;
      Atomics.store(this.header, READ, read);
      if (deliver(fd, chunk) === false) {
        Atomics.notify(this.header, READ);
        return read === Atomics.load(this.header, WRITE);
      }
    }
    Atomics.notify(this.header, READ);
    return true;
  }

  pages(): number {
    return Atomics.load(this.header, PAGES);
  }

  /** Only while no worker writes (between runs). */
  reset(): void {
    Atomics.store(this.header, WRITE, 0);
    Atomics.store(this.header, READ, 0);
    Atomics.store(this.header, DOORBELL, 0);
    Atomics.store(this.header, PAGES, 0);
  }

  private copyOut(counter: number, len: number): Uint8Array {
    const out = allocBytes(len);
    const at = counter & this.mask;
    const first = Math.min(len, this.data.length - at);
    out.set(this.data.subarray(at, at + first));
    if (first < len) out.set(this.data.subarray(0, len - first), first);
    return out;
  }
}
