#include "region.h"

#include "crc32c.h"

const char WR_REGION_MAGIC[8] = {'W', 'A', 'S', 'M', 'R', 'I', 'N', 'G'};

static bool ring_size_ok(uint32_t ring_size) {
    return ring_size >= WR_MIN_RING_SIZE && (ring_size & (ring_size - 1u)) == 0 && ring_size <= 0x40000000u;
}

wr_status wr_region_init(wr_region *r, void *base, size_t mapped_len, uint32_t ring_size) {
    if (r == NULL || base == NULL || (((uintptr_t)base) & (WR_CACHE_LINE - 1u)) != 0) return WR_ERR_ARG;
    if (!ring_size_ok(ring_size)) return WR_ERR_ARG;
    uint64_t size = wr_region_size_for(ring_size);
    if (size > 0xffffffffu || (uint64_t)mapped_len < size) return WR_ERR_ARG;
    volatile uint8_t *b = (volatile uint8_t *)base;

    uint8_t hdr[WR_HEADER_SIZE];
    for (unsigned i = 0; i < 8; i++) hdr[i] = (uint8_t)WR_REGION_MAGIC[i];
    wr_put_le32(hdr + 8, WR_LAYOUT_VERSION);
    wr_put_le32(hdr + 12, (uint32_t)size);
    wr_put_le32(hdr + 16, ring_size);
    wr_put_le32(hdr + 20, WR_DATA_OFFSET);
    wr_put_le32(hdr + 24, WR_DATA_OFFSET + ring_size);
    wr_put_le32(hdr + 28, wr_crc32c(hdr, 28));

    /*
     * Safety: an attacher may be polling for the header while we write it. Zero everything first (so a stale
     * valid header disappears), then write the fields, then the magic, then the CRC word with a release store.
     * An attacher that sees a consistent CRC therefore sees the whole header; a torn one fails the CRC.
     */
    __atomic_store_n((uint32_t *)(void *)(b + 28), 0u, __ATOMIC_SEQ_CST);
    wr_fill_shared(b, 0, WR_DATA_OFFSET);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    wr_copy_to_shared(b + 8, hdr + 8, 20);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    wr_copy_to_shared(b, hdr, 8);
    __atomic_store_n((uint32_t *)(void *)(b + 28), wr_get_le32(hdr + 28), __ATOMIC_RELEASE);

    r->base = b;
    r->region_size = (uint32_t)size;
    r->ring_size = ring_size;
    return WR_OK;
}

wr_status wr_region_attach(wr_region *r, void *base, size_t mapped_len, uint32_t *bad_offset) {
    uint32_t bad = 0;
    wr_status s = WR_ERR_REGION;
    if (r == NULL || base == NULL || (((uintptr_t)base) & (WR_CACHE_LINE - 1u)) != 0) return WR_ERR_ARG;
    volatile uint8_t *b = (volatile uint8_t *)base;
    uint8_t hdr[WR_HEADER_SIZE];
    if (mapped_len < WR_DATA_OFFSET) goto out;
    /* Safety: acquire on the CRC word (written last by the creator), then one private copy of the header. */
    uint32_t crc_word = __atomic_load_n((uint32_t *)(void *)(b + 28), __ATOMIC_ACQUIRE);
    wr_copy_from_shared(hdr, b, 28);
    wr_put_le32(hdr + 28, crc_word);
    for (unsigned i = 0; i < 8; i++) {
        if (hdr[i] != (uint8_t)WR_REGION_MAGIC[i]) goto out;
    }
    bad = 28;
    if (wr_get_le32(hdr + 28) != wr_crc32c(hdr, 28)) goto out;
    bad = 8;
    if (wr_get_le32(hdr + 8) != WR_LAYOUT_VERSION) goto out;
    uint32_t region_size = wr_get_le32(hdr + 12);
    uint32_t ring_size = wr_get_le32(hdr + 16);
    bad = 16;
    if (!ring_size_ok(ring_size)) goto out;
    bad = 12;
    if ((uint64_t)region_size != wr_region_size_for(ring_size) || (uint64_t)region_size > (uint64_t)mapped_len) goto out;
    bad = 20;
    if (wr_get_le32(hdr + 20) != WR_DATA_OFFSET || wr_get_le32(hdr + 24) != WR_DATA_OFFSET + ring_size) goto out;
    r->base = b;
    r->region_size = region_size;
    r->ring_size = ring_size;
    s = WR_OK;
out:
    if (s != WR_OK && bad_offset != NULL) *bad_offset = bad;
    return s;
}

uint32_t *wr_region_word(const wr_region *r, uint32_t byte_offset) {
    return (uint32_t *)(void *)(r->base + (byte_offset & ~3u));
}

uint32_t *wr_region_side_word(const wr_region *r, uint32_t side, uint32_t field) {
    return wr_region_word(r, WR_SIDE_OFFSET(side & 1u) + (field & 0x3cu));
}

wr_status wr_region_ring(const wr_region *r, uint32_t ring, wr_ring_mem *out) {
    if (r == NULL || out == NULL || ring > 1u) return WR_ERR_ARG;
    return wr_ring_mem_init(out, (void *)(r->base + WR_RING_CTRL_OFFSET(ring)),
                            r->base + WR_DATA_OFFSET + ring * r->ring_size, r->ring_size);
}

void wr_region_set_side(const wr_region *r, uint32_t side, uint32_t epoch, uint32_t state) {
    __atomic_store_n(wr_region_side_word(r, side, WR_SIDE_EPOCH), epoch, __ATOMIC_SEQ_CST);
    __atomic_store_n(wr_region_side_word(r, side, WR_SIDE_STATE), state, __ATOMIC_SEQ_CST);
}

void wr_region_heartbeat(const wr_region *r, uint32_t side) {
    __atomic_fetch_add(wr_region_side_word(r, side, WR_SIDE_HEARTBEAT), 1u, __ATOMIC_SEQ_CST);
}
