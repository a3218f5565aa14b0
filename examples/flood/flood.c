/* flood: writes 4 KiB lines of 'x' to stdout forever (used to test output limits). */
#include <string.h>
#include <unistd.h>

int main(void) {
    static char line[4096];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    for (;;) {
        size_t off = 0;
        while (off < sizeof line) {
            ssize_t n = write(1, line + off, sizeof line - off);
            if (n < 0) return 1;
            off += (size_t)n;
        }
    }
}
