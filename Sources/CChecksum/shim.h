// CRC-32C (Castagnoli) of cache blocks: the SSE4.2 instruction where the CPU has it (about twice
// zlib's CRC-32 speed, which was a quarter of the CPU time of a cached read), a bitwise loop elsewhere.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static inline uint32_t goesfs_crc32c_sse42(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c = ~crc;
    while (n >= 8) { uint64_t v; memcpy(&v, p, 8); c = __builtin_ia32_crc32di(c, v); p += 8; n -= 8; }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
#endif

static inline uint32_t goesfs_crc32c_portable(uint32_t crc, const uint8_t *p, size_t n) {
    uint32_t c = ~crc;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return ~c;
}

static inline uint32_t goesfs_crc32c(uint32_t crc, const void *data, size_t n) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) return goesfs_crc32c_sse42(crc, (const uint8_t *)data, n);
#endif
    return goesfs_crc32c_portable(crc, (const uint8_t *)data, n);
}
