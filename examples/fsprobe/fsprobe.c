/* fsprobe: file-system sandbox probe.
 *   fsprobe read PATH        print file content (exit 0) or "error: <strerror>" on stderr (exit 2)
 *   fsprobe write PATH TEXT  write TEXT to PATH (exit 0, or exit 2 with error)
 *   fsprobe ls DIR           list entries one per line, sorted (without . and ..)
 * Bad usage exits 1. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(void) {
    fprintf(stderr, "error: %s\n", strerror(errno));
    return 2;
}

static int do_read(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return fail();
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        errno = e;
        return fail();
    }
    fclose(f);
    return 0;
}

static int do_write(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return fail();
    size_t len = strlen(text);
    if (fwrite(text, 1, len, f) != len) {
        int e = errno;
        fclose(f);
        errno = e;
        return fail();
    }
    if (fclose(f) != 0) return fail();
    return 0;
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int do_ls(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return fail();
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = realloc(names, cap * sizeof *names);
            if (!names) return fail();
        }
        names[n] = strdup(e->d_name);
        if (!names[n]) return fail();
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    for (size_t i = 0; i < n; i++) {
        printf("%s\n", names[i]);
        free(names[i]);
    }
    free(names);
    return 0;
}

int main(int argc, char **argv) {
    int rc;
    if (argc == 3 && strcmp(argv[1], "read") == 0) rc = do_read(argv[2]);
    else if (argc == 4 && strcmp(argv[1], "write") == 0) rc = do_write(argv[2], argv[3]);
    else if (argc == 3 && strcmp(argv[1], "ls") == 0) rc = do_ls(argv[2]);
    else {
        fprintf(stderr, "usage: fsprobe read PATH | write PATH TEXT | ls DIR\n");
        return 1;
    }
    fflush(stdout);
    return rc;
}
