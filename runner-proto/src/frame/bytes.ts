/*
 * Fresh byte buffers for frame bodies. V8 keeps a typed array of up to 64 bytes on its own heap; a larger one
 * gets a backing store of its own (a malloc and external-memory bookkeeping), which costs 0.5-1 µs here, three
 * to five times what a view into a shared slab costs for 65 bytes to 4 KiB: the size of most control frames
 * (JSON of 100-500 bytes) and output chunks. Above that the copy itself dominates. Numbers in
 * docs/benchmarks.md ("Small buffers").
 *
 * A pooled buffer is a plain Uint8Array over part of a shared ArrayBuffer (as Buffer.allocUnsafe's are): never
 * transfer its `.buffer`, and view it through byteOffset.
 */

/** Largest size V8 allocates on its heap. */
const ON_HEAP_MAX = 64;
const SLAB = 16 * 1024;
/** Larger buffers get their own backing store: a quarter slab at most is wasted when one does not fit. */
const POOLED_MAX = SLAB / 4;

let slab = new ArrayBuffer(SLAB);
let used = 0;

/** A zeroed buffer of `n` bytes (slabs are fresh ArrayBuffers, and no part of one is handed out twice). */
export function allocBytes(n: number): Uint8Array {
  if (n <= ON_HEAP_MAX || n > POOLED_MAX) return new Uint8Array(n);
  if (used + n > SLAB) {
    slab = new ArrayBuffer(SLAB);
    used = 0;
  }
  const out = new Uint8Array(slab, used, n);
  used = (used + n + 7) & ~7; // 8-aligned, so a DataView or a word view over it stays aligned
  return out;
}

/** A private copy of src[start, end). */
export function copyBytes(src: Uint8Array, start: number, end: number): Uint8Array {
  const n = end - start;
  if (n <= ON_HEAP_MAX || n > POOLED_MAX) return src.slice(start, end);
  const out = allocBytes(n);
  out.set(src.subarray(start, end));
  return out;
}

/** UTF-8 of `s`: Buffer.from is 3-4 times faster than TextEncoder.encode here, and pools small results. */
export function utf8Bytes(s: string): Uint8Array {
  return Buffer.from(s, 'utf8');
}
