/* Memory-model litmus tests for Strata's parallel harts (issue 13), run on
 * 2 to 8 harts in M-mode without firmware.
 *
 * Written from the RVWMO chapter of the RISC-V Unprivileged ISA (§17, and
 * the litmus patterns of its Appendix A): for each pattern the outcome
 * RVWMO forbids with the fences is counted, and must never be seen; the
 * same pattern without fences is counted too, to show the harness can see
 * reorderings where the host allows them (store buffering, on x86-64).
 * Concurrent counters (AMOADD, and an LR/SC loop) must come out exact.
 *
 * The guest prints one line per test ("name: N of M") and powers off with
 * the test finisher: pass, or fail with the number of the first failed
 * check as the code. .bss starts zeroed (RAM is zero at reset and the
 * loader zeroes a segment's memory-only part).
 */
#include <stdint.h>

/* The board's addresses (their home: crates/devices/src/board.rs, VIRT). */
#define UART_THR ((volatile uint8_t *)0x10000000UL)
#define FINISHER ((volatile uint32_t *)0x100000UL)
#define FINISHER_PASS 0x5555
#define FINISHER_FAIL 0x3333

#ifndef ITERS
#define ITERS 20000
#endif
#define COUNT_PER_HART 20000

static volatile uint64_t nharts_seen;   /* harts that arrived */
static volatile uint64_t amo_counter, lrsc_counter;
static volatile uint64_t done_counting;
/* Litmus locations, each on its own cache line. */
static volatile uint32_t x __attribute__((aligned(64)));
static volatile uint32_t y __attribute__((aligned(64)));
static volatile uint32_t r0s[ITERS], r1s[ITERS];
static volatile uint64_t nharts;

static void putc_(char c) { *UART_THR = (uint8_t)c; }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void putu(uint64_t v) {
    char b[21]; int i = 20; b[i] = 0;
    do { b[--i] = '0' + v % 10; v /= 10; } while (v);
    puts_(b + i);
}

static uint64_t amoadd(volatile uint64_t *p, uint64_t v) {
    uint64_t old;
    __asm__ volatile("amoadd.d.aqrl %0, %2, (%1)" : "=r"(old) : "r"(p), "r"(v) : "memory");
    return old;
}

static void lrsc_inc(volatile uint64_t *p) {
    uint64_t tmp, fail;
    __asm__ volatile(
        "1: lr.d %0, (%2)\n"
        "   addi %0, %0, 1\n"
        "   sc.d %1, %0, (%2)\n"
        "   bnez %1, 1b\n"
        : "=&r"(tmp), "=&r"(fail) : "r"(p) : "memory");
}

/* A sense-reversing barrier for n harts; waiters spin with PAUSE
   (Zihintpause) if `relax`, as Linux's cpu_relax does. The litmus pair
   spins without it: the two harts then leave the barrier as close together
   as the host allows, which is what lets a reordering show. */
struct barrier { volatile uint64_t count, sense; };
static struct barrier all_harts, litmus_pair;

static void barrier(struct barrier *b, uint64_t n, uint64_t *local_sense, int relax) {
    *local_sense ^= 1;
    if (amoadd(&b->count, 1) == n - 1) {
        b->count = 0;
        __asm__ volatile("fence rw, rw" ::: "memory");
        b->sense = *local_sense;
    } else {
        if (relax) while (b->sense != *local_sense) __asm__ volatile("pause");
        else while (b->sense != *local_sense) {}
    }
    __asm__ volatile("fence rw, rw" ::: "memory");
}

static void finish(int failed_check) {
    if (failed_check) *FINISHER = ((uint32_t)failed_check << 16) | FINISHER_FAIL;
    else *FINISHER = FINISHER_PASS;
    for (;;) __asm__ volatile("wfi");
}

/* Cross-modifying code: a function of two instructions that hart 0
   rewrites while hart 1 runs it (its own page, in RAM the guest may both
   write and execute in M-mode). */
static volatile uint32_t smc_code[1024] __attribute__((aligned(4096)));
static volatile uint64_t smc_flag, smc_ack, smc_wrong;
#define SMC_ITERS 2000
#define ADDI_A0(imm) ((((uint32_t)(imm) & 0xfff) << 20) | (10u << 7) | 0x13u) /* addi a0, x0, imm */
#define RET 0x00008067u                                                     /* jalr x0, 0(ra) */

static uint64_t call_smc(void) {
    uint64_t (*f)(void) = (uint64_t (*)(void))(uintptr_t)smc_code;
    return f();
}

/* Hart 0 writes `addi a0, x0, i`, then (fence) raises the flag; hart 1,
   which has been calling the function all along (so its old form is
   decoded and compiled), sees the flag, runs FENCE.I and must get i
   (Unpriv. §3: a FENCE.I makes stores visible to this hart's instruction
   fetches). */
static void smc_test(uint64_t hartid) {
    for (uint64_t i = 1; i <= SMC_ITERS; i++) {
        if (hartid == 0) {
            smc_code[0] = ADDI_A0(i);
            __asm__ volatile("fence rw, rw" ::: "memory");
            smc_flag = i;
            while (smc_ack != i) __asm__ volatile("pause");
        } else {
            while (smc_flag != i) (void)call_smc();
            __asm__ volatile("fence.i" ::: "memory");
            if (call_smc() != i) smc_wrong++;
            smc_ack = i;
        }
    }
}

enum pattern { SB, SB_FENCED, MP, MP_FENCED, LB, LB_FENCED, NPATTERNS };
static const char *names[NPATTERNS] = {"SB", "SB+fences", "MP", "MP+fences", "LB", "LB+fences"};

/* One iteration of a two-hart pattern on hart `me` (0 or 1); the loads'
   results go to r0s/r1s[i]. */
static void run_one(enum pattern p, int me, int i) {
    uint32_t r;
    switch (p) {
    case SB:         /* hart0: x=1; r0=y   hart1: y=1; r1=x   forbidden with fences: r0=r1=0 */
        if (me == 0) { __asm__ volatile("sw %1, 0(%2)\n lw %0, 0(%3)" : "=&r"(r) : "r"(1), "r"(&x), "r"(&y) : "memory"); r0s[i] = r; }
        else         { __asm__ volatile("sw %1, 0(%2)\n lw %0, 0(%3)" : "=&r"(r) : "r"(1), "r"(&y), "r"(&x) : "memory"); r1s[i] = r; }
        break;
    case SB_FENCED:
        if (me == 0) { __asm__ volatile("sw %1, 0(%2)\n fence rw, rw\n lw %0, 0(%3)" : "=&r"(r) : "r"(1), "r"(&x), "r"(&y) : "memory"); r0s[i] = r; }
        else         { __asm__ volatile("sw %1, 0(%2)\n fence rw, rw\n lw %0, 0(%3)" : "=&r"(r) : "r"(1), "r"(&y), "r"(&x) : "memory"); r1s[i] = r; }
        break;
    case MP:         /* hart0: x=1; y=1   hart1: r0=y; r1=x   forbidden with fences: r0=1, r1=0 */
        if (me == 0) { __asm__ volatile("sw %0, 0(%1)\n sw %0, 0(%2)" :: "r"(1), "r"(&x), "r"(&y) : "memory"); }
        else { uint32_t a, b; __asm__ volatile("lw %0, 0(%2)\n lw %1, 0(%3)" : "=&r"(a), "=&r"(b) : "r"(&y), "r"(&x) : "memory"); r0s[i] = a; r1s[i] = b; }
        break;
    case MP_FENCED:
        if (me == 0) { __asm__ volatile("sw %0, 0(%1)\n fence w, w\n sw %0, 0(%2)" :: "r"(1), "r"(&x), "r"(&y) : "memory"); }
        else { uint32_t a, b; __asm__ volatile("lw %0, 0(%2)\n fence r, r\n lw %1, 0(%3)" : "=&r"(a), "=&r"(b) : "r"(&y), "r"(&x) : "memory"); r0s[i] = a; r1s[i] = b; }
        break;
    case LB:         /* hart0: r0=x; y=1   hart1: r1=y; x=1   forbidden with fences: r0=r1=1 */
        if (me == 0) { __asm__ volatile("lw %0, 0(%2)\n sw %1, 0(%3)" : "=&r"(r) : "r"(1), "r"(&x), "r"(&y) : "memory"); r0s[i] = r; }
        else         { __asm__ volatile("lw %0, 0(%2)\n sw %1, 0(%3)" : "=&r"(r) : "r"(1), "r"(&y), "r"(&x) : "memory"); r1s[i] = r; }
        break;
    case LB_FENCED:
        if (me == 0) { __asm__ volatile("lw %0, 0(%2)\n fence r, w\n sw %1, 0(%3)" : "=&r"(r) : "r"(1), "r"(&x), "r"(&y) : "memory"); r0s[i] = r; }
        else         { __asm__ volatile("lw %0, 0(%2)\n fence r, w\n sw %1, 0(%3)" : "=&r"(r) : "r"(1), "r"(&y), "r"(&x) : "memory"); r1s[i] = r; }
        break;
    default:
        break;
    }
}

/* The outcome each pattern is counted for (the one RVWMO forbids once
   fenced). */
static int is_relaxed(enum pattern p, uint32_t r0, uint32_t r1) {
    switch (p) {
    case SB: case SB_FENCED: return r0 == 0 && r1 == 0;
    case MP: case MP_FENCED: return r0 == 1 && r1 == 0;
    default: return r0 == 1 && r1 == 1;
    }
}

void hart_main(uint64_t hartid) {
    uint64_t sense = 0, pair_sense = 0;
    amoadd(&nharts_seen, 1);
    /* Hart 0 fixes n once no hart has arrived for 100 ms of guest time
       (the 10 MHz timebase): a host thread may start late on a busy host. */
    if (hartid == 0) {
        uint64_t seen = 0, since = 0, now;
        for (;;) {
            __asm__ volatile("rdtime %0" : "=r"(now));
            if (nharts_seen != seen) { seen = nharts_seen; since = now; }
            else if (now - since > 1000000) break;
        }
        nharts = nharts_seen;
        __asm__ volatile("fence rw, rw" ::: "memory");
    } else {
        while (nharts == 0) {}
    }
    uint64_t n = nharts;
    if (hartid >= n) finish(9);   /* a hart that came too late */
    barrier(&all_harts, n, &sense, 1);

    /* 1. Counters: every hart adds COUNT_PER_HART with AMOADD and with an
       LR/SC loop; the totals must be exact. */
    for (int i = 0; i < COUNT_PER_HART; i++) {
        amoadd(&amo_counter, 1);
        lrsc_inc(&lrsc_counter);
    }
    barrier(&all_harts, n, &sense, 1);
    int failed = 0;
    if (hartid == 0) {
        puts_("harts: "); putu(n); puts_("\n");
        puts_("AMOADD counter: "); putu(amo_counter); puts_(" of "); putu(n * COUNT_PER_HART); puts_("\n");
        puts_("LR/SC counter: "); putu(lrsc_counter); puts_(" of "); putu(n * COUNT_PER_HART); puts_("\n");
        if (amo_counter != n * COUNT_PER_HART) failed = 1;
        else if (lrsc_counter != n * COUNT_PER_HART) failed = 2;
        if (failed) finish(failed);
    }

    /* 2. Two-hart litmus patterns on harts 0 and 1; the others are done
       (and wait in WFI, which costs their host threads nothing). */
    if (hartid >= 2) for (;;) __asm__ volatile("wfi");
    for (int p = 0; p < NPATTERNS; p++) {
        for (int i = 0; i < ITERS; i++) {
            if (hartid == 0) { x = 0; y = 0; }
            barrier(&litmus_pair, 2, &pair_sense, 0);
            run_one((enum pattern)p, (int)hartid, i);
            barrier(&litmus_pair, 2, &pair_sense, 0);
        }
        if (hartid == 0) {
            uint64_t seen = 0;
            for (int i = 0; i < ITERS; i++) seen += is_relaxed((enum pattern)p, r0s[i], r1s[i]);
            puts_(names[p]); puts_(": "); putu(seen); puts_(" of "); putu(ITERS); puts_("\n");
            /* The fenced variants' outcome is forbidden by RVWMO. */
            if ((p == SB_FENCED || p == MP_FENCED || p == LB_FENCED) && seen != 0 && !failed) failed = 3 + p;
        }
        barrier(&litmus_pair, 2, &pair_sense, 0);
    }
    /* 3. Cross-modifying code between harts 0 and 1. */
    if (hartid == 0) {
        smc_code[0] = ADDI_A0(0);
        smc_code[1] = RET;
        __asm__ volatile("fence rw, rw" ::: "memory");
    }
    barrier(&litmus_pair, 2, &pair_sense, 0);
    __asm__ volatile("fence.i" ::: "memory");
    smc_test(hartid);
    if (hartid == 0) {
        puts_("cross-modified code: "); putu(smc_wrong); puts_(" stale of "); putu(SMC_ITERS); puts_("\n");
        if (smc_wrong && !failed) failed = 10;
        finish(failed);
    }
    for (;;) __asm__ volatile("wfi");
}
