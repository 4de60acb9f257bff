/* Strata conformance runtime: signature dump over the NS16550 UART and
 * power-off through the sifive,test0 syscon. */
#include <stdint.h>

#define UART_BASE 0x10000000UL
#define SYSCON    0x00100000UL

struct sig { uint64_t value, expected; const char *name; uint64_t kind; };

extern struct sig rt_sig[];
extern uint64_t rt_sig_count;
extern uint64_t rt_mtrap[5];
extern const char rt_test_name[];

static void putc_(char c)
{
    volatile uint8_t *u = (volatile uint8_t *)UART_BASE;
    while (!(u[5] & 0x20))
        ;
    u[0] = (uint8_t)c;
}

static void puts_(const char *s)
{
    while (*s)
        putc_(*s++);
}

static void puthex(uint64_t v, int digits)
{
    for (int i = digits - 1; i >= 0; i--)
        putc_("0123456789abcdef"[(v >> (4 * i)) & 15]);
}

static void putdec(uint64_t v)
{
    char buf[24];
    int n = 0;
    do {
        buf[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        putc_(buf[--n]);
}

static void poweroff(void)
{
    *(volatile uint32_t *)SYSCON = 0x5555;
    for (;;)
        ;
}

void rt_dump(void)
{
    uint64_t bad = 0;
    puts_("TEST ");
    puts_(rt_test_name);
    putc_('\n');
    for (uint64_t i = 0; i < rt_sig_count; i++) {
        struct sig *s = &rt_sig[i];
        puts_("SIG ");
        puthex(i, 4);
        putc_(' ');
        puthex(s->value, 16);
        if (s->kind == 0) {
            puts_(" rec ");
        } else if (s->kind == 1) {
            puts_(" ok ");
        } else {
            puts_(" BAD:");
            puthex(s->expected, 16);
            putc_(' ');
            bad++;
        }
        puts_(s->name);
        putc_('\n');
    }
    puts_("END ");
    puts_(rt_test_name);
    puts_(" cases=");
    putdec(rt_sig_count);
    puts_(" bad=");
    putdec(bad);
    putc_('\n');
    poweroff();
}

void rt_fatal(const char *msg)
{
    puts_("FATAL ");
    puts_(msg);
    puts_(" mcause=");
    puthex(rt_mtrap[0], 16);
    puts_(" mepc=");
    puthex(rt_mtrap[1], 16);
    puts_(" mtval=");
    puthex(rt_mtrap[2], 16);
    putc_('\n');
    rt_dump();
}
