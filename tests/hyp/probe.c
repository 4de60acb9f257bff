/* Probe guest for tests/hyp/run-test.sh: a VS-mode program under Strata's
 * hypervisor that reads and writes guest-physical addresses outside its own
 * memory and reports, over the SBI debug console, what it got. A hostile
 * guest must get the architectural fault for such addresses (an access
 * fault injected by the hypervisor), never another VM's data. */
typedef unsigned long u64;

volatile u64 last_cause = ~0UL;

static long sbi(u64 eid, u64 fid, u64 a0, u64 a1, u64 a2) {
    register u64 r0 asm("a0") = a0, r1 asm("a1") = a1, r2 asm("a2") = a2;
    register u64 r6 asm("a6") = fid, r7 asm("a7") = eid;
    asm volatile("ecall" : "+r"(r0), "+r"(r1) : "r"(r2), "r"(r6), "r"(r7) : "memory");
    return (long)r0;
}

static void putc_(char c) { sbi(0x4442434E, 2, (u64)c, 0, 0); }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void hex(u64 v) {
    puts_("0x");
    for (int i = 60; i >= 0; i -= 4) putc_("0123456789abcdef"[(v >> i) & 15]);
}

/* A load whose trap, if any, the handler records; `ld` is 4 bytes, as the
 * handler's skip assumes. */
static u64 probe_load(u64 addr, u64 *cause) {
    u64 v = 0xdeadbeefUL;
    last_cause = ~0UL;
    asm volatile(".option push\n.option norvc\nld %0, 0(%1)\n.option pop" : "+r"(v) : "r"(addr) : "memory");
    *cause = last_cause;
    return v;
}

static u64 probe_store(u64 addr) {
    last_cause = ~0UL;
    asm volatile(".option push\n.option norvc\nsd %0, 0(%1)\n.option pop" :: "r"(0x5a5aUL), "r"(addr) : "memory");
    return last_cause;
}

static void report(const char *what, u64 addr, u64 cause, u64 value) {
    puts_("PROBE ");
    puts_(what);
    puts_(" addr=");
    hex(addr);
    puts_(" cause=");
    if (cause == ~0UL) puts_("none"); else hex(cause);
    puts_(" value=");
    hex(value);
    putc_('\n');
}

static u64 own_word = 0x1122334455667788UL;

int main(void) {
    u64 c, v;
    v = probe_load((u64)&own_word, &c);
    report("own", (u64)&own_word, c, v);
    /* Every address of a list the test gives on the command line would
     * need a parser; these cover the ranges that matter: just past this
     * VM's 16 MiB of RAM (where the next VM's memory lies in machine
     * memory), far beyond, and below RAM where no device is. */
    static const u64 targets[] = { 0x81000000UL, 0x81800000UL, 0x100000000UL, 0x20000000UL };
    for (unsigned i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        v = probe_load(targets[i], &c);
        report("load", targets[i], c, v);
        c = probe_store(targets[i]);
        report("store", targets[i], c, 0);
    }
    puts_("PROBE DONE\n");
    sbi(0x53525354, 0, 0, 0, 0);   /* SRST: shutdown */
    return 0;
}
