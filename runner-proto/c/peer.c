/*
 * peer.c - a small hosted (libc, POSIX) peer for the wasmring channel, built on the freestanding library.
 *
 *   peer --region PATH [--ring-size N]          create the region (as the TypeScript runner does) and serve
 *   peer --region PATH --attach                 attach to a region someone else created, and serve
 *   peer --encode-vector [--type N --flags N --seq N --corr N --body-hex HEX]
 *                                               print the hex of one encoded frame
 *   peer --decode-vector HEX [--max-body N]     decode a frame, print it as one line of JSON
 *   peer --vectors                              print every test vector of docs/protocol.md, one per line
 *
 * Serving answers requests the way runner-proto's runner does, without an engine: HELLO, PING, ECHO, MODULE_HAVE,
 * MODULE_BEGIN/CHUNK/END (reassembled, bounded, verified against the sha256 digest), MODULE_FORGET. Everything
 * else is answered with ERROR AGT_ERR_PROTOCOL. By default a creator takes the runner side (consumes ring 0,
 * produces ring 1, side B liveness words) and an attacher the agent side; --side overrides.
 *
 * Waiting is spin-then-sleep polling with the want-kick flag protocol; SIGTERM/SIGINT end it cleanly (side state
 * back to 0, region unmapped; the file is left for its owner). "READY" goes to stdout once the region is usable.
 *
 * Corruption: a frame that fails its checks makes the consumer request a ring reset (and ring the peer's doorbell
 * on the other ring so a sleeping peer services it); the peer keeps serving. As a producer it carries out the
 * other side's reset requests from its service loop and before every write.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wasmring.h"

#define PROTOCOL_VERSION 1u
#define HEARTBEAT_NS 100000000ull /* 100 ms, like the TypeScript side */
#define SPIN_NS 50000ull          /* busy-poll this long before arming the kick flag */
#define SEND_TIMEOUT_NS 10000000000ull
#define MAX_TRANSFERS 4
#define MAX_HAVE 256
#define JSON_MAX_DEPTH 32
#define DRAIN_BATCH 256

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL); /* EINTR is fine: the caller re-checks its condition and stop_requested */
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Output buffer for JSON bodies                                                                                */

typedef struct {
    char *p;
    size_t len;
    size_t cap;
    int overflow;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->overflow || b->cap - b->len < n) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_puts(sbuf *b, const char *s) {
    sb_putn(b, s, strlen(s));
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->overflow = 1;
        return;
    }
    b->len += (size_t)n;
}

/* A JSON string literal; control characters, quotes and backslashes escaped. */
static void sb_json_string(sbuf *b, const char *s, size_t n) {
    sb_putn(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_putn(b, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_putn(b, (const char *)&c, 1);
        }
    }
    sb_putn(b, "\"", 1);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* A careful, bounded JSON scanner: validates the structure of the whole body and finds top-level members.      */

typedef struct {
    const char *p;
    size_t n;
} span;

typedef struct {
    const char *s;
    size_t n;
    size_t i;
} jscan;

static void js_ws(jscan *j) {
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r')) j->i++;
}

static int js_string(jscan *j) {
    if (j->i >= j->n || j->s[j->i] != '"') return -1;
    j->i++;
    while (j->i < j->n) {
        unsigned char c = (unsigned char)j->s[j->i++];
        if (c == '"') return 0;
        if (c < 0x20) return -1;
        if (c == '\\') {
            if (j->i >= j->n) return -1;
            char e = j->s[j->i++];
            if (e == 'u') {
                for (int k = 0; k < 4; k++) {
                    if (j->i >= j->n) return -1;
                    char h = j->s[j->i++];
                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F'))) return -1;
                }
            } else if (!strchr("\"\\/bfnrt", e) || e == 0) {
                return -1;
            }
        }
    }
    return -1;
}

static int js_number(jscan *j) {
    size_t start = j->i;
    if (j->i < j->n && j->s[j->i] == '-') j->i++;
    if (j->i >= j->n) return -1;
    if (j->s[j->i] == '0') {
        j->i++;
    } else if (j->s[j->i] >= '1' && j->s[j->i] <= '9') {
        while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') j->i++;
    } else {
        return -1;
    }
    if (j->i < j->n && j->s[j->i] == '.') {
        j->i++;
        size_t d = j->i;
        while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') j->i++;
        if (j->i == d) return -1;
    }
    if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
        j->i++;
        if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-')) j->i++;
        size_t d = j->i;
        while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') j->i++;
        if (j->i == d) return -1;
    }
    return j->i > start ? 0 : -1;
}

static int js_literal(jscan *j, const char *lit) {
    size_t l = strlen(lit);
    if (j->n - j->i < l || memcmp(j->s + j->i, lit, l) != 0) return -1;
    j->i += l;
    return 0;
}

static int js_value(jscan *j, int depth);

static int js_container(jscan *j, int depth, char open, char close, int is_object) {
    if (depth > JSON_MAX_DEPTH) return -1;
    if (j->i >= j->n || j->s[j->i] != open) return -1;
    j->i++;
    js_ws(j);
    if (j->i < j->n && j->s[j->i] == close) {
        j->i++;
        return 0;
    }
    for (;;) {
        js_ws(j);
        if (is_object) {
            if (js_string(j) != 0) return -1;
            js_ws(j);
            if (j->i >= j->n || j->s[j->i] != ':') return -1;
            j->i++;
            js_ws(j);
        }
        if (js_value(j, depth + 1) != 0) return -1;
        js_ws(j);
        if (j->i >= j->n) return -1;
        if (j->s[j->i] == ',') {
            j->i++;
            continue;
        }
        if (j->s[j->i] == close) {
            j->i++;
            return 0;
        }
        return -1;
    }
}

static int js_value(jscan *j, int depth) {
    if (j->i >= j->n) return -1;
    switch (j->s[j->i]) {
    case '{': return js_container(j, depth, '{', '}', 1);
    case '[': return js_container(j, depth, '[', ']', 0);
    case '"': return js_string(j);
    case 't': return js_literal(j, "true");
    case 'f': return js_literal(j, "false");
    case 'n': return js_literal(j, "null");
    default: return js_number(j);
    }
}

/*
 * Checks that `body` is exactly one JSON object (nothing after it) and, if `key` is not NULL, finds the value of
 * the top-level member `key` (compared on its raw, unescaped spelling; the last duplicate wins, as in
 * JSON.parse). Returns 1 found, 0 valid but absent, -1 not a valid JSON object.
 */
static int json_member(const uint8_t *body, size_t len, const char *key, span *out) {
    jscan j = {(const char *)body, len, 0};
    size_t klen = key ? strlen(key) : 0;
    int found = 0;
    js_ws(&j);
    if (j.i >= j.n || j.s[j.i] != '{') return -1;
    j.i++;
    js_ws(&j);
    if (j.i < j.n && j.s[j.i] == '}') {
        j.i++;
    } else {
        for (;;) {
            js_ws(&j);
            size_t ks = j.i;
            if (js_string(&j) != 0) return -1;
            span k = {j.s + ks + 1, j.i - ks - 2};
            js_ws(&j);
            if (j.i >= j.n || j.s[j.i] != ':') return -1;
            j.i++;
            js_ws(&j);
            size_t vs = j.i;
            if (js_value(&j, 1) != 0) return -1;
            if (key && k.n == klen && memcmp(k.p, key, klen) == 0) {
                out->p = j.s + vs;
                out->n = j.i - vs;
                found = 1;
            }
            js_ws(&j);
            if (j.i >= j.n) return -1;
            if (j.s[j.i] == ',') {
                j.i++;
                continue;
            }
            if (j.s[j.i] == '}') {
                j.i++;
                break;
            }
            return -1;
        }
    }
    js_ws(&j);
    return j.i == j.n ? found : -1;
}

/* A string value without escapes, copied into out (cap bytes, NUL-terminated). -1 if not such a string. */
static int json_plain_string(span v, char *out, size_t cap, size_t *len) {
    if (v.n < 2 || v.p[0] != '"' || v.p[v.n - 1] != '"') return -1;
    size_t n = v.n - 2;
    if (n + 1 > cap) return -1;
    for (size_t i = 0; i < n; i++)
        if (v.p[1 + i] == '\\') return -1;
    memcpy(out, v.p + 1, n);
    out[n] = 0;
    *len = n;
    return 0;
}

/* A non-negative integer value no larger than 2^53 - 1 (JSON numbers are doubles on the other side). */
static int json_uint(span v, uint64_t *out) {
    if (v.n == 0 || v.n > 16) return -1;
    if (v.n > 1 && v.p[0] == '0') return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') return -1;
        x = x * 10u + (uint64_t)(v.p[i] - '0');
    }
    if (x > 9007199254740991ull) return -1;
    *out = x;
    return 0;
}

/* Whether a JSON array value contains the integer `want` (elements that are not plain integers are skipped). */
static int json_array_has_uint(span v, uint64_t want) {
    jscan j = {v.p, v.n, 0};
    if (j.n == 0 || j.s[0] != '[') return 0;
    j.i = 1;
    for (;;) {
        js_ws(&j);
        if (j.i >= j.n || j.s[j.i] == ']') return 0;
        size_t s = j.i;
        if (js_value(&j, 2) != 0) return 0;
        uint64_t x;
        span e = {j.s + s, j.i - s};
        if (json_uint(e, &x) == 0 && x == want) return 1;
        js_ws(&j);
        if (j.i < j.n && j.s[j.i] == ',') j.i++;
    }
}

/* ------------------------------------------------------------------------------------------------------------ */
/* The peer                                                                                                      */

typedef struct {
    int used;
    uint32_t corr;
    char digest[WR_DIGEST_TEXT_LEN + 1];
    uint64_t size;
    uint64_t received;
    uint8_t *buf;
} transfer;

typedef struct {
    wr_region region;
    uint32_t side;
    uint32_t epoch;
    wr_producer tx;
    wr_consumer rx;
    uint8_t *rxbuf;
    char *json; /* scratch for JSON answers */
    size_t json_cap;
    uint64_t max_module;
    uint64_t max_sleep_ns;
    uint64_t last_beat;
    transfer transfers[MAX_TRANSFERS];
    char have[MAX_HAVE][WR_DIGEST_TEXT_LEN + 1];
    unsigned have_count;
    unsigned have_next;
    int verbose;
    /* stats */
    uint64_t frames_in, frames_out, faults, kicks_waited;
} peer;

/* Carries out the other side's reset request on our transmit ring, if there is one. */
static void service_reset(peer *p) {
    if (wr_producer_service_reset(&p->tx)) {
        fprintf(stderr, "peer: ring reset carried out (request %" PRIu32 ")\n", wr_producer_reset_requested(&p->tx));
    }
}

static void tick(peer *p) {
    uint64_t t = now_ns();
    if (t - p->last_beat >= HEARTBEAT_NS) {
        wr_region_heartbeat(&p->region, p->side);
        p->last_beat = t;
    }
}

/* Sends one frame, waiting (bounded) for space when the ring is full. 0 on success. */
static int send_frame(peer *p, uint8_t type, uint8_t flags, uint32_t corr, const uint8_t *body, uint32_t len) {
    uint64_t deadline = 0;
    uint64_t backoff = 0;
    for (;;) {
        wr_status s = wr_producer_try_write(&p->tx, type, flags, corr, body, len);
        if (s == WR_OK) {
            p->frames_out++;
            /* A kick is the doorbell increment publish() already made; a poller sees it move. */
            (void)wr_producer_publish(&p->tx);
            return 0;
        }
        /* BAD_INDEX: the consumer's head is nonsense (or a reset is half done): like FULL, wait for it to move. */
        if (s != WR_FULL && s != WR_ERR_BAD_INDEX) {
            fprintf(stderr, "peer: cannot send frame type 0x%02x (%u bytes): %s\n", type, len, wr_status_name(s));
            return -1;
        }
        uint64_t t = now_ns();
        if (deadline == 0) deadline = t + SEND_TIMEOUT_NS;
        if (t > deadline) {
            fprintf(stderr, "peer: ring full for 10 s, dropping frame type 0x%02x\n", type);
            return -1;
        }
        if (stop_requested) return -1;
        tick(p);
        if (backoff == 0) {
            backoff = 1000;
        } else {
            sleep_ns(backoff);
            backoff = backoff * 2 > p->max_sleep_ns ? p->max_sleep_ns : backoff * 2;
        }
    }
}

static int reply_json(peer *p, uint8_t type, uint32_t corr, const sbuf *b) {
    if (b->overflow) {
        fprintf(stderr, "peer: answer too long\n");
        return -1;
    }
    return send_frame(p, type, WR_FLAG_JSON | WR_FLAG_BODY_CRC, corr, (const uint8_t *)b->p, (uint32_t)b->len);
}

static sbuf new_answer(peer *p) {
    sbuf b = {p->json, 0, p->json_cap, 0};
    return b;
}

static int reply_error(peer *p, uint32_t corr, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int reply_error(peer *p, uint32_t corr, const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->verbose) fprintf(stderr, "peer: ERROR %s: %s\n", code, msg);
    sbuf b = new_answer(p);
    sb_puts(&b, "{\"code\":");
    sb_json_string(&b, code, strlen(code));
    sb_puts(&b, ",\"message\":");
    sb_json_string(&b, msg, strlen(msg));
    sb_puts(&b, ",\"details\":{\"peer\":\"c-peer\"}}");
    return reply_json(p, WR_MSG_ERROR, corr, &b);
}

static const char *type_name(uint8_t t) {
    switch (t) {
    case WR_MSG_HELLO: return "HELLO";
    case WR_MSG_HELLO_ACK: return "HELLO_ACK";
    case WR_MSG_PING: return "PING";
    case WR_MSG_PONG: return "PONG";
    case WR_MSG_ECHO: return "ECHO";
    case WR_MSG_MODULE_HAVE: return "MODULE_HAVE";
    case WR_MSG_MODULE_BEGIN: return "MODULE_BEGIN";
    case WR_MSG_MODULE_CHUNK: return "MODULE_CHUNK";
    case WR_MSG_MODULE_END: return "MODULE_END";
    case WR_MSG_MODULE_FORGET: return "MODULE_FORGET";
    case WR_MSG_RUN: return "RUN";
    case WR_MSG_STDOUT: return "STDOUT";
    case WR_MSG_STDERR: return "STDERR";
    case WR_MSG_EXIT: return "EXIT";
    case WR_MSG_KILL: return "KILL";
    case WR_MSG_RESULT: return "RESULT";
    case WR_MSG_ERROR: return "ERROR";
    default: return "?";
    }
}

/* Reads the "digest" member of a JSON body into out; replies ERROR and returns -1 when absent or malformed. */
static int body_digest(peer *p, const wr_frame_header *h, const uint8_t *body, char out[WR_DIGEST_TEXT_LEN + 1]) {
    span v;
    size_t n = 0;
    int r = json_member(body, h->length, "digest", &v);
    if (r < 0) {
        reply_error(p, h->corr, "AGT_ERR_PROTOCOL", "%s body is not a valid JSON object", type_name(h->type));
        return -1;
    }
    if (r == 0 || json_plain_string(v, out, WR_DIGEST_TEXT_LEN + 1, &n) != 0 || !wr_digest_text_valid(out, n)) {
        reply_error(p, h->corr, "AGT_ERR_PROTOCOL", "%s body field digest: expected sha256:<64 lowercase hex>",
                    type_name(h->type));
        return -1;
    }
    return 0;
}

static int have_index(const peer *p, const char *digest) {
    for (unsigned i = 0; i < p->have_count; i++)
        if (strcmp(p->have[i], digest) == 0) return (int)i;
    return -1;
}

static void have_add(peer *p, const char *digest) {
    if (have_index(p, digest) >= 0) return;
    /* Bounded: the oldest digest is forgotten once MAX_HAVE are held. */
    memcpy(p->have[p->have_next], digest, WR_DIGEST_TEXT_LEN + 1);
    p->have_next = (p->have_next + 1) % MAX_HAVE;
    if (p->have_count < MAX_HAVE) p->have_count++;
}

static transfer *transfer_for(peer *p, uint32_t corr) {
    for (int i = 0; i < MAX_TRANSFERS; i++)
        if (p->transfers[i].used && p->transfers[i].corr == corr) return &p->transfers[i];
    return NULL;
}

static void transfer_drop(transfer *t) {
    free(t->buf);
    memset(t, 0, sizeof *t);
}

static void on_hello(peer *p, const wr_frame_header *h, const uint8_t *body) {
    span v;
    int r = json_member(body, h->length, "versions", &v);
    if (r < 0) {
        reply_error(p, h->corr, "AGT_ERR_PROTOCOL", "HELLO body is not a valid JSON object");
        return;
    }
    if (r == 0 || !json_array_has_uint(v, PROTOCOL_VERSION)) {
        reply_error(p, h->corr, "AGT_ERR_PROTOCOL", "no common protocol version: peer speaks %u", PROTOCOL_VERSION);
        return;
    }
    /* A HELLO starts a new agent session: transfers left half-done by a previous agent will never finish. */
    for (int i = 0; i < MAX_TRANSFERS; i++)
        if (p->transfers[i].used) transfer_drop(&p->transfers[i]);
    sbuf b = new_answer(p);
    sb_printf(&b,
              "{\"version\":%u,\"epoch\":%" PRIu32 ",\"capabilities\":[\"module-transfer\"],\"engines\":[\"c-peer\"],"
              "\"modules\":%u,\"software\":\"wasmring-c-peer/0.1\"}",
              PROTOCOL_VERSION, p->epoch, p->have_count);
    reply_json(p, WR_MSG_RESULT, h->corr, &b);
}

static void on_module_have(peer *p, const wr_frame_header *h, const uint8_t *body) {
    char digest[WR_DIGEST_TEXT_LEN + 1];
    if (body_digest(p, h, body, digest) != 0) return;
    sbuf b = new_answer(p);
    sb_printf(&b, "{\"have\":%s}", have_index(p, digest) >= 0 ? "true" : "false");
    reply_json(p, WR_MSG_RESULT, h->corr, &b);
}

static void on_module_forget(peer *p, const wr_frame_header *h, const uint8_t *body) {
    char digest[WR_DIGEST_TEXT_LEN + 1];
    if (body_digest(p, h, body, digest) != 0) return;
    int i = have_index(p, digest);
    if (i >= 0) p->have[i][0] = 0; /* an empty entry never matches a valid digest */
    sbuf b = new_answer(p);
    sb_printf(&b, "{\"forgotten\":%s}", i >= 0 ? "true" : "false");
    reply_json(p, WR_MSG_RESULT, h->corr, &b);
}

static void on_module_begin(peer *p, const wr_frame_header *h, const uint8_t *body) {
    char digest[WR_DIGEST_TEXT_LEN + 1];
    if (body_digest(p, h, body, digest) != 0) return;
    span v;
    uint64_t size = 0, chunk = 0;
    if (json_member(body, h->length, "size", &v) != 1 || json_uint(v, &size) != 0) {
        reply_error(p, h->corr, "AGT_ERR_PROTOCOL", "MODULE_BEGIN body field size: expected a non-negative integer");
        return;
    }
    if (json_member(body, h->length, "chunkSize", &v) != 1 || json_uint(v, &chunk) != 0 || chunk == 0) {
        reply_error(p, h->corr, "AGT_ERR_PROTOCOL", "MODULE_BEGIN body field chunkSize: expected a positive integer");
        return;
    }
    if (size > p->max_module) {
        reply_error(p, h->corr, "AGT_ERR_TOO_LARGE", "module of %" PRIu64 " bytes exceeds the peer limit of %" PRIu64,
                    size, p->max_module);
        return;
    }
    transfer *t = transfer_for(p, h->corr);
    if (t) transfer_drop(t); /* a restarted transfer under the same id replaces the old one */
    for (int i = 0; i < MAX_TRANSFERS && !t; i++)
        if (!p->transfers[i].used) t = &p->transfers[i];
    if (!t) {
        reply_error(p, h->corr, "AGT_ERR_PROTOCOL", "too many module transfers in flight (max %d)", MAX_TRANSFERS);
        return;
    }
    uint8_t *buf = malloc(size ? (size_t)size : 1u);
    if (!buf) {
        reply_error(p, h->corr, "AGT_ERR_TOO_LARGE", "cannot allocate %" PRIu64 " bytes for the module", size);
        return;
    }
    t->used = 1;
    t->corr = h->corr;
    memcpy(t->digest, digest, sizeof t->digest);
    t->size = size;
    t->received = 0;
    t->buf = buf;
    sbuf b = new_answer(p);
    sb_puts(&b, "{\"accepted\":true}");
    reply_json(p, WR_MSG_RESULT, h->corr, &b);
}

static void on_module_chunk(peer *p, const wr_frame_header *h, const uint8_t *body) {
    transfer *t = transfer_for(p, h->corr);
    if (!t) {
        if (p->verbose) fprintf(stderr, "peer: module chunk for unknown transfer %" PRIu32 "\n", h->corr);
        return;
    }
    if (h->length > t->size - t->received) {
        reply_error(p, h->corr, "AGT_ERR_PROTOCOL",
                    "module chunk overflows the announced size %" PRIu64 " (have %" PRIu64 ", chunk %" PRIu32 ")",
                    t->size, t->received, h->length);
        transfer_drop(t);
        return;
    }
    memcpy(t->buf + t->received, body, h->length);
    t->received += h->length;
}

static void on_module_end(peer *p, const wr_frame_header *h, const uint8_t *body) {
    char digest[WR_DIGEST_TEXT_LEN + 1];
    if (body_digest(p, h, body, digest) != 0) return;
    transfer *t = transfer_for(p, h->corr);
    if (!t) {
        reply_error(p, h->corr, "AGT_ERR_PROTOCOL", "MODULE_END for unknown transfer %" PRIu32, h->corr);
        return;
    }
    if (strcmp(t->digest, digest) != 0) {
        reply_error(p, h->corr, "AGT_ERR_PROTOCOL", "MODULE_END digest %s differs from MODULE_BEGIN %s", digest, t->digest);
        transfer_drop(t);
        return;
    }
    if (t->received != t->size) {
        reply_error(p, h->corr, "AGT_ERR_PROTOCOL", "module transfer incomplete: %" PRIu64 " of %" PRIu64 " bytes",
                    t->received, t->size);
        transfer_drop(t);
        return;
    }
    uint8_t hash[WR_SHA256_SIZE];
    char got[WR_DIGEST_TEXT_LEN + 1];
    wr_sha256(t->buf, (size_t)t->size, hash);
    wr_sha256_digest_text(hash, got);
    got[WR_DIGEST_TEXT_LEN] = 0;
    if (strcmp(got, t->digest) != 0) {
        reply_error(p, h->corr, "AGT_ERR_DIGEST_MISMATCH", "module bytes hash to %s, announced %s", got, t->digest);
        transfer_drop(t);
        return;
    }
    if (p->verbose) fprintf(stderr, "peer: module %s received (%" PRIu64 " bytes)\n", got, t->size);
    have_add(p, got);
    transfer_drop(t);
    sbuf b = new_answer(p);
    sb_printf(&b, "{\"digest\":\"%s\",\"kind\":\"command\"}", got);
    reply_json(p, WR_MSG_RESULT, h->corr, &b);
}

static void handle(peer *p, const wr_frame_header *h, const uint8_t *body) {
    switch (h->type) {
    case WR_MSG_HELLO: on_hello(p, h, body); break;
    case WR_MSG_PING: {
        sbuf b = new_answer(p);
        sb_printf(&b, "{\"epoch\":%" PRIu32 ",\"modules\":%u,\"runs\":0}", p->epoch, p->have_count);
        reply_json(p, WR_MSG_RESULT, h->corr, &b);
        break;
    }
    case WR_MSG_ECHO: send_frame(p, WR_MSG_RESULT, h->flags, h->corr, body, h->length); break;
    case WR_MSG_MODULE_HAVE: on_module_have(p, h, body); break;
    case WR_MSG_MODULE_BEGIN: on_module_begin(p, h, body); break;
    case WR_MSG_MODULE_CHUNK: on_module_chunk(p, h, body); break;
    case WR_MSG_MODULE_END: on_module_end(p, h, body); break;
    case WR_MSG_MODULE_FORGET: on_module_forget(p, h, body); break;
    case WR_MSG_RESULT:
    case WR_MSG_ERROR:
    case WR_MSG_STDOUT:
    case WR_MSG_STDERR:
    case WR_MSG_EXIT: break; /* this peer makes no requests and runs nothing */
    default:
        reply_error(p, h->corr, "AGT_ERR_PROTOCOL", "unsupported frame type %s (0x%02x) on the C peer", type_name(h->type),
                    h->type);
    }
}

/* Reads and handles up to DRAIN_BATCH frames; returns how many. */
static int drain(peer *p) {
    int n = 0;
    while (n < DRAIN_BATCH) {
        wr_frame_header h;
        wr_status s = wr_consumer_read(&p->rx, &h, p->rxbuf, p->rx.max_body);
        if (s == WR_EMPTY) break;
        if (s != WR_OK) {
            /*
             * Nothing after a bad frame can be trusted: ask the producer to restart the ring at 0, and ring its
             * doorbell (our transmit ring's) so a sleeping peer services the request at once. Reads return
             * WR_EMPTY until it has; the requests lost with the ring time out on the other side.
             */
            p->faults++;
            wr_consumer_request_reset(&p->rx);
            wr_producer_ring_doorbell(&p->tx);
            fprintf(stderr, "peer: ring fault %s: reset requested (request %" PRIu32 ")\n", wr_status_name(s),
                    __atomic_load_n(p->rx.m.reset_req, __ATOMIC_SEQ_CST));
            break;
        }
        n++;
        p->frames_in++;
        wr_consumer_release(&p->rx); /* the body is in rxbuf: the space can be reused now */
        handle(p, &h, p->rxbuf);
    }
    return n;
}

static void serve(peer *p) {
    int resetting = 0;
    while (!stop_requested) {
        tick(p);
        service_reset(p);
        int n = drain(p);
        if (resetting && !p->rx.reset_pending) fprintf(stderr, "peer: ring reset complete, reading from 0\n");
        resetting = p->rx.reset_pending;
        if (n > 0) continue;
        /* Spin briefly: the lowest latency when the other side answers at once. */
        uint64_t spin_end = now_ns() + SPIN_NS;
        int work = 0;
        while (now_ns() < spin_end) {
            if (!wr_consumer_is_empty(&p->rx) || wr_producer_reset_pending(&p->tx)) {
                work = 1;
                break;
            }
        }
        if (work) continue;
        /* Flag-and-recheck, then sleep with back-off until the doorbell or tail moves, or a reset is requested. */
        if (!wr_consumer_arm_kick(&p->rx)) continue;
        uint32_t bell = wr_consumer_doorbell(&p->rx);
        uint64_t nap = 20000;
        while (!stop_requested) {
            sleep_ns(nap);
            nap = nap * 2 > p->max_sleep_ns ? p->max_sleep_ns : nap * 2;
            tick(p);
            if (wr_consumer_doorbell(&p->rx) != bell) {
                p->kicks_waited++;
                break;
            }
            if (!wr_consumer_is_empty(&p->rx) || wr_producer_reset_pending(&p->tx)) break;
        }
        wr_consumer_disarm_kick(&p->rx);
    }
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Region setup                                                                                                  */

static uint32_t new_epoch(void) {
    uint32_t e = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &e, sizeof e) != (ssize_t)sizeof e) e = 0;
        close(fd);
    }
    if (e == 0) e = (uint32_t)now_ns() ^ ((uint32_t)getpid() << 16);
    e &= 0x7fffffffu;
    return e == 0 ? 1u : e;
}

typedef struct {
    void *base;
    size_t size;
} mapping;

static int create_region(const char *path, uint32_t ring_size, mapping *m, wr_region *r) {
    uint64_t size = wr_region_size_for(ring_size);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0660);
    if (fd < 0) {
        fprintf(stderr, "peer: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, "peer: cannot stat %s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    /* Like createRing: keep the inode (and its size) when it already fits exactly; else start from zeroes. */
    if ((uint64_t)st.st_size != size) {
        if (ftruncate(fd, 0) != 0 || ftruncate(fd, (off_t)size) != 0) {
            fprintf(stderr, "peer: cannot size %s: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    void *base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        fprintf(stderr, "peer: mmap of %s failed: %s\n", path, strerror(errno));
        return -1;
    }
    wr_status s = wr_region_init(r, base, (size_t)size, ring_size);
    if (s != WR_OK) {
        fprintf(stderr, "peer: cannot initialise the region: %s\n", wr_status_name(s));
        munmap(base, (size_t)size);
        return -1;
    }
    m->base = base;
    m->size = (size_t)size;
    return 0;
}

static int attach_region(const char *path, uint64_t timeout_ns, mapping *m, wr_region *r) {
    uint64_t deadline = now_ns() + timeout_ns;
    char why[256] = "not tried";
    while (!stop_requested) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            snprintf(why, sizeof why, "cannot open: %s", strerror(errno));
        } else {
            struct stat st;
            if (fstat(fd, &st) != 0 || st.st_size < (off_t)WR_DATA_OFFSET) {
                snprintf(why, sizeof why, "file is too small");
                close(fd);
            } else {
                size_t size = (size_t)st.st_size;
                void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                close(fd);
                if (base == MAP_FAILED) {
                    snprintf(why, sizeof why, "mmap failed: %s", strerror(errno));
                } else {
                    uint32_t bad = 0;
                    wr_status s = wr_region_attach(r, base, size, &bad);
                    if (s == WR_OK) {
                        m->base = base;
                        m->size = size;
                        return 0;
                    }
                    snprintf(why, sizeof why, "region header: bad field at byte %" PRIu32, bad);
                    munmap(base, size);
                }
            }
        }
        if (now_ns() > deadline) break;
        sleep_ns(50000000ull);
    }
    fprintf(stderr, "peer: no region at %s: %s\n", path, why);
    return -1;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Test-vector modes                                                                                             */

static int hex_decode(const char *hex, uint8_t **out, size_t *len) {
    size_t n = strlen(hex);
    if (n % 2 != 0) return -1;
    uint8_t *b = malloc(n / 2 + 1);
    if (!b) return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = hex[2 * i + (size_t)k];
            unsigned d;
            if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
            else {
                free(b);
                return -1;
            }
            v = v * 16 + d;
        }
        b[i] = (uint8_t)v;
    }
    *out = b;
    *len = n / 2;
    return 0;
}

static void hex_print(const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++) printf("%02x", b[i]);
}

static int encode_vector(unsigned type, unsigned flags, uint32_t seq, uint32_t corr, const char *body_hex) {
    static const char sample[] = "{\"hello\":\"wasmring\"}";
    uint8_t *body = NULL;
    size_t len = 0;
    if (body_hex) {
        if (hex_decode(body_hex, &body, &len) != 0) {
            fprintf(stderr, "peer: --body-hex is not hex\n");
            return 2;
        }
    } else {
        len = sizeof sample - 1;
        body = malloc(len + 1);
        if (!body) return 2;
        memcpy(body, sample, len);
    }
    uint8_t *out = malloc(WR_FRAME_HEADER_SIZE + len);
    size_t written = 0;
    if (!out || len > 0xffffffffu ||
        wr_frame_encode(out, WR_FRAME_HEADER_SIZE + len, (uint8_t)type, (uint8_t)flags, seq, corr, body, (uint32_t)len,
                        &written) != WR_OK) {
        fprintf(stderr, "peer: cannot encode that frame\n");
        free(out);
        free(body);
        return 2;
    }
    hex_print(out, written);
    printf("\n");
    free(out);
    free(body);
    return 0;
}

static int decode_vector(const char *hex, uint32_t max_body) {
    uint8_t *buf = NULL;
    size_t len = 0;
    if (hex_decode(hex, &buf, &len) != 0) {
        fprintf(stderr, "peer: --decode-vector argument is not hex\n");
        return 2;
    }
    wr_frame_header h;
    const uint8_t *body = NULL;
    wr_status s = wr_frame_decode(buf, len, max_body, &h, &body);
    if (s != WR_OK) {
        printf("{\"ok\":false,\"fault\":\"%s\"}\n", wr_status_name(s));
    } else {
        printf("{\"ok\":true,\"type\":%u,\"flags\":%u,\"length\":%" PRIu32 ",\"seq\":%" PRIu32 ",\"corr\":%" PRIu32
               ",\"bodyCrc\":%" PRIu32 ",\"body\":\"",
               h.type, h.flags, h.length, h.seq, h.corr, h.body_crc);
        hex_print(body, h.length);
        printf("\"}\n");
    }
    free(buf);
    return 0;
}

/*
 * --vectors: the test vectors of docs/protocol.md, produced by this library from the same inputs as
 * test/helpers/vectors.ts. One line per vector: "NAME OFFSET:HEX ..." (OFFSET hex). Frames are one run from 0;
 * region vectors list every 16-byte line that is not all zero inside the vector's ranges (the rest is zero).
 */
#define VEC_RING_SIZE (64u * 1024u)
#define VEC_HEADER_RING_SIZE (1024u * 1024u)

static const uint8_t tiny_module[36] = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60,
                                        0x00, 0x00, 0x03, 0x02, 0x01, 0x00, 0x07, 0x0a, 0x01, 0x06, 0x5f, 0x73,
                                        0x74, 0x61, 0x72, 0x74, 0x00, 0x00, 0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b};

static void print_runs(const char *name, const volatile uint8_t *b, const uint32_t (*ranges)[2], size_t n) {
    printf("%s", name);
    for (size_t r = 0; r < n; r++) {
        for (uint32_t off = ranges[r][0]; off < ranges[r][1]; off += 16) {
            uint32_t end = off + 16 < ranges[r][1] ? off + 16 : ranges[r][1];
            int nonzero = 0;
            for (uint32_t k = off; k < end; k++) nonzero |= b[k] != 0;
            if (!nonzero) continue;
            printf(" %" PRIx32 ":", off);
            for (uint32_t k = off; k < end; k++) printf("%02x", b[k]);
        }
    }
    printf("\n");
}

static int vector_frame(const char *name, uint8_t type, uint8_t flags, uint32_t seq, uint32_t corr, const uint8_t *body,
                        uint32_t len) {
    uint8_t out[WR_FRAME_HEADER_SIZE + 512];
    size_t written = 0;
    if (wr_frame_encode(out, sizeof out, type, flags, seq, corr, body, len, &written) != WR_OK) return -1;
    printf("%s 0:", name);
    hex_print(out, written);
    printf("\n");
    return 0;
}

typedef struct {
    uint8_t *mem;
    size_t size;
    wr_region region;
    wr_producer p;
    wr_consumer c;
} vring;

static int vring_open(vring *v) {
    v->size = (size_t)wr_region_size_for(VEC_RING_SIZE);
    v->mem = aligned_alloc(4096, v->size);
    if (!v->mem) return -1;
    memset(v->mem, 0, v->size);
    wr_ring_mem m;
    if (wr_region_init(&v->region, v->mem, v->size, VEC_RING_SIZE) != WR_OK || wr_region_ring(&v->region, 0, &m) != WR_OK) {
        return -1;
    }
    wr_producer_init(&v->p, &m);
    wr_consumer_init(&v->c, &m);
    return 0;
}

static int vring_write(vring *v, uint8_t type, uint8_t flags, uint32_t corr, const char *text) {
    return wr_producer_try_write(&v->p, type, flags, corr, (const uint8_t *)text, (uint32_t)strlen(text)) == WR_OK ? 0 : -1;
}

static int vring_read(vring *v, uint8_t *buf) {
    wr_frame_header h;
    if (wr_consumer_read(&v->c, &h, buf, v->c.max_body) != WR_OK) return -1;
    wr_consumer_release(&v->c);
    return 0;
}

static void vring_print(const char *name, vring *v) {
    static const uint32_t ranges[2][2] = {{WR_RING_CTRL_OFFSET(0), WR_RING_CTRL_OFFSET(0) + WR_CTRL_SIZE},
                                          {WR_DATA_OFFSET, WR_DATA_OFFSET + VEC_RING_SIZE}};
    print_runs(name, v->mem, ranges, 2);
}

/* The scenarios of test/helpers/vectors.ts, step for step. Returns 0, or the failing step. */
static int vector_rings(void) {
    static uint8_t zeros[VEC_RING_SIZE / 2];
    static uint8_t buf[VEC_RING_SIZE / 2];
    vring v;

    /* ring-two-frames: the consumer arms its kick flag, two frames, one publish that kicks. */
    if (vring_open(&v) != 0 || !wr_consumer_arm_kick(&v.c)) return 10;
    if (vring_write(&v, WR_MSG_ECHO, 0, 2, "hello") != 0) return 11;
    if (vring_write(&v, WR_MSG_PING, WR_FLAG_JSON | WR_FLAG_BODY_CRC, 4, "{}") != 0) return 12;
    if (!wr_producer_publish(&v.p)) return 13;
    vring_print("ring-two-frames", &v);
    free(v.mem);

    /* ring-wrap: two zero chunks bring tail to 16 bytes before the end; the next record wraps behind a PAD. */
    if (vring_open(&v) != 0) return 20;
    if (wr_producer_try_write(&v.p, WR_MSG_MODULE_CHUNK, 0, 2, zeros, VEC_RING_SIZE / 2 - WR_FRAME_HEADER_SIZE) != WR_OK) return 21;
    wr_producer_publish(&v.p);
    if (vring_read(&v, buf) != 0) return 22;
    if (wr_producer_try_write(&v.p, WR_MSG_MODULE_CHUNK, 0, 2, zeros, VEC_RING_SIZE / 2 - WR_FRAME_HEADER_SIZE - 16) != WR_OK) return 23;
    wr_producer_publish(&v.p);
    if (vring_read(&v, buf) != 0) return 24;
    if (vring_write(&v, WR_MSG_ECHO, WR_FLAG_BODY_CRC, 4, "wrap!") != 0) return 25;
    wr_producer_publish(&v.p);
    vring_print("ring-wrap", &v);
    free(v.mem);

    /* ring-reset-requested / ring-reset-done: a scribbled record, the handshake, a frame after it. */
    for (int complete = 0; complete <= 1; complete++) {
        wr_frame_header h;
        if (vring_open(&v) != 0) return 30;
        if (vring_write(&v, WR_MSG_ECHO, WR_FLAG_BODY_CRC, 2, "one") != 0) return 31;
        if (vring_write(&v, WR_MSG_ECHO, WR_FLAG_BODY_CRC, 4, "two") != 0) return 32;
        wr_producer_publish(&v.p);
        if (vring_read(&v, buf) != 0) return 33;
        v.mem[WR_DATA_OFFSET + 32 + 12] ^= 0xffu;
        if (wr_consumer_read(&v.c, &h, buf, sizeof buf) != WR_ERR_HEADER_CRC) return 34;
        wr_consumer_request_reset(&v.c);
        if (wr_consumer_read(&v.c, &h, buf, sizeof buf) != WR_EMPTY) return 35;
        if (complete) {
            if (!wr_producer_service_reset(&v.p)) return 36;
            if (wr_consumer_read(&v.c, &h, buf, sizeof buf) != WR_EMPTY || v.c.reset_pending) return 37;
            if (vring_write(&v, WR_MSG_ECHO, WR_FLAG_BODY_CRC, 6, "three") != 0) return 38;
            wr_producer_publish(&v.p);
        }
        vring_print(complete ? "ring-reset-done" : "ring-reset-requested", &v);
        free(v.mem);
    }
    return 0;
}

/*
 * CALL_BATCH_BIN (docs/protocol.md §8.1): this peer does not serve calls, but it builds the two vectors' bodies
 * field by field from the spec, so the binary layout is pinned by a second implementation.
 */
#define VEC_MSG_CALL_BATCH_BIN 0x36u

typedef struct {
    uint8_t *b;
    size_t n, cap;
    int overflow;
} vbuf;

static void vb_put(vbuf *v, uint64_t x, unsigned bytes) {
    if (v->n + bytes > v->cap) {
        v->overflow = 1;
        return;
    }
    for (unsigned k = 0; k < bytes; k++) v->b[v->n++] = (uint8_t)(x >> (8 * k));
}
static void vb_u8(vbuf *v, uint8_t x) { vb_put(v, x, 1); }
static void vb_u16(vbuf *v, uint16_t x) { vb_put(v, x, 2); }
static void vb_u32(vbuf *v, uint32_t x) { vb_put(v, x, 4); }
static void vb_i32(vbuf *v, int32_t x) { vb_put(v, (uint32_t)x, 4); }
static void vb_i64(vbuf *v, int64_t x) { vb_put(v, (uint64_t)x, 8); }
static void vb_f32(vbuf *v, float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    vb_put(v, u, 4);
}
static void vb_f64(vbuf *v, double x) {
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    vb_put(v, u, 8);
}
static void vb_str(vbuf *v, const char *s) {
    size_t len = strlen(s);
    vb_u16(v, (uint16_t)len);
    for (size_t k = 0; k < len; k++) vb_u8(v, (uint8_t)s[k]);
}

/* Value type codes and limit/stat bits of §8.1. */
enum { CB_I32 = 0, CB_I64 = 1, CB_F32 = 2, CB_F64 = 3 };
enum { CB_TIME = 0x01, CB_GAS = 0x02 };
enum { CB_INSTR = 0x01, CB_START = 0x02, CB_COLD = 0x04, CB_START_MS = 0x08, CB_MESSAGE = 0x10 };
enum { CB_REASON_LOAD = 7 };

static void vb_val_i32(vbuf *v, int32_t x) {
    vb_u8(v, CB_I32);
    vb_i32(v, x);
}
static void vb_val_i64(vbuf *v, int64_t x) {
    vb_u8(v, CB_I64);
    vb_i64(v, x);
}
static void vb_val_f32(vbuf *v, float x) {
    vb_u8(v, CB_F32);
    vb_f32(v, x);
}
static void vb_val_f64(vbuf *v, double x) {
    vb_u8(v, CB_F64);
    vb_f64(v, x);
}

/* A call's fixed part: app and fn string indexes, limit bits, argument count. */
static void vb_call(vbuf *v, uint16_t app, uint16_t fn, uint8_t limits, uint16_t args) {
    vb_u16(v, app);
    vb_u16(v, fn);
    vb_u8(v, limits);
    vb_u16(v, args);
}

/* A result's fixed part: status (0 ok, 1 failed), stat bits, wallMs, peakPages. */
static void vb_result(vbuf *v, uint8_t status, uint8_t bits, double wall_ms, uint32_t peak_pages) {
    vb_u8(v, status);
    vb_u8(v, bits);
    vb_f64(v, wall_ms);
    vb_u32(v, peak_pages);
}

/* The calls of test/helpers/vectors.ts (CALLS): calc.add, calc.mul64 with limits, calc.fdiv, nope.scale. */
static size_t call_batch_request(uint8_t *out, size_t cap) {
    static const char *const strings[] = {"calc", "add", "mul64", "fdiv", "nope", "scale"};
    vbuf v = {out, 0, cap, 0};
    vb_u8(&v, 1); /* version */
    vb_u8(&v, 0); /* flags */
    vb_u16(&v, 6);
    vb_u16(&v, 4);
    for (size_t k = 0; k < 6; k++) vb_str(&v, strings[k]);
    vb_call(&v, 0, 1, 0, 2);
    vb_val_i32(&v, 20);
    vb_val_i32(&v, 22);
    vb_call(&v, 0, 2, CB_TIME | CB_GAS, 2);
    vb_f64(&v, 100); /* timeMs */
    vb_f64(&v, 5000); /* gas */
    vb_val_i64(&v, -3);
    vb_val_i64(&v, 4);
    vb_call(&v, 0, 3, 0, 2);
    vb_val_f64(&v, 1);
    vb_val_f64(&v, 4);
    vb_call(&v, 4, 5, 0, 2);
    vb_val_f32(&v, 1.5f);
    vb_val_f32(&v, 2.0f);
    return v.overflow ? 0 : v.n;
}

/* Their answers (CALL_RESULTS): the fixed part, [instructions], [startMs], then values or the failure. */
static size_t call_batch_results(uint8_t *out, size_t cap) {
    static const char message[] = "AGT_ERR_NOT_FOUND: no app named nope is deployed on the runner";
    vbuf v = {out, 0, cap, 0};
    vb_u8(&v, 1);
    vb_u8(&v, 0);
    vb_u16(&v, 4);
    vb_result(&v, 0, CB_START | CB_START_MS, 0.125, 2);
    vb_f64(&v, 0.25); /* startMs */
    vb_u16(&v, 1);
    vb_val_i32(&v, 42);
    vb_result(&v, 0, CB_INSTR | CB_START | CB_START_MS, 0.5, 2);
    vb_f64(&v, 9); /* instructions */
    vb_f64(&v, 0.625);
    vb_u16(&v, 1);
    vb_val_i64(&v, -12);
    vb_result(&v, 0, CB_START | CB_COLD | CB_START_MS, 1.5, 2);
    vb_f64(&v, 12.75);
    vb_u16(&v, 1);
    vb_val_f64(&v, 0.25);
    vb_result(&v, 1, CB_MESSAGE, 0, 0);
    vb_u8(&v, CB_REASON_LOAD);
    vb_i32(&v, 1); /* exitCode */
    vb_u32(&v, (uint32_t)(sizeof message - 1));
    for (size_t k = 0; k + 1 < sizeof message; k++) vb_u8(&v, (uint8_t)message[k]);
    return v.overflow ? 0 : v.n;
}

static int print_vectors(void) {
    static const char hello[] = "{\"versions\":[1],\"role\":\"agent\",\"epoch\":305419896,"
                                "\"capabilities\":[\"module-transfer\",\"run\"],\"maxBody\":524264,"
                                "\"software\":\"wasmedge-agent\"}";
    static const char hello_ack[] = "{\"version\":1,\"epoch\":195939070,\"capabilities\":[\"module-transfer\",\"run\"],"
                                    "\"engines\":[\"v8\"],\"modules\":0,\"software\":\"wasmedge-runner\"}";
    uint8_t hash[WR_SHA256_SIZE];
    char digest[WR_DIGEST_TEXT_LEN + 1];
    wr_sha256(tiny_module, sizeof tiny_module, hash);
    wr_sha256_digest_text(hash, digest);
    digest[WR_DIGEST_TEXT_LEN] = 0;
    char error[256];
    int n = snprintf(error, sizeof error,
                     "{\"code\":\"AGT_ERR_NOT_FOUND\",\"message\":\"runner does not hold module %s\","
                     "\"details\":{\"field\":\"digest\"}}",
                     digest);
    const uint8_t json = WR_FLAG_JSON | WR_FLAG_BODY_CRC;
    if (n < 0 || (size_t)n >= sizeof error ||
        vector_frame("frame-echo-empty", WR_MSG_ECHO, 0, 0, 2, NULL, 0) != 0 ||
        vector_frame("frame-hello", WR_MSG_HELLO, json, 1, 4, (const uint8_t *)hello, sizeof hello - 1) != 0 ||
        vector_frame("frame-hello-ack", WR_MSG_RESULT, json, 0, 4, (const uint8_t *)hello_ack, sizeof hello_ack - 1) != 0 ||
        vector_frame("frame-module-chunk", WR_MSG_MODULE_CHUNK, 0, 3, 6, tiny_module, sizeof tiny_module) != 0 ||
        vector_frame("frame-error", WR_MSG_ERROR, json, 2, 8, (const uint8_t *)error, (uint32_t)n) != 0) {
        fprintf(stderr, "peer: cannot encode a frame vector\n");
        return 1;
    }
    uint8_t calls[256], results[256];
    size_t calls_len = call_batch_request(calls, sizeof calls);
    size_t results_len = call_batch_results(results, sizeof results);
    if (calls_len == 0 || results_len == 0 ||
        vector_frame("frame-call-batch-bin", VEC_MSG_CALL_BATCH_BIN, WR_FLAG_BODY_CRC, 4, 10, calls, (uint32_t)calls_len) != 0 ||
        vector_frame("frame-call-batch-bin-result", WR_MSG_RESULT, WR_FLAG_BODY_CRC, 3, 10, results, (uint32_t)results_len) != 0) {
        fprintf(stderr, "peer: cannot encode a CALL_BATCH_BIN vector\n");
        return 1;
    }

    /* region-header-1mib: a freshly initialised region with 1 MiB rings, [0, 0x1000). */
    size_t size = (size_t)wr_region_size_for(VEC_HEADER_RING_SIZE);
    uint8_t *mem = aligned_alloc(4096, size);
    wr_region r;
    if (!mem) return 1;
    memset(mem, 0xa5, size); /* init must clear what it owns, whatever was there */
    if (wr_region_init(&r, mem, size, VEC_HEADER_RING_SIZE) != WR_OK) {
        free(mem);
        fprintf(stderr, "peer: cannot initialise the header vector's region\n");
        return 1;
    }
    static const uint32_t header_range[1][2] = {{0, WR_DATA_OFFSET}};
    print_runs("region-header-1mib", mem, header_range, 1);
    free(mem);

    int step = vector_rings();
    if (step != 0) {
        fprintf(stderr, "peer: ring vector scenario failed at step %d\n", step);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------------------ */

static void usage(void) {
    fprintf(stderr,
            "usage: peer --region PATH [--ring-size N] [--attach] [--side agent|runner] [--attach-timeout-ms N]\n"
            "            [--max-module BYTES] [--max-sleep-us N] [--verbose]\n"
            "       peer --encode-vector [--type N] [--flags N] [--seq N] [--corr N] [--body-hex HEX]\n"
            "       peer --decode-vector HEX [--max-body N]\n"
            "       peer --vectors\n");
}

static int parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || *end != 0 || s[0] == '-') return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    const char *region_path = NULL;
    const char *decode_hex = NULL;
    const char *body_hex = NULL;
    uint64_t ring_size = 1024 * 1024, attach_timeout_ms = 10000, max_module = 64ull * 1024 * 1024;
    uint64_t max_sleep_us = 2000, v_type = WR_MSG_ECHO, v_flags = WR_FLAG_BODY_CRC | WR_FLAG_JSON, v_seq = 7,
             v_corr = 42, max_body = 0xffffffffu;
    int attach = 0, encode = 0, verbose = 0, vectors = 0;
    int side = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
#define NUM(name, var)                                                                                                 \
    else if (strcmp(a, name) == 0) {                                                                                   \
        bad = parse_u64(v, &(var));                                                                                    \
        i++;                                                                                                           \
    }
        if (strcmp(a, "--region") == 0 && v) {
            region_path = v;
            i++;
        } else if (strcmp(a, "--attach") == 0) {
            attach = 1;
        } else if (strcmp(a, "--verbose") == 0) {
            verbose = 1;
        } else if (strcmp(a, "--side") == 0 && v) {
            if (strcmp(v, "agent") == 0) side = WR_SIDE_AGENT;
            else if (strcmp(v, "runner") == 0) side = WR_SIDE_RUNNER;
            else bad = 1;
            i++;
        } else if (strcmp(a, "--encode-vector") == 0) {
            encode = 1;
        } else if (strcmp(a, "--vectors") == 0) {
            vectors = 1;
        } else if (strcmp(a, "--decode-vector") == 0 && v) {
            decode_hex = v;
            i++;
        } else if (strcmp(a, "--body-hex") == 0 && v) {
            body_hex = v;
            i++;
        }
        NUM("--ring-size", ring_size)
        NUM("--attach-timeout-ms", attach_timeout_ms)
        NUM("--max-module", max_module)
        NUM("--max-sleep-us", max_sleep_us)
        NUM("--type", v_type)
        NUM("--flags", v_flags)
        NUM("--seq", v_seq)
        NUM("--corr", v_corr)
        NUM("--max-body", max_body)
        else bad = 1;
#undef NUM
        if (bad) {
            fprintf(stderr, "peer: bad argument %s\n", a);
            usage();
            return 2;
        }
    }
    if (vectors) return print_vectors();
    if (encode) {
        if (v_type > 0xff || v_flags > 0xff || v_seq > 0xffffffffu || v_corr > 0xffffffffu) {
            fprintf(stderr, "peer: vector field out of range\n");
            return 2;
        }
        return encode_vector((unsigned)v_type, (unsigned)v_flags, (uint32_t)v_seq, (uint32_t)v_corr, body_hex);
    }
    if (decode_hex) return decode_vector(decode_hex, max_body > 0xffffffffu ? 0xffffffffu : (uint32_t)max_body);
    if (!region_path) {
        usage();
        return 2;
    }
    if (ring_size > 0x40000000u || max_sleep_us == 0 || max_sleep_us > 100000) {
        fprintf(stderr, "peer: --ring-size or --max-sleep-us out of range\n");
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    static peer p; /* large (digest table); static keeps it off the stack */
    p.max_module = max_module;
    p.max_sleep_ns = max_sleep_us * 1000u;
    p.verbose = verbose;
    mapping m;
    if (attach) {
        if (attach_region(region_path, attach_timeout_ms * 1000000ull, &m, &p.region) != 0) return 1;
    } else {
        if (create_region(region_path, (uint32_t)ring_size, &m, &p.region) != 0) return 1;
    }
    p.side = side >= 0 ? (uint32_t)side : (attach ? WR_SIDE_AGENT : WR_SIDE_RUNNER);
    wr_ring_mem tx, rx;
    uint32_t tx_ring = p.side == WR_SIDE_RUNNER ? WR_RING_TO_AGENT : WR_RING_TO_RUNNER;
    if (wr_region_ring(&p.region, tx_ring, &tx) != WR_OK || wr_region_ring(&p.region, 1u - tx_ring, &rx) != WR_OK) {
        fprintf(stderr, "peer: bad ring geometry\n");
        return 1;
    }
    wr_producer_init(&p.tx, &tx);
    wr_consumer_init(&p.rx, &rx);
    /* Like attachRing: frames published for a previous peer answer requests nobody is waiting for. */
    if (attach) (void)wr_consumer_skip_to_tail(&p.rx);
    p.rxbuf = malloc(p.rx.max_body ? p.rx.max_body : 1u);
    p.json_cap = 4096;
    p.json = malloc(p.json_cap);
    if (!p.rxbuf || !p.json) {
        fprintf(stderr, "peer: out of memory\n");
        return 1;
    }
    p.epoch = new_epoch();
    wr_region_set_side(&p.region, p.side, p.epoch, WR_SIDE_STATE_ATTACHED);
    wr_region_heartbeat(&p.region, p.side);
    p.last_beat = now_ns();

    printf("READY\n");
    fflush(stdout);
    if (verbose) {
        fprintf(stderr, "peer: %s %s as the %s side, ring %" PRIu32 " bytes, epoch %" PRIu32 "\n",
                attach ? "attached to" : "created", region_path, p.side == WR_SIDE_RUNNER ? "runner" : "agent",
                p.region.ring_size, p.epoch);
    }

    serve(&p);

    __atomic_store_n(wr_region_side_word(&p.region, p.side, WR_SIDE_STATE), 0u, __ATOMIC_SEQ_CST);
    for (int i = 0; i < MAX_TRANSFERS; i++)
        if (p.transfers[i].used) transfer_drop(&p.transfers[i]);
    munmap(m.base, m.size);
    free(p.rxbuf);
    free(p.json);
    fprintf(stderr, "peer: stopped: %" PRIu64 " frames in, %" PRIu64 " out, %" PRIu64 " faults, %" PRIu32
                    " kicks sent, %" PRIu64 " kicks received\n",
            p.frames_in, p.frames_out, p.faults, p.tx.kicks, p.kicks_waited);
    return 0;
}
