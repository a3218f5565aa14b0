/*
 * ring.h - single-producer single-consumer ring of variable-size frames, byte-compatible with
 * runner-proto/src/ring/spsc.ts.
 *
 * Control block (4 cache lines of 64 bytes; each line is written by one side only, offsets from the block):
 *   +0x00 tail      free-running u32 byte count, written only by the producer
 *   +0x04 reset-ack producer: the last reset request it carried out
 *   +0x40 head      free-running u32 byte count, written only by the consumer
 *   +0x44 reset-req consumer: set to reset-ack + 1 to ask the producer to restart the ring at 0
 *   +0x80 want-kick consumer stores 1 before it sleeps; the producer clears it (CAS 1->0) when it kicks
 *   +0xC0 doorbell  producer increments on each kick; the word a poller (or futex, or seL4 notification
 *                   handler) watches. Also bumped unconditionally by a producer that carried out a reset, and by
 *                   a consumer that requested one (on its *transmit* ring, so the peer wakes up to service it).
 * Data area: `capacity` bytes (a power of two). A record is a frame (24-byte header + body) padded to 8 bytes and
 * never split: when it does not fit before the end of the data area, the producer writes the PAD word
 * 0xffffffff at its position and continues at offset 0. The largest body is capacity/2 - 24, so a record always
 * fits once the ring has drained.
 *
 * Memory ordering (C11 / __atomic, matching JavaScript's sequentially consistent Atomics on the other side):
 *   - producer: body and header bytes are stored first, then tail with a release (seq_cst) store, so a consumer
 *     that acquires tail sees every byte of every record up to it;
 *   - consumer: tail is loaded with acquire before any record byte is read; head is stored with release after
 *     the record has been copied out, so the producer (which acquires head) never overwrites bytes still being
 *     read;
 *   - flag-and-recheck (sDDF): producer "store tail; load want-kick" and consumer "store want-kick; load tail"
 *     are both seq_cst, so at least one side sees the other's store (a store->load Dekker pattern needs the full
 *     fence that seq_cst gives; acquire/release alone would allow a lost wake-up).
 *
 * Reset handshake (resync after corruption without restarting either side; same steps as spsc.ts):
 *   1. the consumer that read a bad frame stores reset-req = reset-ack + 1 and reads nothing more;
 *   2. the producer, at its next write or service call, sees reset-req != reset-ack: it stores tail = 0, then
 *      reset-ack = reset-req, then bumps the doorbell;
 *   3. the consumer, seeing reset-ack == reset-req, stores head = 0 and reads again from offset 0.
 *   Frames in flight are lost; the request/answer layer's timeouts and retries cover them.
 *
 * Every index and length read from shared memory is validated against the ring's private geometry before it
 * is used, and record bytes are copied to private memory exactly once before they are checked, so a corrupt or
 * malicious peer can make a read fail but never make it touch memory outside the data area.
 */
#ifndef WR_RING_H
#define WR_RING_H

#include "frame.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WR_PAD_WORD 0xffffffffu
#define WR_RECORD_ALIGN 8u
#define WR_CTRL_TAIL 0x00u
#define WR_CTRL_RESET_ACK 0x04u
#define WR_CTRL_HEAD 0x40u
#define WR_CTRL_RESET_REQ 0x44u
#define WR_CTRL_WANT_KICK 0x80u
#define WR_CTRL_DOORBELL 0xc0u
#define WR_CTRL_SIZE 0x100u
/* Smallest data area this library accepts (the region layout itself asks for 64 KiB). */
#define WR_RING_MIN_CAPACITY 64u

/* Bytes a frame with a body of `len` bytes occupies in the ring (header + body, padded to 8). */
static inline uint32_t wr_record_size(uint32_t len) {
    return (WR_FRAME_HEADER_SIZE + len + WR_RECORD_ALIGN - 1u) & ~(WR_RECORD_ALIGN - 1u);
}
/* The largest body a ring of `capacity` bytes accepts. */
static inline uint32_t wr_max_body_for(uint32_t capacity) {
    return capacity / 2u - WR_FRAME_HEADER_SIZE;
}

/* Pointers into one ring's control block and data area, plus the private copy of its geometry. */
typedef struct wr_ring_mem {
    uint32_t *tail;
    uint32_t *reset_ack;
    uint32_t *head;
    uint32_t *reset_req;
    uint32_t *want_kick;
    uint32_t *doorbell;
    volatile uint8_t *data;
    uint32_t capacity;
} wr_ring_mem;

/*
 * Builds a wr_ring_mem from a control block (64-byte aligned, WR_CTRL_SIZE bytes) and a data area of `capacity`
 * bytes (8-byte aligned, power of two >= WR_RING_MIN_CAPACITY).
 */
wr_status wr_ring_mem_init(wr_ring_mem *m, void *ctrl, volatile uint8_t *data, uint32_t capacity);

typedef struct wr_producer {
    wr_ring_mem m;
    uint32_t mask;
    uint32_t max_body;
    uint32_t tail;  /* private: written but maybe not yet published */
    uint32_t seq;   /* next frame sequence number */
    uint32_t kicks; /* kicks actually requested by publish() */
    uint32_t resets; /* reset requests carried out */
} wr_producer;

typedef struct wr_consumer {
    wr_ring_mem m;
    uint32_t mask;
    uint32_t max_body;
    uint32_t head; /* private: consumed but maybe not yet released */
    bool reset_pending; /* requested a reset that the producer has not acknowledged yet */
} wr_consumer;

/*
 * Producer: adopts the published tail if it is plausible (8-aligned and within `capacity` of head); otherwise (a
 * crashed or scribbling writer left it) stores head rounded down to 8 as the tail, so the ring reads as empty.
 * The producer owns tail, so it may repair it. Consumer: adopts the published head.
 */
void wr_producer_init(wr_producer *p, const wr_ring_mem *m);
void wr_consumer_init(wr_consumer *c, const wr_ring_mem *m);

/* Bytes free right now, as the producer sees them (0 if the consumer's head is nonsense). */
uint32_t wr_producer_free(const wr_producer *p);

/*
 * Carries out a pending reset request (reset-req != reset-ack): tail = 0, reset-ack = reset-req, doorbell + 1.
 * Returns true if it did; the caller then signals the peer as after a kick (a consumer waits for the ack).
 * wr_producer_try_write calls it first; a producer with nothing to send calls it from its service loop.
 */
bool wr_producer_service_reset(wr_producer *p);

/* The consumer's reset-request word. */
uint32_t wr_producer_reset_requested(const wr_producer *p);

/* A reset request waits to be carried out (reset-req != reset-ack): a sleeping service loop should wake. */
bool wr_producer_reset_pending(const wr_producer *p);

/* Bumps the doorbell unconditionally: after requesting a reset on the other ring, wake the peer this way. */
void wr_producer_ring_doorbell(wr_producer *p);

/*
 * Writes one frame if it fits, after servicing a pending reset. Does not publish: call wr_producer_publish() after
 * a batch.
 * WR_OK, WR_FULL (back-pressure: retry when the consumer has moved head), WR_ERR_TOO_LONG (len > max_body),
 * WR_ERR_BAD_INDEX (the consumer's head is not within `capacity` of tail: refuse to write until a reset),
 * WR_ERR_ARG (unknown flag bits, NULL body with len > 0).
 */
wr_status wr_producer_try_write(wr_producer *p, uint8_t type, uint8_t flags, uint32_t corr, const uint8_t *body,
                                uint32_t len);

/*
 * Makes written frames visible, then applies flag-and-recheck: returns true if the consumer asked for a kick
 * (its want-kick flag was set and this call cleared it and rang the doorbell word). The caller then signals the
 * peer by whatever the medium offers (nothing more for a poller, a futex wake, an seL4 notification).
 */
bool wr_producer_publish(wr_producer *p);

/* Forgets private state and adopts the published tail, with the same plausibility repair as init. */
void wr_producer_resync(wr_producer *p);

/*
 * Reads the next frame: header into *h, body copied into body_buf (body_cap bytes; give max_body to never see
 * WR_ERR_ARG). Head moves (privately) only on WR_OK; call wr_consumer_release() to publish it.
 * WR_EMPTY when nothing is published, or while a reset this consumer requested is not yet acknowledged (the call
 * that sees the ack completes the reset: head = 0, published). A fault (bad-index, overrun, bad-magic, header-crc,
 * bad-flags, too-long, body-crc) when what is published is not a valid frame: nothing after it can be trusted, so
 * call wr_consumer_request_reset() and wake the peer (wr_producer_ring_doorbell on the other ring + its signal).
 */
wr_status wr_consumer_read(wr_consumer *c, wr_frame_header *h, uint8_t *body_buf, uint32_t body_cap);

/* Publishes head so the producer can reuse the space. */
void wr_consumer_release(wr_consumer *c);

/*
 * Nothing to read. While a requested reset is unacknowledged this is true (sleeping is safe: the producer bumps
 * the doorbell when it acknowledges); once acknowledged it is false until a read completes the reset (head = 0),
 * because the producer cannot write until then.
 */
bool wr_consumer_is_empty(const wr_consumer *c);

/* Step 1 of the reset handshake: reset-req = reset-ack + 1; reads return WR_EMPTY until it is acknowledged. */
void wr_consumer_request_reset(wr_consumer *c);

/* True while a requested reset is unacknowledged; when the ack has arrived, completes it (head = 0) first. */
bool wr_consumer_reset_in_progress(wr_consumer *c);

/*
 * Consumer half of flag-and-recheck: asks for a kick, then looks again. true: the ring is still empty with the
 * flag set, safe to sleep until the doorbell moves. false: work arrived and the flag was withdrawn.
 */
bool wr_consumer_arm_kick(wr_consumer *c);
void wr_consumer_disarm_kick(wr_consumer *c);
uint32_t wr_consumer_doorbell(const wr_consumer *c);

/*
 * Drops everything published (a new session starts, as attachRing does): returns the number of bytes skipped.
 * Not a recovery from corruption: after a fault the bytes up to tail cannot be trusted to be frames, so use the
 * reset handshake instead.
 */
uint32_t wr_consumer_skip_to_tail(wr_consumer *c);

#ifdef __cplusplus
}
#endif
#endif
