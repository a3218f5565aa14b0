/* calc: a reactor module (exports _initialize, no _start) with typed exports. */
#include <stdint.h>

__attribute__((export_name("add"))) int32_t add(int32_t a, int32_t b) { return a + b; }

__attribute__((export_name("mul64"))) int64_t mul64(int64_t a, int64_t b) { return a * b; }

__attribute__((export_name("fdiv"))) double fdiv(double a, double b) { return a / b; }

__attribute__((export_name("scale"))) float scale(float a, float b) { return a * b; }

__attribute__((export_name("fib"))) int32_t fib(int32_t n) {
    int32_t a = 0, b = 1;
    for (int32_t i = 0; i < n; i++) {
        int32_t t = a + b;
        a = b;
        b = t;
    }
    return a;
}

static int32_t count;

__attribute__((export_name("counter"))) int32_t counter(void) { return ++count; }
