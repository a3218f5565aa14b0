import { AgentError } from '../errors/index.js';
import { loadLibc, type Libc } from '../shm/index.js';
import { spin } from './polling.js';
import type { DoorbellWords, Notifier } from './types.js';

const SYS_FUTEX = 202; // x86_64
const FUTEX_WAIT = 0; // not FUTEX_PRIVATE: the word is shared between processes
const FUTEX_WAKE = 1;
const WAKE_ALL = 0x7fffffff;

type SyscallFn = Libc['lib'] extends { func(s: string): infer F } ? F : never;

let futexCall: SyscallFn | undefined;
function syscallFn(): SyscallFn {
  if (!futexCall) futexCall = loadLibc().lib.func('long syscall(long nr, uint64_t addr, long op, long val, void *ts, long a2, long a3)');
  return futexCall;
}

export interface FutexOptions {
  /** Synchronous spin before sleeping (default 0: RingTransport's hot phase polls without blocking the loop). */
  readonly spinUs?: number;
  /** Longest single futex sleep; the ring re-checks its state after each. */
  readonly maxSleepMs?: number;
}

/**
 * A blocking wait that costs no CPU when idle: FUTEX_WAIT on the receive ring's doorbell word, run on a libuv
 * worker thread (koffi's async call) so the event loop stays free. Works only where both sides share a kernel
 * (two host processes on a /dev/shm file); across a VM boundary use polling or a device doorbell.
 * V8's Atomics.wait cannot do this: it refuses non-shared buffers and never crosses processes.
 */
export class FutexNotifier implements Notifier {
  readonly name = 'futex';
  readonly wantsKicks = true;
  private readonly spinUs: number;
  private readonly maxSleepMs: number;
  private bell: DoorbellWords | undefined;
  private rxAddr = 0n;
  private txAddr = 0n;
  private closed = false;
  private sleeping = 0;
  /**
   * The FUTEX_WAIT in flight on a worker thread, if any. An interrupted wait() leaves it parked in the kernel
   * (it cannot be called back without a wake); the next wait() waits on it instead of parking another, so at
   * most one libuv worker thread is ever asleep here.
   */
  private parked: Promise<void> | undefined;
  private interruptWait: (() => void) | undefined;

  constructor(options: FutexOptions = {}) {
    this.spinUs = options.spinUs ?? 0;
    this.maxSleepMs = options.maxSleepMs ?? 1000;
  }

  static supported(): boolean {
    return process.platform === 'linux' && process.arch === 'x64';
  }

  bind(bell: DoorbellWords): void {
    if (bell.baseAddress === undefined) {
      throw new AgentError('AGT_ERR_CHANNEL_REGION', 'futex notification needs an mmapped region (no address known)');
    }
    if (!FutexNotifier.supported()) throw new AgentError('AGT_ERR_CHANNEL_REGION', `futex notification is not supported on ${process.platform}/${process.arch}`);
    this.bell = bell;
    this.rxAddr = bell.baseAddress + BigInt(bell.rxIndex * 4);
    this.txAddr = bell.baseAddress + BigInt(bell.txIndex * 4);
    syscallFn();
  }

  async wait(changed: () => boolean, timeoutMs: number): Promise<boolean> {
    if (spin(changed, this.spinUs)) return true;
    const bell = this.bell!;
    const deadline = performance.now() + timeoutMs;
    let interrupted = false;
    const interruption = new Promise<void>((resolve) => {
      this.interruptWait = () => {
        interrupted = true;
        resolve();
      };
    });
    try {
      while (!this.closed) {
        const expected = Atomics.load(bell.words, bell.rxIndex);
        if (changed()) return true;
        const left = deadline - performance.now();
        if (left <= 0) return false;
        // A sleeper parked by an interrupted wait is still in the kernel, on the same word: any kick wakes it.
        this.parked ??= this.futexWait(expected, Math.min(left, this.maxSleepMs));
        await Promise.race([this.parked, interruption]);
        if (this.closed || interrupted) return false;
        if (changed()) return true;
      }
      return false;
    } finally {
      this.interruptWait = undefined;
    }
  }

  interrupt(): void {
    this.interruptWait?.();
  }

  private futexWait(expected: number, ms: number): Promise<void> {
    const ts = Buffer.alloc(16);
    ts.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
    ts.writeBigInt64LE(BigInt(Math.floor((ms % 1000) * 1e6)), 8);
    this.sleeping++;
    return new Promise<void>((resolve) => {
      syscallFn().async(SYS_FUTEX, this.rxAddr, FUTEX_WAIT, expected, ts, 0, 0, () => {
        this.sleeping--;
        this.parked = undefined;
        resolve();
      });
    });
  }

  kick(): void {
    if (this.closed) return;
    syscallFn()(SYS_FUTEX, this.txAddr, FUTEX_WAKE, WAKE_ALL, null, 0, 0);
  }

  /**
   * Wakes our own sleeper so no worker thread stays blocked on a region about to be unmapped; resolves once it
   * has returned (a parked one included, which no wait() may be awaiting).
   */
  close(): Promise<void> {
    this.closed = true;
    this.interruptWait?.();
    // A spurious wake is allowed: the sleeper re-checks `closed` and returns.
    if (this.bell && this.sleeping > 0) {
      syscallFn()(SYS_FUTEX, this.rxAddr, FUTEX_WAKE, WAKE_ALL, null, 0, 0);
    }
    return this.parked ?? Promise.resolve();
  }
}
