/*
 * crc32c — CRC32C (Castagnoli, reflected polynomial 0x82F63B78) for journal records.
 *
 * crc32c() uses the SSE4.2 crc32 instruction when cpuid says the CPU has it and a
 * byte-wise table otherwise; both give identical results (tests/store/test_crc32c).
 * No library (ISA-L) is used: the instruction is 30 lines and the fallback 20.
 * Thread-safe: the dispatch is decided once (idempotent, racing writers store the
 * same value).
 *
 * Usage: crc = crc32c(0, a, alen); crc = crc32c(crc, b, blen);  (chaining works)
 */
#ifndef HAMQ_STORE_CRC32C_H
#define HAMQ_STORE_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t crc32c_table(uint32_t crc, const void *buf, size_t len);
/* Returns false if the CPU lacks SSE4.2 (the caller should then skip its test). */
bool crc32c_hw_available(void);
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len);

#endif
