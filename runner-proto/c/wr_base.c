#include "wr_base.h"

const char *wr_status_name(wr_status s) {
    switch (s) {
    case WR_OK: return "ok";
    case WR_EMPTY: return "empty";
    case WR_FULL: return "full";
    case WR_ERR_BAD_MAGIC: return "bad-magic";
    case WR_ERR_HEADER_CRC: return "header-crc";
    case WR_ERR_BODY_CRC: return "body-crc";
    case WR_ERR_TOO_LONG: return "too-long";
    case WR_ERR_TRUNCATED: return "truncated";
    case WR_ERR_BAD_FLAGS: return "bad-flags";
    case WR_ERR_BAD_INDEX: return "bad-index";
    case WR_ERR_OVERRUN: return "overrun";
    case WR_ERR_ARG: return "bad-argument";
    case WR_ERR_REGION: return "bad-region";
    }
    return "unknown";
}

/*
 * The private copies go through a volatile destination pointer on purpose: without it GCC's loop-idiom
 * recognition turns these loops into calls to memcpy/memset even under -ffreestanding -fno-builtin, which a
 * -nostdlib image does not have. Word-sized accesses keep them fast enough for the channel's bulk bodies.
 */
void wr_copy(uint8_t *dst, const uint8_t *src, size_t n) {
    volatile uint8_t *d = dst;
    size_t i = 0;
    if ((((uintptr_t)dst) & 7u) == 0) {
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            __builtin_memcpy(&w, src + i, 8); /* constant size: always inlined, never a libc call */
            *(volatile uint64_t *)(volatile void *)(d + i) = w;
        }
    }
    for (; i < n; i++) d[i] = src[i];
}

void wr_fill(uint8_t *dst, uint8_t value, size_t n) {
    volatile uint8_t *d = dst;
    for (size_t i = 0; i < n; i++) d[i] = value;
}

void wr_copy_from_shared(uint8_t *dst, const volatile uint8_t *shared, size_t n) {
    size_t i = 0;
    /* Safety: 8-byte volatile loads when the shared source is aligned (ring records always are). */
    if ((((uintptr_t)shared) & 7u) == 0) {
        for (; i + 8 <= n; i += 8) {
            uint64_t w = *(const volatile uint64_t *)(const volatile void *)(shared + i);
            __builtin_memcpy(dst + i, &w, 8);
        }
    }
    for (; i < n; i++) dst[i] = shared[i];
}

void wr_copy_to_shared(volatile uint8_t *shared, const uint8_t *src, size_t n) {
    size_t i = 0;
    if ((((uintptr_t)shared) & 7u) == 0) {
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            __builtin_memcpy(&w, src + i, 8);
            *(volatile uint64_t *)(volatile void *)(shared + i) = w;
        }
    }
    for (; i < n; i++) shared[i] = src[i];
}

void wr_fill_shared(volatile uint8_t *shared, uint8_t value, size_t n) {
    for (size_t i = 0; i < n; i++) shared[i] = value;
}
