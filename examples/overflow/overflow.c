/* overflow: unbounded, non-tail recursion; overflows the engine's native call stack
 * (V8: RangeError "Maximum call stack size exceeded").
 *
 * The frame state lives in volatile globals, not in a volatile local array: a local
 * array would live on wasm32's shadow stack in linear memory (64 KiB by default),
 * which would run out first and corrupt memory / fault out of bounds instead of
 * overflowing the engine stack. The volatile load after the call keeps the call
 * from being a tail call, so the compiler cannot turn the recursion into a loop. */
#include <stdio.h>

static volatile int sink;
static volatile int deepest;

#pragma clang diagnostic ignored "-Winfinite-recursion"

__attribute__((noinline)) static int recurse(int depth) {
    sink = depth;
    deepest = depth;
    int r = recurse(depth + 1);
    return r + sink; /* uses the result: not a tail call */
}

int main(void) {
    printf("recursing\n");
    fflush(stdout);
    return recurse(0);
}
