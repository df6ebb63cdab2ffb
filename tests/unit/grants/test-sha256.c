/* SPDX-License-Identifier: MIT */
/* daemon/store/sha256.c against the FIPS 180-4 examples (and a message across many blocks). */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "pg-util.h"
#include "sha256.h"

static void hex(const void *data, size_t len, size_t repeat, char out[65])
{
        struct pgd_sha256 s;
        uint8_t md[32];

        pgd_sha256_init(&s);
        for (size_t i = 0; i < repeat; i++)
                pgd_sha256_update(&s, data, len);
        pgd_sha256_final(&s, md);
        for (int i = 0; i < 32; i++)
                sprintf(out + 2 * i, "%02x", md[i]);
}

int main(void)
{
        static const struct {
                const char *text;
                size_t repeat;
                const char *want;
        } v[] = {
                {"", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
                {"abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
                {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
                /* one million 'a', fed 1000 at a time */
                {NULL, 1000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
        };
        char a1000[1000], out[65];

        memset(a1000, 'a', sizeof(a1000));
        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                if (v[i].text)
                        hex(v[i].text, strlen(v[i].text), v[i].repeat, out);
                else
                        hex(a1000, sizeof(a1000), v[i].repeat, out);
                CHECK_STREQ(out, v[i].want);
        }
        return harness_exit();
}
