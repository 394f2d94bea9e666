/*
 * gen-blob NAME SIZE OUTFILE
 *
 * Writes SIZE deterministic pseudo-random bytes: xorshift64 seeded with the
 * FNV-1a 64-bit hash of NAME, each state emitted little-endian.  The same
 * name always yields the same bytes on every host, so module hashes are
 * reproducible while differing between modules.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t xorshift64(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s NAME SIZE OUTFILE\n", argv[0]);
        return 2;
    }
    const char *name = argv[1], *path = argv[3];

    char *end;
    errno = 0;
    unsigned long long size = strtoull(argv[2], &end, 10);
    if (errno || end == argv[2] || *end || argv[2][0] == '-') {
        fprintf(stderr, "%s: bad SIZE '%s'\n", argv[0], argv[2]);
        return 2;
    }

    uint64_t state = fnv1a64(name);
    if (state == 0) {
        state = 0x9e3779b97f4a7c15ull; /* xorshift never leaves the all-zero state */
    }

    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", argv[0], path, strerror(errno));
        return 1;
    }
    static uint8_t buf[65536];
    while (size) {
        size_t n = size < sizeof buf ? (size_t)size : sizeof buf;
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = xorshift64(&state);
            for (size_t j = 0; j < 8 && i + j < n; j++) {
                buf[i + j] = (uint8_t)(r >> (8 * j));
            }
        }
        if (fwrite(buf, 1, n, f) != n) {
            break;
        }
        size -= n;
    }
    if (fclose(f) != 0 || size) {
        fprintf(stderr, "%s: %s: write failed\n", argv[0], path);
        remove(path);
        return 1;
    }
    return 0;
}
