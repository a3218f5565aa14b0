/*
 * wr_base.h - status codes and shared-memory access helpers for the freestanding wasmring library.
 *
 * Freestanding C11: only <stdint.h>, <stddef.h> and <stdbool.h>. No libc symbol is referenced (not even memcpy
 * or memset): every copy is an explicit loop, and copies that touch the shared region go through volatile
 * pointers so the compiler neither invents extra reads of peer-writable memory nor turns the loop into a libc
 * call. The Makefile proves this by linking the library into a -nostdlib executable.
 */
#ifndef WR_BASE_H
#define WR_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Result of every fallible call. Fault codes mirror the TypeScript FrameFault/RingFault `code` strings. */
typedef enum wr_status {
    WR_OK = 0,
    WR_EMPTY,          /* consumer: nothing published */
    WR_FULL,           /* producer: not enough free space now (back-pressure, try again later) */
    WR_ERR_BAD_MAGIC,  /* 'bad-magic'  */
    WR_ERR_HEADER_CRC, /* 'header-crc' */
    WR_ERR_BODY_CRC,   /* 'body-crc'   */
    WR_ERR_TOO_LONG,   /* 'too-long'   */
    WR_ERR_TRUNCATED,  /* 'truncated'  */
    WR_ERR_BAD_FLAGS,  /* 'bad-flags'  */
    WR_ERR_BAD_INDEX,  /* 'bad-index'  (ring indices are not consistent with the ring) */
    WR_ERR_OVERRUN,    /* 'overrun'    (a record claims more bytes than were published or fit) */
    WR_ERR_ARG,        /* the caller passed something impossible (NULL, buffer too small, bad geometry) */
    WR_ERR_REGION      /* region header missing or inconsistent */
} wr_status;

/* Stable name of a status ("ok", "bad-magic", ...), matching the TypeScript fault codes. */
const char *wr_status_name(wr_status s);

/* Little-endian loads/stores on private (non-shared) byte buffers. */
static inline uint32_t wr_get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint16_t wr_get_le16(const uint8_t *p) {
    return (uint16_t)((uint32_t)p[0] | ((uint32_t)p[1] << 8));
}
static inline void wr_put_le32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void wr_put_le16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Private-to-private copy (no overlap). */
void wr_copy(uint8_t *dst, const uint8_t *src, size_t n);
/* Private-to-private fill. */
void wr_fill(uint8_t *dst, uint8_t value, size_t n);

/*
 * Shared-memory copies. Safety: `shared` points into the mapped region, which the peer may write at any time.
 * Each shared byte is read (or written) exactly once through a volatile access, so a value that has been checked
 * in the private copy cannot change under the checker (no double fetch). Ordering against the ring indices comes
 * from the acquire/release atomics in ring.c, not from volatile.
 */
void wr_copy_from_shared(uint8_t *dst, const volatile uint8_t *shared, size_t n);
void wr_copy_to_shared(volatile uint8_t *shared, const uint8_t *src, size_t n);
void wr_fill_shared(volatile uint8_t *shared, uint8_t value, size_t n);

#ifdef __cplusplus
}
#endif
#endif
