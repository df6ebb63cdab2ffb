/* SPDX-License-Identifier: MIT */
/* SHA-256 (FIPS 180-4), for the grant store's checksums. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct pgd_sha256 {
        uint32_t h[8];
        uint64_t len;
        uint8_t buf[64];
        size_t n;
};

void pgd_sha256_init(struct pgd_sha256 *s);
void pgd_sha256_update(struct pgd_sha256 *s, const void *data, size_t len);
void pgd_sha256_final(struct pgd_sha256 *s, uint8_t ret[32]);
