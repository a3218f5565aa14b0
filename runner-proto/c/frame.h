/*
 * frame.h - the channel frame: a 24-byte header and a body. All integers little-endian.
 *
 *   0      2      3      4              8              12             16             20             24
 *   +------+------+------+--------------+--------------+--------------+--------------+--------------+
 *   |magic |type  |flags |  body length |   sequence   | correlation  |  body CRC32C | header CRC32C|
 *   | u16  | u8   | u8   |     u32      |     u32      |     u32      |     u32      | over 0..19   |
 *   +------+------+------+--------------+--------------+--------------+--------------+--------------+
 *
 * magic is 0x5357 (bytes 'W','S'). The header CRC is always checked; the body CRC only when WR_FLAG_BODY_CRC is
 * set (its word is 0 otherwise). Unknown flag bits are refused. Same rules, same check order and the same fault
 * names as runner-proto/src/frame/codec.ts.
 */
#ifndef WR_FRAME_H
#define WR_FRAME_H

#include "wr_base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WR_FRAME_MAGIC 0x5357u
#define WR_FRAME_HEADER_SIZE 24u
#define WR_FLAG_BODY_CRC 0x01u
#define WR_FLAG_JSON 0x02u
#define WR_FRAME_KNOWN_FLAGS (WR_FLAG_BODY_CRC | WR_FLAG_JSON)

/* Message types (runner-proto/src/protocol/messages.ts). */
enum {
    WR_MSG_HELLO = 0x01,
    WR_MSG_HELLO_ACK = 0x02,
    WR_MSG_PING = 0x03,
    WR_MSG_PONG = 0x04,
    WR_MSG_ECHO = 0x05,
    WR_MSG_MODULE_HAVE = 0x10,
    WR_MSG_MODULE_BEGIN = 0x11,
    WR_MSG_MODULE_CHUNK = 0x12,
    WR_MSG_MODULE_END = 0x13,
    WR_MSG_MODULE_FORGET = 0x14,
    WR_MSG_RUN = 0x20,
    WR_MSG_STDOUT = 0x21,
    WR_MSG_STDERR = 0x22,
    WR_MSG_EXIT = 0x23,
    WR_MSG_KILL = 0x24,
    WR_MSG_RESULT = 0x7e,
    WR_MSG_ERROR = 0x7f
};

typedef struct wr_frame_header {
    uint8_t type;
    uint8_t flags;
    uint32_t length;   /* body bytes */
    uint32_t seq;
    uint32_t corr;
    uint32_t body_crc; /* CRC32C of the body when flags & WR_FLAG_BODY_CRC, else 0 */
} wr_frame_header;

/* The body CRC word for `flags`: CRC32C of the body when WR_FLAG_BODY_CRC is set, else 0. */
uint32_t wr_frame_body_crc_for(uint8_t flags, const uint8_t *body, uint32_t len);

/* Writes the 24 header bytes of `h` into `out`, including the header CRC (h->body_crc is taken as given). */
void wr_frame_header_encode(uint8_t out[WR_FRAME_HEADER_SIZE], const wr_frame_header *h);

/*
 * Checks and decodes a header from `buf` (`buf_len` bytes available, private memory). Check order: truncated,
 * bad-magic, header-crc, bad-flags, too-long (length > max_body). On success fills *out.
 */
wr_status wr_frame_header_decode(const uint8_t *buf, size_t buf_len, uint32_t max_body, wr_frame_header *out);

/* WR_ERR_BODY_CRC if the header asks for a body CRC and `body` does not match it. */
wr_status wr_frame_check_body(const wr_frame_header *h, const uint8_t *body, uint32_t len);

/*
 * Encodes a whole frame (header + body, no padding) into `out` of `out_cap` bytes; computes the body CRC when
 * flags ask for it. *written receives 24 + len. WR_ERR_ARG if it does not fit or flags are unknown.
 */
wr_status wr_frame_encode(uint8_t *out, size_t out_cap, uint8_t type, uint8_t flags, uint32_t seq, uint32_t corr,
                          const uint8_t *body, uint32_t len, size_t *written);

/*
 * Decodes one frame at the start of `buf` (`buf_len` bytes): header checks, then truncated if the body is not
 * all there, then the body CRC. *body points into `buf` (no copy).
 */
wr_status wr_frame_decode(const uint8_t *buf, size_t buf_len, uint32_t max_body, wr_frame_header *h,
                          const uint8_t **body);

#ifdef __cplusplus
}
#endif
#endif
