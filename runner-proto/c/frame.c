#include "frame.h"

#include "crc32c.h"

uint32_t wr_frame_body_crc_for(uint8_t flags, const uint8_t *body, uint32_t len) {
    return (flags & WR_FLAG_BODY_CRC) != 0 ? wr_crc32c(body, len) : 0u;
}

void wr_frame_header_encode(uint8_t out[WR_FRAME_HEADER_SIZE], const wr_frame_header *h) {
    wr_put_le16(out, (uint16_t)WR_FRAME_MAGIC);
    out[2] = h->type;
    out[3] = h->flags;
    wr_put_le32(out + 4, h->length);
    wr_put_le32(out + 8, h->seq);
    wr_put_le32(out + 12, h->corr);
    wr_put_le32(out + 16, h->body_crc);
    wr_put_le32(out + 20, wr_crc32c(out, 20));
}

wr_status wr_frame_header_decode(const uint8_t *buf, size_t buf_len, uint32_t max_body, wr_frame_header *out) {
    if (buf == NULL || out == NULL) return WR_ERR_ARG;
    if (buf_len < WR_FRAME_HEADER_SIZE) return WR_ERR_TRUNCATED;
    if (wr_get_le16(buf) != WR_FRAME_MAGIC) return WR_ERR_BAD_MAGIC;
    if (wr_get_le32(buf + 20) != wr_crc32c(buf, 20)) return WR_ERR_HEADER_CRC;
    uint8_t flags = buf[3];
    if ((flags & (uint8_t)~WR_FRAME_KNOWN_FLAGS) != 0) return WR_ERR_BAD_FLAGS;
    uint32_t length = wr_get_le32(buf + 4);
    if (length > max_body) return WR_ERR_TOO_LONG;
    out->type = buf[2];
    out->flags = flags;
    out->length = length;
    out->seq = wr_get_le32(buf + 8);
    out->corr = wr_get_le32(buf + 12);
    out->body_crc = wr_get_le32(buf + 16);
    return WR_OK;
}

wr_status wr_frame_check_body(const wr_frame_header *h, const uint8_t *body, uint32_t len) {
    if ((h->flags & WR_FLAG_BODY_CRC) == 0) return WR_OK;
    return wr_crc32c(body, len) == h->body_crc ? WR_OK : WR_ERR_BODY_CRC;
}

wr_status wr_frame_encode(uint8_t *out, size_t out_cap, uint8_t type, uint8_t flags, uint32_t seq, uint32_t corr,
                          const uint8_t *body, uint32_t len, size_t *written) {
    if (out == NULL || (body == NULL && len != 0)) return WR_ERR_ARG;
    if ((flags & (uint8_t)~WR_FRAME_KNOWN_FLAGS) != 0) return WR_ERR_ARG;
    if (out_cap < WR_FRAME_HEADER_SIZE || out_cap - WR_FRAME_HEADER_SIZE < len) return WR_ERR_ARG;
    wr_frame_header h = {type, flags, len, seq, corr, wr_frame_body_crc_for(flags, body, len)};
    if (len != 0) wr_copy(out + WR_FRAME_HEADER_SIZE, body, len);
    wr_frame_header_encode(out, &h);
    if (written != NULL) *written = (size_t)WR_FRAME_HEADER_SIZE + len;
    return WR_OK;
}

wr_status wr_frame_decode(const uint8_t *buf, size_t buf_len, uint32_t max_body, wr_frame_header *h,
                          const uint8_t **body) {
    wr_status s = wr_frame_header_decode(buf, buf_len, max_body, h);
    if (s != WR_OK) return s;
    if (buf_len - WR_FRAME_HEADER_SIZE < h->length) return WR_ERR_TRUNCATED;
    const uint8_t *b = buf + WR_FRAME_HEADER_SIZE;
    s = wr_frame_check_body(h, b, h->length);
    if (s != WR_OK) return s;
    if (body != NULL) *body = b;
    return WR_OK;
}
