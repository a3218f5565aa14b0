/*
 * crc32c.h - CRC32C (Castagnoli): reflected, polynomial 0x82f63b78, initial value and final xor 0xffffffff.
 * Check value: crc32c("123456789") == 0xe3069283. Same function as runner-proto/src/crc (crc32cJs).
 */
#ifndef WR_CRC32C_H
#define WR_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CRC32C of `len` bytes. */
uint32_t wr_crc32c(const void *data, size_t len);

/*
 * Continues a CRC: wr_crc32c_update(wr_crc32c(a), b) == wr_crc32c(a ++ b), the same chaining as the TypeScript
 * `crc32c(bytes, seed)` where seed is the previous result.
 */
uint32_t wr_crc32c_update(uint32_t crc, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
