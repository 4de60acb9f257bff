/* Compiled-code smoke test: gcc -O2 output (mixed RVC/RV64GC) running
 * table-driven CRC-32, 64-bit arithmetic and a small sort. Expected values
 * come from the algorithms' definitions (CRC-32 check value of "123456789"
 * is 0xCBF43926), not from a machine. */
#include "test_c.h"

TEST_NAME_C(c_smoke);

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32(const char *p, unsigned n)
{
    uint32_t c = 0xFFFFFFFFu;
    while (n--)
        c = crc_table[(c ^ (uint8_t)*p++) & 0xff] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static void isort(int64_t *v, int n)
{
    for (int i = 1; i < n; i++) {
        int64_t x = v[i];
        int j = i - 1;
        while (j >= 0 && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
}

static volatile uint64_t sink;

void test_main(void)
{
    crc_init();
    CHECK_C("crc32(\"123456789\")", crc32("123456789", 9), 0xCBF43926u);
    CHECK_C("crc32(\"\")", crc32("", 0), 0);
    CHECK_C("gcd(2^40*3^5, 2^13*3^9*7)", gcd((1ull << 40) * 243, (1ull << 13) * 19683 * 7), (1ull << 13) * 243);

    /* 1000th Fibonacci mod 2^64, by iteration and by fast doubling */
    uint64_t a = 0, b = 1;
    for (int i = 0; i < 1000; i++) {
        uint64_t t = a + b;
        a = b;
        b = t;
    }
    uint64_t x = 0, y = 1; /* F(k), F(k+1) */
    for (int bit = 9; bit >= 0; bit--) {
        uint64_t d = x * (2 * y - x), e = x * x + y * y;
        if ((1000 >> bit) & 1) {
            x = e;
            y = d + e;
        } else {
            x = d;
            y = e;
        }
    }
    CHECK_C("fib(1000) iterative == doubling", a == x, 1);

    int64_t v[12] = {5, -3, 9, 0, -3, 1ll << 40, -(1ll << 50), 7, 7, 2, -1, 100};
    isort(v, 12);
    int sorted = 1;
    for (int i = 1; i < 12; i++)
        sorted &= v[i - 1] <= v[i];
    CHECK_C("insertion sort ordered", sorted, 1);
    CHECK_C("sorted min", v[0], -(1ll << 50));
    CHECK_C("sorted max", v[11], 1ll << 40);

    /* floating point through the compiler: sum of 1/k^2 for k=1..1000 in
       double vs a float accumulation: check relations only */
    double s = 0;
    for (int k = 1; k <= 1000; k++)
        s += 1.0 / ((double)k * k);
    CHECK_C("sum 1/k^2 in (1.643, 1.645)", s > 1.643 && s < 1.645, 1);
    sink = (uint64_t)(s * 1e6);
    CHECK_C("(u64)(sum*1e6)", sink, 1643934);
    rt_finish();
}
