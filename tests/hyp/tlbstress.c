/* A TLB-miss-heavy job for scripts/bench-paging.sh (issue 21): random
 * reads and updates over a working set far larger than the TLB's reach.
 *
 *   tlbstress MIB STEPS   touches MIB MiB of anonymous memory page by
 *                         page, then makes STEPS random 8-byte
 *                         read-modify-writes in it (xorshift64, fixed
 *                         seed) and prints a checksum, the same in every
 *                         paging mode (the script compares them).
 *
 * Built by the script with riscv64-linux-gnu-gcc -static; no libc beyond
 * what a static binary carries. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tlbstress MIB STEPS\n");
        return 2;
    }
    uint64_t bytes = strtoull(argv[1], 0, 10) << 20;
    uint64_t steps = strtoull(argv[2], 0, 10);
    uint64_t words = bytes / 8;
    uint64_t *m = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || words == 0) {
        perror("mmap");
        return 1;
    }
    for (uint64_t i = 0; i < words; i += 512)
        m[i] = i;
    uint64_t x = 0x2545f4914f6cdd1dull, sum = 0;
    for (uint64_t s = 0; s < steps; s++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t i = x % words;
        sum += m[i];
        m[i] = m[i] * 3 + s;
    }
    printf("TLBSTRESS %llu\n", (unsigned long long)sum);
    return 0;
}
