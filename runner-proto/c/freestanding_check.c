/*
 * freestanding_check.c - a self-test linked with -nostdlib against libwasmring.a and nothing else. That it links
 * proves the library needs no libc symbol; on x86-64 and AArch64 Linux it also runs (exit status 0 = all good),
 * using a raw exit system call because there is no libc to return to.
 */
#include "wasmring.h"

#define RING_SIZE WR_MIN_RING_SIZE
static _Alignas(4096) uint8_t region_mem[WR_DATA_OFFSET + 2u * RING_SIZE];
static uint8_t body[RING_SIZE / 2u];
static uint8_t got[RING_SIZE / 2u];

static int check_crc_sha(void) {
    static const uint8_t digits[9] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
    if (wr_crc32c(digits, 9) != 0xe3069283u) return 1;
    if (wr_crc32c_update(wr_crc32c(digits, 4), digits + 4, 5) != 0xe3069283u) return 2;
    static const uint8_t abc[3] = {'a', 'b', 'c'};
    static const uint8_t want[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                     0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                     0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    uint8_t out[32];
    wr_sha256(abc, 3, out);
    for (unsigned i = 0; i < 32; i++)
        if (out[i] != want[i]) return 3;
    return 0;
}

static int check_ring(void) {
    wr_region creator, attached;
    if (wr_region_init(&creator, region_mem, sizeof region_mem, RING_SIZE) != WR_OK) return 10;
    uint32_t bad = 99;
    if (wr_region_attach(&attached, region_mem, sizeof region_mem, &bad) != WR_OK) return 11;
    wr_ring_mem m;
    if (wr_region_ring(&creator, WR_RING_TO_RUNNER, &m) != WR_OK) return 12;
    wr_producer p;
    wr_consumer c;
    wr_producer_init(&p, &m);
    if (wr_region_ring(&attached, WR_RING_TO_RUNNER, &m) != WR_OK) return 13;
    wr_consumer_init(&c, &m);
    /* Enough traffic to wrap the ring many times, sizes 0 .. max_body, with and without body CRC. */
    uint32_t x = 12345;
    for (uint32_t i = 0; i < 2000; i++) {
        x = x * 1103515245u + 12345u;
        uint32_t len = (i % 7 == 0) ? p.max_body : (x >> 8) % 5000u;
        uint8_t flags = (i & 1u) ? WR_FLAG_BODY_CRC : 0u;
        for (uint32_t k = 0; k < len; k++) body[k] = (uint8_t)(k * 7u + i);
        if (wr_producer_try_write(&p, WR_MSG_ECHO, flags, i, body, len) != WR_OK) return 14;
        if (wr_producer_publish(&p)) return 15; /* nobody asked for a kick */
        wr_frame_header h;
        if (wr_consumer_read(&c, &h, got, sizeof got) != WR_OK) return 16;
        wr_consumer_release(&c);
        if (h.length != len || h.corr != i || h.flags != flags || h.seq != i) return 17;
        for (uint32_t k = 0; k < len; k++)
            if (got[k] != body[k]) return 18;
    }
    wr_frame_header h;
    if (wr_consumer_read(&c, &h, got, sizeof got) != WR_EMPTY) return 19;
    /* Kick protocol: armed consumer gets exactly one kick. */
    if (!wr_consumer_arm_kick(&c)) return 20;
    uint32_t bell = wr_consumer_doorbell(&c);
    if (wr_producer_try_write(&p, WR_MSG_PING, 0, 1, body, 0) != WR_OK) return 21;
    if (!wr_producer_publish(&p)) return 22;
    if (wr_consumer_doorbell(&c) != bell + 1u) return 23;
    if (wr_consumer_read(&c, &h, got, sizeof got) != WR_OK) return 24;
    /* A scribbled header is refused, and skip_to_tail resynchronises. */
    if (wr_producer_try_write(&p, WR_MSG_PING, 0, 2, body, 8) != WR_OK) return 25;
    wr_producer_publish(&p);
    region_mem[WR_DATA_OFFSET + (c.head & c.mask) + 5] ^= 0x40u;
    if (wr_consumer_read(&c, &h, got, sizeof got) != WR_ERR_HEADER_CRC) return 26;
    if (wr_consumer_skip_to_tail(&c) != 32u) return 27;
    /* Reset handshake: a bad frame, the consumer asks, the producer restarts at 0, traffic resumes. */
    if (wr_producer_try_write(&p, WR_MSG_PING, WR_FLAG_BODY_CRC, 3, body, 40) != WR_OK) return 40;
    wr_producer_publish(&p);
    region_mem[WR_DATA_OFFSET + (c.head & c.mask) + WR_FRAME_HEADER_SIZE + 7] ^= 0x01u;
    if (wr_consumer_read(&c, &h, got, sizeof got) != WR_ERR_BODY_CRC) return 41;
    wr_consumer_request_reset(&c);
    if (*m.reset_req != 1u || *m.reset_ack != 0u) return 42;
    if (wr_consumer_read(&c, &h, got, sizeof got) != WR_EMPTY || !wr_consumer_is_empty(&c)) return 43;
    uint32_t bell0 = wr_consumer_doorbell(&c);
    if (!wr_producer_service_reset(&p) || wr_producer_service_reset(&p)) return 44;
    if (*m.tail != 0u || *m.reset_ack != 1u || wr_consumer_doorbell(&c) != bell0 + 1u || p.resets != 1u) return 45;
    if (wr_consumer_is_empty(&c) || wr_consumer_arm_kick(&c)) return 57; /* acknowledged: read to complete it */
    if (wr_consumer_read(&c, &h, got, sizeof got) != WR_EMPTY || c.reset_pending || *m.head != 0u) return 46;
    if (wr_producer_try_write(&p, WR_MSG_PING, 0, 4, body, 5) != WR_OK) return 47;
    wr_producer_publish(&p);
    if (wr_consumer_read(&c, &h, got, sizeof got) != WR_OK || h.corr != 4u || h.length != 5u) return 48;
    wr_consumer_release(&c);
    /* The request is serviced by try_write too, when the producer has something to send. */
    if (wr_producer_try_write(&p, WR_MSG_PING, 0, 5, body, 5) != WR_OK) return 49;
    wr_producer_publish(&p);
    wr_consumer_request_reset(&c);
    /* Serviced, but writing waits until the consumer has moved head to 0 too (tail - head is nonsense until then). */
    if (wr_producer_try_write(&p, WR_MSG_PING, 0, 6, body, 5) != WR_ERR_BAD_INDEX || *m.reset_ack != 2u) return 50;
    if (wr_consumer_read(&c, &h, got, sizeof got) != WR_EMPTY || *m.head != 0u) return 55;
    if (wr_producer_try_write(&p, WR_MSG_PING, 0, 6, body, 5) != WR_OK) return 56;
    wr_producer_publish(&p);
    if (wr_consumer_read(&c, &h, got, sizeof got) != WR_OK || h.corr != 6u) return 51;
    wr_consumer_release(&c);
    /* Sane-tail adoption: a producer attaching over a scribbled tail repairs it to head (rounded down to 8). */
    __atomic_store_n(m.tail, 0x12345u, __ATOMIC_SEQ_CST);
    wr_producer q;
    wr_producer_init(&q, &m);
    if (q.tail != c.head || *m.tail != c.head) return 52;
    __atomic_store_n(m.tail, c.head + 2u * RING_SIZE, __ATOMIC_SEQ_CST);
    wr_producer_resync(&q);
    if (q.tail != c.head || *m.tail != c.head) return 53;
    if (wr_consumer_read(&c, &h, got, sizeof got) != WR_EMPTY) return 54;
    /* A corrupt header in the region is refused. */
    region_mem[16] ^= 1u;
    if (wr_region_attach(&attached, region_mem, sizeof region_mem, &bad) != WR_ERR_REGION || bad != 28) return 28;
    return 0;
}

int wr_check_main(void);
int wr_check_main(void) {
    int r = check_crc_sha();
    if (r == 0) r = check_ring();
    return r;
}

#if defined(__x86_64__) && defined(__linux__)
__asm__(".text\n.globl _start\n_start:\n"
        "  xor %ebp, %ebp\n"
        "  and $-16, %rsp\n"
        "  call wr_check_main\n"
        "  mov %eax, %edi\n"
        "  mov $60, %eax\n" /* exit */
        "  syscall\n"
        "  hlt\n");
#elif defined(__aarch64__) && defined(__linux__)
__asm__(".text\n.globl _start\n_start:\n"
        "  bl wr_check_main\n"
        "  mov x8, #93\n" /* exit */
        "  svc #0\n");
#else
/* Link-only check on other targets. */
void _start(void);
void _start(void) {
    (void)wr_check_main();
    for (;;) {
    }
}
#endif
