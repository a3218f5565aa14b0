/*
 * region.h - the shared region (layout v1), byte-compatible with runner-proto/src/region/layout.ts.
 *
 *   0x0000  header (written once by the creator, the runner)
 *             +0  magic "WASMRING" (8 bytes)     +8  layout version (1)     +12 region size
 *             +16 ring data size (power of two)  +20 ring 0 data offset     +24 ring 1 data offset
 *             +28 CRC32C of bytes 0..27
 *   0x0040  side A (agent):  +0 epoch  +4 heartbeat  +8 state (1 = attached)
 *   0x0080  side B (runner): +0 epoch  +4 heartbeat  +8 state
 *   0x0100  ring 0 (agent -> runner) control block, 4 lines of 64 bytes: +0x00 tail, +0x04 reset-ack (producer);
 *             +0x40 head, +0x44 reset-req (consumer); +0x80 want-kick; +0xC0 doorbell (see ring.h)
 *   0x0200  ring 1 (runner -> agent) control block, same shape
 *   0x1000  ring 0 data (ring size bytes), then ring 1 data
 *
 * After wr_region_attach/init the geometry is kept privately in wr_region; the header is never read again, so a
 * peer scribbling on it cannot move this side's view of the rings (sDDF's rule).
 *
 * The base must be 64-byte aligned (a page-aligned mapping, an seL4 Microkit memory region, a PCI BAR).
 */
#ifndef WR_REGION_H
#define WR_REGION_H

#include "ring.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WR_LAYOUT_VERSION 1u
#define WR_CACHE_LINE 64u
#define WR_HEADER_SIZE 32u
#define WR_SIDE_AGENT 0u
#define WR_SIDE_RUNNER 1u
#define WR_SIDE_OFFSET(side) (0x40u + 0x40u * (uint32_t)(side))
#define WR_SIDE_EPOCH 0u
#define WR_SIDE_HEARTBEAT 4u
#define WR_SIDE_STATE 8u
#define WR_SIDE_STATE_ATTACHED 1u
#define WR_RING_CTRL_OFFSET(ring) (0x100u + 0x100u * (uint32_t)(ring))
#define WR_DATA_OFFSET 0x1000u
#define WR_MIN_RING_SIZE (64u * 1024u)
/* Ring 0 carries agent -> runner, ring 1 runner -> agent. */
#define WR_RING_TO_RUNNER 0u
#define WR_RING_TO_AGENT 1u

extern const char WR_REGION_MAGIC[8];

typedef struct wr_region {
    volatile uint8_t *base;
    uint32_t region_size;
    uint32_t ring_size;
} wr_region;

/* Bytes a region with rings of `ring_size` bytes needs: 0x1000 + 2 * ring_size. */
static inline uint64_t wr_region_size_for(uint32_t ring_size) {
    return (uint64_t)WR_DATA_OFFSET + 2u * (uint64_t)ring_size;
}

/*
 * Creator: zeroes the header and control blocks and writes a fresh header (magic and CRC last). `mapped_len` is
 * the mapping's size; it must hold wr_region_size_for(ring_size). ring_size: power of two >= 64 KiB.
 */
wr_status wr_region_init(wr_region *r, void *base, size_t mapped_len, uint32_t ring_size);

/*
 * Attacher: checks the creator's header against the layout and the mapping. On failure returns WR_ERR_REGION
 * and, if bad_offset is not NULL, the byte offset of the field that failed (0 magic/size, 8 version, 12 region
 * size, 16 ring size, 20 data offsets, 28 CRC).
 */
wr_status wr_region_attach(wr_region *r, void *base, size_t mapped_len, uint32_t *bad_offset);

/* Pointer to a 32-bit word of the region (for the __atomic builtins); byte_offset must be 4-aligned. */
uint32_t *wr_region_word(const wr_region *r, uint32_t byte_offset);
/* Pointer to a side's epoch/heartbeat/state word. */
uint32_t *wr_region_side_word(const wr_region *r, uint32_t side, uint32_t field);

/* Control block and data area of ring 0 or 1, with the private ring size. */
wr_status wr_region_ring(const wr_region *r, uint32_t ring, wr_ring_mem *out);

/*
 * Liveness words of this side. Safety: plain seq_cst atomics on u32 words that JavaScript reads with
 * Atomics.load; the epoch changes when a side restarts, the heartbeat moves while it lives.
 */
void wr_region_set_side(const wr_region *r, uint32_t side, uint32_t epoch, uint32_t state);
void wr_region_heartbeat(const wr_region *r, uint32_t side);

#ifdef __cplusplus
}
#endif
#endif
