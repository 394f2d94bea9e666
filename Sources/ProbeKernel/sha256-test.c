/*
 * Host test for sha256.c: checks the FIPS 180-4 example vectors, and with
 * file arguments prints sha256sum-style lines so results can be diffed
 * against the system tool.
 */
#include <stdio.h>
#include <string.h>

#include "sha256.h"

static void to_hex(const uint8_t *d, char out[2 * SHA256_DIGEST_SIZE + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * SHA256_DIGEST_SIZE] = 0;
}

static int check(const char *label, const void *data, size_t len, const char *want)
{
    uint8_t d[SHA256_DIGEST_SIZE];
    char hex[2 * SHA256_DIGEST_SIZE + 1];
    int bad = 0;

    sha256(data, len, d);
    to_hex(d, hex);
    bad |= strcmp(hex, want) != 0;

    /* Same message fed byte by byte exercises the partial-block path. */
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    for (size_t i = 0; i < len; i++) {
        sha256_update(&ctx, (const uint8_t *)data + i, 1);
    }
    sha256_final(&ctx, d);
    to_hex(d, hex);
    bad |= strcmp(hex, want) != 0;

    printf("%s %s\n", bad ? "FAIL" : "ok  ", label);
    return bad;
}

static int hash_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    static uint8_t buf[65536];
    /* Odd, varying read sizes so block boundaries fall everywhere. */
    size_t chunk = 1, n;
    while ((n = fread(buf, 1, chunk, f)) > 0) {
        sha256_update(&ctx, buf, n);
        chunk = chunk * 7 % 4099 + 1;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        perror(path);
        return 1;
    }
    uint8_t d[SHA256_DIGEST_SIZE];
    char hex[2 * SHA256_DIGEST_SIZE + 1];
    sha256_final(&ctx, d);
    to_hex(d, hex);
    printf("%s  %s\n", hex, path);
    return 0;
}

int main(int argc, char **argv)
{
    int bad = 0;

    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            bad |= hash_file(argv[i]);
        }
        return bad;
    }

    bad |= check("empty", "", 0,
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    bad |= check("abc", "abc", 3,
                 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    bad |= check("448-bit", m448, strlen(m448),
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                       "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    bad |= check("896-bit", m896, strlen(m896),
                 "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    static char million[1000000];
    memset(million, 'a', sizeof million);
    bad |= check("million-a", million, sizeof million,
                 "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    printf("%s\n", bad ? "sha256 self-test FAILED" : "sha256 self-test passed");
    return bad;
}
