/* hello: prints a greeting, its arguments, and $GREETING; exits with --exit N. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef HELLO_TEXT
#define HELLO_TEXT "hello from wasm"
#endif

int main(int argc, char **argv) {
    int code = 0;
    printf("%s\n", HELLO_TEXT);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--exit") == 0 && i + 1 < argc) {
            code = atoi(argv[++i]);
            continue;
        }
        printf("%s\n", argv[i]);
    }
    const char *g = getenv("GREETING");
    if (g != NULL) printf("GREETING=%s\n", g);
    fflush(stdout);
    return code;
}
