/* A small real-time guest for Strata's hypervisor (issue 22; docs/realtime.md).
 *
 * Runs in VS-mode under `strata run`, alone on one vCPU, with SBI from the
 * hypervisor. Three periodic tasks (periods P, 2P and 5P) share one timer:
 * the guest arms the SBI timer (sbi_set_timer) for the earliest next
 * release, waits in WFI, and its interrupt handler records how late it was
 * entered (the `time` CSR at entry minus the deadline it programmed), then
 * runs every job that is due. Each job advances its task's state (an LCG
 * step) and a running checksum.
 *
 * At the end the guest checks itself and prints machine-readable lines:
 *   RT CONFIG period_us=... duration_ms=... warmup_ms=... timebase_hz=...
 *   RT HIST <upper bound in us>:<count> ...   (power-of-two buckets)
 *   RT RESULT samples=N p50=T p99=T p999=T max=T p50_us=U p99_us=U p999_us=U max_us=U
 *             late=L jobs=J releases=R regs_bad=B
 *   RT CHECK ok | RT CHECK FAIL <what>
 * then shuts the VM down with SBI SRST (reason "system failure" if a check
 * failed, so `strata run` exits 4).
 *
 * "late" counts jobs that started after their task's next release (the job
 * missed its implicit deadline, the end of its period); every release still
 * gets its job ("releases" == "jobs", checked), so a late job is served late,
 * never skipped.
 *
 * Parameters come from the VM's command line (/chosen/bootargs):
 *   rt.period_us=N   P, the shortest period (default 1000)
 *   rt.duration_ms=N how long to run after the warm-up (default 2000)
 *   rt.warmup_ms=N   a first stretch whose latencies are not recorded
 *                    (jobs still run and are checked; default 0)
 * The timebase comes from /cpus/timebase-frequency. */
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned char u8;

long idle_wait(u64 seed);

/* ---- SBI ---------------------------------------------------------------- */

#define SBI_TIME 0x54494D45UL
#define SBI_SRST 0x53525354UL
#define SBI_DBCN 0x4442434EUL

static long sbi(u64 eid, u64 fid, u64 a0, u64 a1, u64 a2) {
    register u64 r0 asm("a0") = a0, r1 asm("a1") = a1, r2 asm("a2") = a2;
    register u64 r6 asm("a6") = fid, r7 asm("a7") = eid;
    asm volatile("ecall" : "+r"(r0), "+r"(r1) : "r"(r2), "r"(r6), "r"(r7) : "memory");
    return (long)r0;
}

static void putc_(char c) { sbi(SBI_DBCN, 2, (u64)(u8)c, 0, 0); }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void putu(u64 v) {
    char b[24];
    int n = 0;
    do { b[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) putc_(b[--n]);
}
static void kv(const char *k, u64 v) { putc_(' '); puts_(k); putc_('='); putu(v); }

static inline u64 rdtime(void) { u64 t; asm volatile("rdtime %0" : "=r"(t)); return t; }

/* ---- the device tree: bootargs and the timebase ------------------------ */

static u32 be32(const void *p) {
    const u8 *b = p;
    return (u32)b[0] << 24 | (u32)b[1] << 16 | (u32)b[2] << 8 | b[3];
}

static int streq(const char *a, const char *b) {
    while (*a && *a == *b) { a++; b++; }
    return *a == *b;
}

/* The value of property `prop` of the top-level node `node`, or 0. */
static const u8 *fdt_prop(const u8 *fdt, const char *node, const char *prop, u32 *len) {
    if (!fdt || be32(fdt) != 0xd00dfeedU) return 0;
    const u8 *st = fdt + be32(fdt + 8);
    const char *strs = (const char *)fdt + be32(fdt + 12);
    u32 size = be32(fdt + 36);
    int depth = 0, in_node = 0;
    for (u32 off = 0; off + 4 <= size;) {
        u32 tok = be32(st + off);
        off += 4;
        if (tok == 1) {                      /* FDT_BEGIN_NODE */
            const char *name = (const char *)st + off;
            u32 n = 0;
            while (name[n]) n++;
            depth++;
            in_node = depth == 2 && streq(name, node);
            off += (n + 4) & ~3U;
        } else if (tok == 2) {               /* FDT_END_NODE */
            depth--;
            in_node = 0;
        } else if (tok == 3) {               /* FDT_PROP */
            u32 l = be32(st + off), nameoff = be32(st + off + 4);
            if (in_node && streq(strs + nameoff, prop)) { *len = l; return st + off + 8; }
            off += 8 + ((l + 3) & ~3U);
        } else if (tok == 4) {               /* FDT_NOP */
        } else {
            break;                           /* FDT_END, or garbage */
        }
    }
    return 0;
}

/* `key=N` in the command line, or `def`. */
static u64 arg(const char *cmdline, const char *key, u64 def) {
    if (!cmdline) return def;
    for (const char *p = cmdline; *p; p++) {
        if (p != cmdline && p[-1] != ' ') continue;
        const char *k = key, *q = p;
        while (*k && *q == *k) { k++; q++; }
        if (*k || *q != '=') continue;
        u64 v = 0;
        for (q++; *q >= '0' && *q <= '9'; q++) v = v * 10 + (u64)(*q - '0');
        return v;
    }
    return def;
}

/* ---- tasks -------------------------------------------------------------- */

#define NTASKS 3
#define MAX_SAMPLES (1 << 17)
#define LCG_A 6364136223846793005UL

static const u64 mult[NTASKS] = {1, 2, 5};
static u64 period[NTASKS];        /* in ticks */
static u64 next_release[NTASKS];
static u64 state[NTASKS];
static u64 count[NTASKS];
static u64 late, checksum, checksum_jobs;

static u32 samples[MAX_SAMPLES];
static u64 nsamples, dropped_samples;
static u64 programmed;            /* the deadline the timer is armed for */
static u64 record_from, stop_at, start;
static volatile int done;
static u64 spurious;
static u64 last_now;            /* `time` in the last handler that ran jobs */

static u64 seed_of(int k) { return 0x9e3779b97f4a7c15UL * (u64)(k + 1); }

static void job(int k) {
    state[k] = state[k] * LCG_A + (u64)(2 * k + 1);
    count[k]++;
    checksum += state[k] ^ (u64)k;
    checksum_jobs++;
}

static void arm(void) {
    u64 t = next_release[0];
    for (int k = 1; k < NTASKS; k++) if (next_release[k] < t) t = next_release[k];
    programmed = t;
    sbi(SBI_TIME, 0, t, 0, 0);
}

/* Called from trap_entry with the `time` read at entry. */
void on_trap(u64 entry) {
    u64 cause;
    asm volatile("csrr %0, scause" : "=r"(cause));
    if (cause != ((1UL << 63) | 5)) {        /* only the supervisor timer */
        spurious++;
        return;
    }
    if (entry < programmed) {                /* too early: not a deadline */
        spurious++;
        arm();
        return;
    }
    if (programmed >= record_from) {
        if (nsamples < MAX_SAMPLES) {
            u64 d = entry - programmed;
            samples[nsamples++] = d > 0xffffffffUL ? 0xffffffffU : (u32)d;
        } else {
            dropped_samples++;
        }
    }
    u64 now = rdtime();
    last_now = now;
    for (int k = 0; k < NTASKS; k++) {
        while (next_release[k] <= now) {
            if (now >= next_release[k] + period[k]) late++;
            job(k);
            next_release[k] += period[k];
        }
    }
    if (now >= stop_at) {
        done = 1;
        sbi(SBI_TIME, 0, ~0UL, 0, 0);        /* disarm */
        return;
    }
    arm();
}

/* Heapsort (the samples can be many; no quadratic sort in a guest). */
static void sift(u32 *a, u64 i, u64 n) {
    for (;;) {
        u64 c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && a[c + 1] > a[c]) c++;
        if (a[i] >= a[c]) return;
        u32 t = a[i]; a[i] = a[c]; a[c] = t;
        i = c;
    }
}
static void sort(u32 *a, u64 n) {
    for (u64 i = n / 2; i-- > 0;) sift(a, i, n);
    for (u64 e = n; e-- > 1;) {
        u32 t = a[0]; a[0] = a[e]; a[e] = t;
        sift(a, 0, e);
    }
}

static u64 pct(u64 num, u64 den) {           /* the sample at that quantile */
    u64 i = nsamples * num / den;
    return samples[i < nsamples ? i : nsamples - 1];
}

int main(u64 hartid, const u8 *fdt) {
    (void)hartid;
    u32 len = 0;
    const char *cmdline = (const char *)fdt_prop(fdt, "chosen", "bootargs", &len);
    const u8 *tb = fdt_prop(fdt, "cpus", "timebase-frequency", &len);
    u64 hz = tb && len == 4 ? be32(tb) : 10000000;
    u64 period_us = arg(cmdline, "rt.period_us", 1000);
    u64 duration_ms = arg(cmdline, "rt.duration_ms", 2000);
    u64 warmup_ms = arg(cmdline, "rt.warmup_ms", 0);
    if (period_us < 10) period_us = 10;

    puts_("RT CONFIG");
    kv("period_us", period_us);
    kv("duration_ms", duration_ms);
    kv("warmup_ms", warmup_ms);
    kv("timebase_hz", hz);
    putc_('\n');

    /* FP on (sstatus.FS = Initial) for the register check; timer interrupt
       enabled (sie.STIE), then interrupts (sstatus.SIE). */
    asm volatile("csrs sstatus, %0" :: "r"(1UL << 13));
    start = rdtime();
    record_from = start + warmup_ms * hz / 1000;
    stop_at = record_from + duration_ms * hz / 1000;
    for (int k = 0; k < NTASKS; k++) {
        period[k] = period_us * mult[k] * hz / 1000000;
        if (!period[k]) period[k] = 1;
        state[k] = seed_of(k);
        next_release[k] = start + period[k];
    }
    arm();
    asm volatile("csrs sie, %0" :: "r"(1UL << 5));
    asm volatile("csrs sstatus, %0" :: "r"(1UL << 1));

    u64 regs_bad = 0, waits = 0;
    while (!done) {
        regs_bad += (u64)idle_wait(0x5bd1e995UL * ++waits);
    }
    asm volatile("csrc sstatus, %0" :: "r"(1UL << 1));

    /* Checks: every task ran a job for every release up to its last one,
       its state is what that many LCG steps give, and the checksum adds up. */
    const char *fail = 0;
    u64 jobs = 0, releases = 0, sum = 0;
    for (int k = 0; k < NTASKS; k++) {
        /* release times start + i*period, 1 <= i, up to the last handler */
        u64 rel = (last_now - start) / period[k];
        releases += rel;
        jobs += count[k];
        u64 s = seed_of(k);
        for (u64 i = 0; i < count[k]; i++) {
            s = s * LCG_A + (u64)(2 * k + 1);
            sum += s ^ (u64)k;
        }
        if (s != state[k]) fail = "task state";
    }
    if (jobs != releases) fail = "a release without its job";
    if (jobs != checksum_jobs || sum != checksum) fail = "checksum";
    if (regs_bad) fail = "registers changed across wfi";
    if (spurious) fail = "unexpected traps";
    if (nsamples == 0) fail = "no samples";

    sort(samples, nsamples);
    puts_("RT HIST");
    {
        u64 i = 0;
        for (u64 b = 1; i < nsamples; b *= 2) {
            u64 lim = b * hz / 1000000, n = 0;    /* samples below b us */
            while (i < nsamples && samples[i] < lim) { i++; n++; }
            putc_(' '); putu(b); putc_(':'); putu(n);
        }
    }
    putc_('\n');
    u64 p50 = pct(50, 100), p99 = pct(99, 100), p999 = pct(999, 1000), max = nsamples ? samples[nsamples - 1] : 0;
    puts_("RT RESULT");
    kv("samples", nsamples);
    kv("p50", p50); kv("p99", p99); kv("p999", p999); kv("max", max);
    kv("p50_us", p50 * 1000000 / hz); kv("p99_us", p99 * 1000000 / hz);
    kv("p999_us", p999 * 1000000 / hz); kv("max_us", max * 1000000 / hz);
    kv("late", late); kv("jobs", jobs); kv("releases", releases);
    kv("regs_bad", regs_bad); kv("dropped", dropped_samples);
    putc_('\n');
    if (fail) { puts_("RT CHECK FAIL "); puts_(fail); putc_('\n'); }
    else puts_("RT CHECK ok\n");
    sbi(SBI_SRST, 0, 0, fail ? 1 : 0, 0);
    for (;;) asm volatile("wfi");
}
