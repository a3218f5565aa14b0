import { AgentError } from '../errors/index.js';

/*
 * Shared region layout (v1). Offsets in bytes, little-endian u32 words, every mutable word on its own 64-byte
 * cache line so the two sides never write the same line.
 *
 *   0x0000  header (written once by the creator, the runner)
 *             +0  magic "WASMRING" (8 bytes)     +8  layout version (1)     +12 region size
 *             +16 ring data size (power of two)  +20 ring 0 data offset     +24 ring 1 data offset
 *             +28 CRC32C of bytes 0..27
 *   0x0040  side A (agent):  +0 epoch  +4 heartbeat  +8 state
 *   0x0080  side B (runner): +0 epoch  +4 heartbeat  +8 state
 *   0x0100  ring 0 (agent -> runner) control block, 4 lines:
 *             +0x00 tail      (producer writes: free-running byte count)
 *             +0x04 reset-ack (producer writes: the last reset request it carried out)
 *             +0x40 head      (consumer writes: free-running byte count)
 *             +0x44 reset-req (consumer writes: bumped to ask the producer to restart the ring at 0)
 *             +0x80 want-kick (consumer sets 1 before sleeping; producer clears it when it kicks)
 *             +0xC0 doorbell  (producer increments on each kick; the word a futex or poller waits on)
 *   0x0200  ring 1 (runner -> agent) control block, same shape
 *   0x1000  ring 0 data (ring data size bytes), then ring 1 data
 *
 * Ring capacity never leaves the creator's word at +16 after the header is checked: each side keeps its own copy,
 * so a peer scribbling on the header cannot make the other index outside its data area (sDDF's rule).
 */
export const REGION_MAGIC = 'WASMRING';
export const LAYOUT_VERSION = 1;
export const CACHE_LINE = 64;
export const HEADER_OFFSET = 0x0000;
export const SIDE_OFFSET = [0x0040, 0x0080] as const;
export const RING_CTRL_OFFSET = [0x0100, 0x0200] as const;
export const DATA_OFFSET = 0x1000;

export const CTRL_TAIL = 0x00;
export const CTRL_RESET_ACK = 0x04;
export const CTRL_HEAD = 0x40;
export const CTRL_RESET_REQ = 0x44;
export const CTRL_WANT_KICK = 0x80;
export const CTRL_DOORBELL = 0xc0;

export const SIDE_EPOCH = 0;
export const SIDE_HEARTBEAT = 4;
export const SIDE_STATE = 8;

export const MIN_RING_SIZE = 64 * 1024;
/** Keeps the region size inside the header's u32 (and matches the C reference's cap). */
export const MAX_RING_SIZE = 1024 * 1024 * 1024;

export enum Side {
  Agent = 0,
  Runner = 1,
}

export function regionSizeFor(ringSize: number): number {
  return DATA_OFFSET + 2 * ringSize;
}

/** The largest power-of-two ring that fits in a region of `regionSize` bytes (e.g. a 4 MiB ivshmem BAR). */
export function ringSizeFor(regionSize: number): number {
  let size = MIN_RING_SIZE;
  while (size < MAX_RING_SIZE && regionSizeFor(size * 2) <= regionSize) size *= 2;
  if (regionSizeFor(size) > regionSize) {
    throw new AgentError('AGT_ERR_CHANNEL_REGION', `region of ${regionSize} bytes is too small (need ${regionSizeFor(MIN_RING_SIZE)})`);
  }
  return size;
}

export function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}
