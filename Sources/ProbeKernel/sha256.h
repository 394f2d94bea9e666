/* SHA-256 (FIPS 180-4); freestanding so the kernel and host test share it. */
#ifndef PROBE_SHA256_H
#define PROBE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_BLOCK_SIZE  64

struct sha256_ctx {
    uint32_t state[8];
    uint64_t length;                     /* message bytes consumed so far */
    uint8_t block[SHA256_BLOCK_SIZE];    /* partial block awaiting more input */
    size_t fill;
};

void sha256_init(struct sha256_ctx *ctx);
void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len);
void sha256_final(struct sha256_ctx *ctx, uint8_t digest[SHA256_DIGEST_SIZE]);
void sha256(const void *data, size_t len, uint8_t digest[SHA256_DIGEST_SIZE]);

#endif
