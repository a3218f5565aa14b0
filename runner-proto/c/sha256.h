/*
 * sha256.h - freestanding SHA-256 (FIPS 180-4), used to verify module digests ("sha256:<64 lowercase hex>").
 */
#ifndef WR_SHA256_H
#define WR_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WR_SHA256_SIZE 32u
/* "sha256:" + 64 hex digits, without a terminating NUL. */
#define WR_DIGEST_TEXT_LEN 71u

typedef struct wr_sha256 {
    uint32_t state[8];
    uint64_t length; /* bytes hashed so far */
    uint8_t block[64];
    uint32_t used; /* bytes waiting in block */
} wr_sha256_ctx;

void wr_sha256_init(wr_sha256_ctx *ctx);
void wr_sha256_update(wr_sha256_ctx *ctx, const void *data, size_t len);
void wr_sha256_final(wr_sha256_ctx *ctx, uint8_t out[WR_SHA256_SIZE]);
/* One shot. */
void wr_sha256(const void *data, size_t len, uint8_t out[WR_SHA256_SIZE]);

/* Writes "sha256:" and 64 lowercase hex digits (71 bytes, no NUL). */
void wr_sha256_digest_text(const uint8_t hash[WR_SHA256_SIZE], char out[WR_DIGEST_TEXT_LEN]);

/* Whether `text` (of `len` bytes) is exactly "sha256:" followed by 64 lowercase hex digits. */
int wr_digest_text_valid(const char *text, size_t len);

#ifdef __cplusplus
}
#endif
#endif
