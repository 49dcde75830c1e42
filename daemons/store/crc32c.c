/* crc32c — see crc32c.h. */
#include "crc32c.h"

#include <string.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[256];
static int crc_table_ready;
static int crc_hw_state; /* 0 unknown, 1 hw, 2 table */

static void crc32c_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_table[i] = c;
    }
    __atomic_store_n(&crc_table_ready, 1, __ATOMIC_RELEASE);
}

uint32_t crc32c_table(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    if (!__atomic_load_n(&crc_table_ready, __ATOMIC_ACQUIRE))
        crc32c_table_init();
    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
bool crc32c_hw_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}

__attribute__((target("sse4.2"))) uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint64_t c = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    while (len--)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
#else
bool crc32c_hw_available(void)
{
    return false;
}

uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
    return crc32c_table(crc, buf, len);
}
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    int s = __atomic_load_n(&crc_hw_state, __ATOMIC_RELAXED);
    if (s == 0) {
        s = crc32c_hw_available() ? 1 : 2;
        __atomic_store_n(&crc_hw_state, s, __ATOMIC_RELAXED);
    }
    return s == 1 ? crc32c_hw(crc, buf, len) : crc32c_table(crc, buf, len);
}
