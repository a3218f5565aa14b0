/* grow: grows linear memory until growth fails, then prints
 * "grow failed after N pages" (N = memory size in 64 KiB pages when growth failed).
 *
 * Growth starts at 16 pages (1 MiB) and doubles while it succeeds; after the first
 * failure the step halves until a single-page growth fails, so N is the exact limit.
 * (Growing one page at a time up to wasm32's 4 GiB takes minutes in V8.) */
#include <stdio.h>

#define FAILED ((__SIZE_TYPE__)-1)

int main(void) {
    __SIZE_TYPE__ step = 16;
    int failed_once = 0;
    for (;;) {
        if (__builtin_wasm_memory_grow(0, step) != FAILED) {
            if (!failed_once && step < 4096) step *= 2;
        } else {
            if (step == 1) break;
            failed_once = 1;
            step /= 2;
        }
    }
    printf("grow failed after %lu pages\n", (unsigned long)__builtin_wasm_memory_size(0));
    return 0;
}
