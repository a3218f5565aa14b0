#include "ring.h"

/*
 * Atomic helpers on the shared control words. The words are naturally aligned u32s that only ever hold whole
 * values written by __atomic stores (here) or JavaScript Atomics (the TypeScript side).
 */
static inline uint32_t load_acquire(const uint32_t *w) {
    return __atomic_load_n(w, __ATOMIC_ACQUIRE);
}
static inline uint32_t load_seq_cst(const uint32_t *w) {
    return __atomic_load_n(w, __ATOMIC_SEQ_CST);
}
static inline void store_release(uint32_t *w, uint32_t v) {
    __atomic_store_n(w, v, __ATOMIC_RELEASE);
}
static inline void store_seq_cst(uint32_t *w, uint32_t v) {
    __atomic_store_n(w, v, __ATOMIC_SEQ_CST);
}

wr_status wr_ring_mem_init(wr_ring_mem *m, void *ctrl, volatile uint8_t *data, uint32_t capacity) {
    if (m == NULL || ctrl == NULL || data == NULL) return WR_ERR_ARG;
    if (capacity < WR_RING_MIN_CAPACITY || (capacity & (capacity - 1u)) != 0) return WR_ERR_ARG;
    if ((((uintptr_t)ctrl) & 63u) != 0 || (((uintptr_t)data) & 7u) != 0) return WR_ERR_ARG;
    uint8_t *c = (uint8_t *)ctrl;
    m->tail = (uint32_t *)(void *)(c + WR_CTRL_TAIL);
    m->reset_ack = (uint32_t *)(void *)(c + WR_CTRL_RESET_ACK);
    m->head = (uint32_t *)(void *)(c + WR_CTRL_HEAD);
    m->reset_req = (uint32_t *)(void *)(c + WR_CTRL_RESET_REQ);
    m->want_kick = (uint32_t *)(void *)(c + WR_CTRL_WANT_KICK);
    m->doorbell = (uint32_t *)(void *)(c + WR_CTRL_DOORBELL);
    m->data = data;
    m->capacity = capacity;
    return WR_OK;
}

/* Field by field: a struct assignment may compile to a memcpy call, which a freestanding image lacks. */
static void mem_copy(wr_ring_mem *dst, const wr_ring_mem *src) {
    dst->tail = src->tail;
    dst->reset_ack = src->reset_ack;
    dst->head = src->head;
    dst->reset_req = src->reset_req;
    dst->want_kick = src->want_kick;
    dst->doorbell = src->doorbell;
    dst->data = src->data;
    dst->capacity = src->capacity;
}

/*
 * The published tail if it is plausible; otherwise (a crashed or scribbling writer) head rounded down to 8, stored
 * as the new tail, so the ring reads as empty. Same rule as saneTail() in spsc.ts.
 */
static uint32_t sane_tail(wr_ring_mem *m) {
    uint32_t tail = load_seq_cst(m->tail);
    uint32_t head = load_seq_cst(m->head);
    if ((tail % WR_RECORD_ALIGN) == 0 && tail - head <= m->capacity) return tail;
    uint32_t repaired = head - (head % WR_RECORD_ALIGN);
    store_seq_cst(m->tail, repaired);
    return repaired;
}

void wr_producer_init(wr_producer *p, const wr_ring_mem *m) {
    mem_copy(&p->m, m);
    p->mask = m->capacity - 1u;
    p->max_body = wr_max_body_for(m->capacity);
    p->tail = sane_tail(&p->m);
    p->seq = 0;
    p->kicks = 0;
    p->resets = 0;
}

void wr_consumer_init(wr_consumer *c, const wr_ring_mem *m) {
    mem_copy(&c->m, m);
    c->mask = m->capacity - 1u;
    c->max_body = wr_max_body_for(m->capacity);
    c->head = load_acquire(m->head);
    c->reset_pending = false;
}

uint32_t wr_producer_free(const wr_producer *p) {
    /* Safety: acquire pairs with the consumer's release of head: the bytes it freed are no longer read. */
    uint32_t used = p->tail - load_acquire(p->m.head);
    return used > p->m.capacity ? 0u : p->m.capacity - used;
}

bool wr_producer_service_reset(wr_producer *p) {
    uint32_t req = load_seq_cst(p->m.reset_req);
    if (req == load_seq_cst(p->m.reset_ack)) return false;
    /*
     * Safety: tail = 0 is stored before the ack, both seq_cst: a consumer that sees the ack (and then stores
     * head = 0) also sees tail = 0, so it never pairs the new head with the old tail. The doorbell moves last, so
     * a consumer sleeping on it for the ack wakes up after both.
     */
    p->tail = 0;
    store_seq_cst(p->m.tail, 0u);
    store_seq_cst(p->m.reset_ack, req);
    __atomic_fetch_add(p->m.doorbell, 1u, __ATOMIC_SEQ_CST);
    p->resets++;
    return true;
}

uint32_t wr_producer_reset_requested(const wr_producer *p) {
    return load_seq_cst(p->m.reset_req);
}

bool wr_producer_reset_pending(const wr_producer *p) {
    return load_seq_cst(p->m.reset_req) != load_seq_cst(p->m.reset_ack);
}

void wr_producer_ring_doorbell(wr_producer *p) {
    __atomic_fetch_add(p->m.doorbell, 1u, __ATOMIC_SEQ_CST);
}

wr_status wr_producer_try_write(wr_producer *p, uint8_t type, uint8_t flags, uint32_t corr, const uint8_t *body,
                                uint32_t len) {
    (void)wr_producer_service_reset(p);
    if ((flags & (uint8_t)~WR_FRAME_KNOWN_FLAGS) != 0 || (body == NULL && len != 0)) return WR_ERR_ARG;
    if (len > p->max_body) return WR_ERR_TOO_LONG;
    uint32_t need = wr_record_size(len);
    /* Safety: acquire pairs with the consumer's release store of head (see wr_consumer_release). */
    uint32_t head = load_acquire(p->m.head);
    uint32_t used = p->tail - head;
    if (used > p->m.capacity) return WR_ERR_BAD_INDEX;
    uint32_t free = p->m.capacity - used;
    uint32_t tail = p->tail;
    /* A tail adopted from a corrupted region may be misaligned; writing there could run past the data area. */
    if ((tail % WR_RECORD_ALIGN) != 0) return WR_ERR_BAD_INDEX;
    uint32_t pos = tail & p->mask;
    uint32_t contiguous = p->m.capacity - pos; /* >= 8: tail is always a multiple of 8 */
    if (need > contiguous) {
        if (free < contiguous || free - contiguous < need) return WR_FULL;
        /* Safety: pos is 8-aligned and < capacity, so the 4 PAD bytes lie inside the data area. */
        wr_fill_shared(p->m.data + pos, 0xff, 4);
        tail += contiguous;
        pos = 0;
    } else if (free < need) {
        return WR_FULL;
    }
    /* Safety: pos + need <= capacity (checked above), so header and body lie inside the data area. */
    wr_frame_header h = {type, flags, len, p->seq, corr, wr_frame_body_crc_for(flags, body, len)};
    uint8_t hdr[WR_FRAME_HEADER_SIZE];
    wr_frame_header_encode(hdr, &h);
    if (len != 0) wr_copy_to_shared(p->m.data + pos + WR_FRAME_HEADER_SIZE, body, len);
    wr_copy_to_shared(p->m.data + pos, hdr, WR_FRAME_HEADER_SIZE);
    p->seq++;
    p->tail = tail + need;
    return WR_OK;
}

bool wr_producer_publish(wr_producer *p) {
    /*
     * Safety: the seq_cst store of tail is a release: every record byte written above is visible to a consumer
     * that acquires this tail. It is also ordered before the seq_cst load of want-kick below (store->load needs
     * seq_cst on both; see ring.h), so either we see the consumer's flag, or it sees our tail when it rechecks.
     */
    store_seq_cst(p->m.tail, p->tail);
    if (load_seq_cst(p->m.want_kick) != 0) {
        uint32_t expected = 1;
        if (__atomic_compare_exchange_n(p->m.want_kick, &expected, 0u, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            __atomic_fetch_add(p->m.doorbell, 1u, __ATOMIC_SEQ_CST);
            p->kicks++;
            return true;
        }
    }
    return false;
}

void wr_producer_resync(wr_producer *p) {
    p->tail = sane_tail(&p->m);
}

wr_status wr_consumer_read(wr_consumer *c, wr_frame_header *h, uint8_t *body_buf, uint32_t body_cap) {
    if (h == NULL) return WR_ERR_ARG;
    if (wr_consumer_reset_in_progress(c)) return WR_EMPTY;
    /* Safety: acquire pairs with the producer's release of tail: record bytes before tail are complete. */
    uint32_t tail = load_acquire(c->m.tail);
    uint32_t head = c->head;
    uint32_t avail = tail - head;
    if (avail == 0) return WR_EMPTY;
    if (avail > c->m.capacity || (avail % WR_RECORD_ALIGN) != 0) return WR_ERR_BAD_INDEX;
    uint32_t pos = head & c->mask;
    if ((pos % WR_RECORD_ALIGN) != 0) return WR_ERR_BAD_INDEX; /* our own head is always aligned; be sure */
    uint8_t word[4];
    /* Safety: pos <= capacity - 8, so the 4-byte PAD check stays inside the data area. */
    wr_copy_from_shared(word, c->m.data + pos, 4);
    if (wr_get_le32(word) == WR_PAD_WORD) {
        uint32_t skip = c->m.capacity - pos;
        if (skip >= avail) return WR_ERR_BAD_INDEX;
        head += skip;
        avail -= skip;
        pos = 0;
    }
    uint32_t room = c->m.capacity - pos;
    if (avail < WR_FRAME_HEADER_SIZE || room < WR_FRAME_HEADER_SIZE) return WR_ERR_OVERRUN;
    uint8_t hdr[WR_FRAME_HEADER_SIZE];
    wr_copy_from_shared(hdr, c->m.data + pos, WR_FRAME_HEADER_SIZE);
    wr_frame_header fh;
    wr_status s = wr_frame_header_decode(hdr, sizeof hdr, c->max_body, &fh);
    if (s != WR_OK) return s;
    /* fh.length <= max_body < capacity/2, so wr_record_size cannot overflow. */
    uint32_t need = wr_record_size(fh.length);
    if (need > avail || need > room) return WR_ERR_OVERRUN;
    if (fh.length > body_cap || (body_buf == NULL && fh.length != 0)) return WR_ERR_ARG;
    /* Safety: pos + 24 + length <= pos + need <= capacity: the body lies inside the data area. */
    if (fh.length != 0) wr_copy_from_shared(body_buf, c->m.data + pos + WR_FRAME_HEADER_SIZE, fh.length);
    /* The CRC is computed over the private copy, so what was checked is what the caller gets. */
    s = wr_frame_check_body(&fh, body_buf, fh.length);
    if (s != WR_OK) return s;
    h->type = fh.type;
    h->flags = fh.flags;
    h->length = fh.length;
    h->seq = fh.seq;
    h->corr = fh.corr;
    h->body_crc = fh.body_crc;
    c->head = head + need;
    return WR_OK;
}

void wr_consumer_release(wr_consumer *c) {
    /* Safety: release: our copies out of the ring happen before the producer may reuse the space. */
    store_release(c->m.head, c->head);
}

bool wr_consumer_is_empty(const wr_consumer *c) {
    /*
     * A reset waiting for its ack: nothing to read (sleeping is safe, the ack bumps the doorbell). Acknowledged:
     * not empty, because the next read must complete the reset (head = 0) before the producer can write again.
     */
    if (c->reset_pending) return load_seq_cst(c->m.reset_ack) != load_seq_cst(c->m.reset_req);
    return load_seq_cst(c->m.tail) == c->head;
}

void wr_consumer_request_reset(wr_consumer *c) {
    c->reset_pending = true;
    store_seq_cst(c->m.reset_req, load_seq_cst(c->m.reset_ack) + 1u);
}

bool wr_consumer_reset_in_progress(wr_consumer *c) {
    if (!c->reset_pending) return false;
    if (load_seq_cst(c->m.reset_ack) != load_seq_cst(c->m.reset_req)) return true;
    /* Safety: the producer stored tail = 0 before the ack we just loaded (seq_cst): head = 0 matches it. */
    c->head = 0;
    wr_consumer_release(c);
    c->reset_pending = false;
    return false;
}

bool wr_consumer_arm_kick(wr_consumer *c) {
    /* Safety: seq_cst store then seq_cst load of tail (in is_empty): the Dekker half that pairs with publish(). */
    store_seq_cst(c->m.want_kick, 1u);
    if (!wr_consumer_is_empty(c)) {
        store_seq_cst(c->m.want_kick, 0u);
        return false;
    }
    return true;
}

void wr_consumer_disarm_kick(wr_consumer *c) {
    store_release(c->m.want_kick, 0u);
}

uint32_t wr_consumer_doorbell(const wr_consumer *c) {
    return load_acquire(c->m.doorbell);
}

uint32_t wr_consumer_skip_to_tail(wr_consumer *c) {
    uint32_t tail = load_acquire(c->m.tail);
    uint32_t dropped = tail - c->head;
    c->head = tail;
    wr_consumer_release(c);
    return dropped;
}
