/**
 * The bare hand-off floor: one Int32 each way, each on its own cache line. The caller writes a new value to the
 * ping word; the server copies it to the pong word. What one round trip of it costs is the least any shared-memory
 * exchange between the same two vCPUs can cost.
 */
export const FLOOR_PING = 0;
export const FLOOR_PONG = 16;
/**
 * The corr of the CALL frame that asks bench/channel-peer.ts to serve a block of hand-offs (body: u32 from, u32 n).
 * Not an ECHO: the peer's transport answers those itself, as the runner's does, and they never reach a handler.
 */
export const FLOOR_BLOCK = 0xf1004;
/** Bytes of shared memory the floor needs (both words, each on its own line). */
export const FLOOR_BYTES = 4096;

/** How often (in spins) a spinning loop looks at the clock for its deadline. */
const CLOCK_EVERY = 1024;

function spinUntil(w: Int32Array, index: number, value: number, deadline: number, what: string): void {
  for (let i = 1; Atomics.load(w, index) !== value; i++) {
    if (i % CLOCK_EVERY === 0 && performance.now() > deadline) throw new Error(`hand-off floor: ${what} ${value} not seen in time (both ends on one vCPU?)`);
  }
}

/** Serves hand-offs `from + 1` to `from + n`: each value the caller writes to the ping word is copied to the pong word. */
export function serveFloor(w: Int32Array, from: number, n: number, timeoutMs: number): void {
  const deadline = performance.now() + timeoutMs;
  for (let v = from + 1; v <= from + n; v++) {
    spinUntil(w, FLOOR_PING, v, deadline, 'ping');
    Atomics.store(w, FLOOR_PONG, v);
  }
}

/**
 * Makes hand-offs `from + 1` to `from + n` and pushes the round-trip time (µs) of each after the first `skip`
 * to `out`.
 */
export function floorHandoffs(w: Int32Array, from: number, n: number, skip: number, out: number[], timeoutMs: number): void {
  const deadline = performance.now() + timeoutMs;
  for (let v = from + 1; v <= from + n; v++) {
    const t0 = performance.now();
    Atomics.store(w, FLOOR_PING, v);
    spinUntil(w, FLOOR_PONG, v, deadline, 'pong');
    if (v - from > skip) out.push((performance.now() - t0) * 1000);
  }
}
