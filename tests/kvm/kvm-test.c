/*
 * kvm-test: a minimal KVM user (VMM) for RISC-V that runs a bare-metal
 * VS-mode payload (guest/) and checks what it does.  Built with
 * riscv64-linux-gnu-gcc -static; runs as /kvm-test inside the Strata guest.
 *
 * It exercises, through Linux's kvm.ko, the machine's H extension
 * (Privileged 20211203 ch. 8): G-stage translation (every first touch of a
 * guest page is a guest-page fault KVM handles), VS-stage translation the
 * guest builds itself, dirty logging (G-stage write protection + HFENCE.GVMA),
 * a read-only memslot, MMIO exits (htval/htinst or HLVX decode), SBI calls
 * forwarded to user space (KVM_EXIT_RISCV_SBI), VS-level timer and software
 * interrupts, FP state, VU-mode, and KVM_GET/SET_ONE_REG.
 *
 * Output: one line per failed check ("KVM-TEST FAIL: ..."), then
 *   KVM-TEST PASS <n> checks            (exit 0), or
 *   KVM-TEST FAIL <f> of <n> checks failed ...   (exit 1).
 * Env: KVM_TEST_TIMEOUT (seconds, default 600; a hung guest fails),
 *      KVM_TEST_VERBOSE=1 (print passing checks and every exit),
 *      KVM_TEST_QEMU_DEPARTURES=1 (the machine is QEMU 7.2: its documented
 *      departures from the spec print a note instead of failing).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proto.h"

/* Guest payload, embedded by payload.S (.incbin of guest.bin). */
extern const unsigned char guest_bin[], guest_bin_end[];

/* ONE_REG ids (linux/kvm.h + asm/kvm.h of RISC-V). Types the 6.1 uapi
   headers here lack are spelled out: SBI extension registers are type 8,
   subtype "single" 0, and DBCN is KVM_RISCV_SBI_EXT_ID 9 (kernel >= 6.8). */
#define REG64(type, idx) (KVM_REG_RISCV | KVM_REG_SIZE_U64 | (uint64_t)(type) | (uint64_t)(idx))
#define CORE_REG(i)     REG64(KVM_REG_RISCV_CORE, i)      /* 0 = pc, n = xn, 32 = mode */
#define CSR_REG(i)      REG64(KVM_REG_RISCV_CSR, i)
#define CONFIG_REG(i)   REG64(KVM_REG_RISCV_CONFIG, i)
#define TIMER_REG(i)    REG64(KVM_REG_RISCV_TIMER, i)
#define FPD_REG(i)      REG64(KVM_REG_RISCV_FP_D, i)
#define SBI_EXT_REG_TYPE (0x08UL << 24)
#define SBI_EXT_DBCN_IDX 9
#define CSR_SATP_IDX    8
#define CONFIG_MVENDORID 2
#define CONFIG_MARCHID  3
#define CONFIG_MIMPID   4
#define TIMER_FREQ      0
#define CORE_MODE       32

#define SBI_EXT_DBCN    0x4442434EUL

static unsigned npass, nfail, verbose, qemu_departures;
static volatile sig_atomic_t timed_out;

static void ck(int ok, const char *fmt, ...)
{
    va_list ap;
    if (ok)
        npass++;
    else
        nfail++;
    if (!ok || verbose) {
        printf(ok ? "KVM-TEST ok: " : "KVM-TEST FAIL: ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
    }
}

static void die(const char *fmt, ...)
{
    va_list ap;
    printf("KVM-TEST FAIL: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\nKVM-TEST FAIL %u of %u checks failed (fatal error above)\n", nfail + 1, npass + nfail + 1);
    fflush(stdout);
    exit(1);
}

static int vmfd, vcpufd;
static struct kvm_run *run;
static unsigned char *ram, *data, *rom;

static uint64_t get_reg(uint64_t id)
{
    uint64_t v = 0;
    struct kvm_one_reg r = { .id = id, .addr = (uint64_t)(uintptr_t)&v };
    if (ioctl(vcpufd, KVM_GET_ONE_REG, &r) < 0)
        die("KVM_GET_ONE_REG %#llx: %s", (unsigned long long)id, strerror(errno));
    return v;
}

static int set_reg(uint64_t id, uint64_t v)
{
    struct kvm_one_reg r = { .id = id, .addr = (uint64_t)(uintptr_t)&v };
    return ioctl(vcpufd, KVM_SET_ONE_REG, &r);
}

static void *guest_ptr(uint64_t gpa, uint64_t len)
{
    if (gpa >= RAM_GPA && gpa + len <= RAM_GPA + RAM_SIZE && gpa + len >= gpa)
        return ram + (gpa - RAM_GPA);
    if (gpa >= DATA_GPA && gpa + len <= DATA_GPA + DATA_SIZE && gpa + len >= gpa)
        return data + (gpa - DATA_GPA);
    return NULL;
}

static const char *guest_str(uint64_t gpa)
{
    static char buf[128];
    const char *p = guest_ptr(gpa, 1);
    size_t i;
    if (!p)
        return "(name outside guest RAM)";
    for (i = 0; i + 1 < sizeof buf && guest_ptr(gpa + i, 1) && p[i]; i++)
        buf[i] = p[i];
    buf[i] = 0;
    return buf;
}

static void memslot(int slot, uint64_t gpa, uint64_t size, void *host, uint32_t flags)
{
    struct kvm_userspace_memory_region m = {
        .slot = slot, .flags = flags, .guest_phys_addr = gpa,
        .memory_size = size, .userspace_addr = (uint64_t)(uintptr_t)host,
    };
    if (ioctl(vmfd, KVM_SET_USER_MEMORY_REGION, &m) < 0)
        die("KVM_SET_USER_MEMORY_REGION slot %d: %s", slot, strerror(errno));
}

static void *anon(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap %zu: %s", size, strerror(errno));
    return p;
}

/* ---- dirty log -------------------------------------------------------- */
#define DIRTY_WORDS ((DATA_PAGES + DATA_EXTRA + 63) / 64)
/* Reads (and so clears and write-protects) the DATA slot's dirty log and
   compares it with want; pages in maybe (may be NULL) are not judged.
   The log is returned in got. */
static void check_dirty(const char *what, const uint64_t *want, const uint64_t *maybe, uint64_t *got)
{
    struct kvm_dirty_log log = { .slot = 1 };
    unsigned extra = 0, missing = 0, first_extra = ~0u, first_missing = ~0u;
    memset(got, 0, DIRTY_WORDS * sizeof *got);
    log.dirty_bitmap = got;
    if (ioctl(vmfd, KVM_GET_DIRTY_LOG, &log) < 0) {
        ck(0, "%s: KVM_GET_DIRTY_LOG: %s", what, strerror(errno));
        return;
    }
    for (unsigned p = 0; p < DATA_PAGES + DATA_EXTRA; p++) {
        int g = (got[p / 64] >> (p % 64)) & 1, w = (want[p / 64] >> (p % 64)) & 1;
        if (maybe && ((maybe[p / 64] >> (p % 64)) & 1))
            continue;
        if (g && !w) { extra++; if (first_extra == ~0u) first_extra = p; }
        if (!g && w) { missing++; if (first_missing == ~0u) first_missing = p; }
    }
    ck(!missing, "%s: dirty log has every written page (%u missing, first page %d)",
       what, missing, missing ? (int)first_missing : -1);
    ck(!extra, "%s: dirty log has no unwritten page (%u extra, first page %d)",
       what, extra, extra ? (int)first_extra : -1);
}
static void setbit(uint64_t *m, unsigned p) { m[p / 64] |= 1ULL << (p % 64); }

/* ---- MMIO --------------------------------------------------------------- */
static const struct mmio_step script[MMIO_SCRIPT_LEN] = MMIO_SCRIPT;
static struct mmio_step mlog[64];
static unsigned nmlog, nrom_writes;
static struct mmio_step rom_writes[8];
static unsigned char scratch[MMIO_SIZE];

static void handle_mmio(void)
{
    uint64_t a = run->mmio.phys_addr;
    unsigned len = run->mmio.len, w = run->mmio.is_write;
    uint64_t val = 0;
    if (len != 1 && len != 2 && len != 4 && len != 8) {
        ck(0, "MMIO exit with length %u at %#llx", len, (unsigned long long)a);
        return;
    }
    if (w)
        memcpy(&val, run->mmio.data, len);
    if (verbose)
        printf("KVM-TEST mmio %s %#llx len %u val %#llx\n", w ? "write" : "read",
               (unsigned long long)a, len, (unsigned long long)val);
    if (a >= ROM_GPA && a < ROM_GPA + ROM_SIZE) {
        if (!w)
            ck(0, "MMIO read exit inside the ROM memslot at %#llx (reads must come from memory)",
               (unsigned long long)a);
        else if (nrom_writes < 8)
            rom_writes[nrom_writes++] = (struct mmio_step){ (unsigned)(a - ROM_GPA), len, 1, val };
        return;
    }
    if (a < MMIO_GPA || a + len > MMIO_GPA + MMIO_SIZE) {
        ck(0, "MMIO exit at unexpected GPA %#llx len %u %s", (unsigned long long)a, len,
           w ? "write" : "read");
        memset(run->mmio.data, 0, 8);
        return;
    }
    unsigned off = (unsigned)(a - MMIO_GPA);
    if (nmlog < 64)
        mlog[nmlog] = (struct mmio_step){ off, len, w, val };
    nmlog++;
    if (w) {
        if (off < MMIO_SCRATCH)
            ck(0, "MMIO write to the read-only pattern area at offset %#x", off);
        else
            memcpy(scratch + off, &val, len);
    } else {
        unsigned char b[8];
        for (unsigned i = 0; i < len; i++)
            b[i] = off + i < MMIO_SCRATCH ? MMIO_PAT(off + i) : scratch[off + i];
        memset(run->mmio.data, 0, 8);
        memcpy(run->mmio.data, b, len);
    }
}

static void check_mmio_log(void)
{
    unsigned bad = 0, first = ~0u;
    ck(nmlog == MMIO_SCRIPT_LEN, "MMIO: %u exits for the %u accesses of the script", nmlog, MMIO_SCRIPT_LEN);
    for (unsigned i = 0; i < MMIO_SCRIPT_LEN && i < nmlog && i < 64; i++) {
        const struct mmio_step *e = &script[i], *g = &mlog[i];
        uint64_t mask = g->len == 8 ? ~0ULL : (1ULL << (8 * g->len)) - 1;
        int ok = e->off == g->off && e->len == g->len && e->write == g->write &&
                 (!e->write || e->val == (g->val & mask));
        if (!ok) {
            bad++;
            if (first == ~0u) {
                first = i;
                printf("KVM-TEST note: MMIO step %u: want off %#x len %u %s %#llx, got off %#x len %u %s %#llx\n",
                       i, e->off, e->len, e->write ? "write" : "read", e->val,
                       g->off, g->len, g->write ? "write" : "read", g->val);
            }
        }
    }
    ck(!bad, "MMIO: every exit has the scripted GPA, length, direction and data (%u wrong)", bad);
}

/* ---- SBI ------------------------------------------------------------------ */
static int phases_seen[PH_COUNT];
static int next_phase = PH_DATA_WRITTEN;
static unsigned guest_checks, reports_seen, hello_seen, dbcn_seen, fatal_seen;
static uint64_t guest_reported_checks = ~0ULL, reported_satp, cfg_mvendorid, cfg_marchid, cfg_mimpid;

static void do_phase(uint64_t ph)
{
    uint64_t want[DIRTY_WORDS], maybe[DIRTY_WORDS], got[DIRTY_WORDS];
    ck(ph == (uint64_t)next_phase, "guest phase %llu arrives in order (expected %d)",
       (unsigned long long)ph, next_phase);
    if (ph < PH_COUNT)
        phases_seen[ph] = 1;
    next_phase = (int)ph + 1;
    memset(want, 0, sizeof want);
    memset(maybe, 0, sizeof maybe);
    switch (ph) {
    case PH_DATA_WRITTEN: {
        unsigned bad = 0;
        for (unsigned i = 0; i < DATA_PAGES; i++) {
            const uint64_t *p = (const uint64_t *)(data + PERM(i) * 4096UL);
            if (p[0] != PAT_FIRST(i) || p[511] != PAT_LAST(i)) {
                if (!bad)
                    printf("KVM-TEST note: VA page %u -> data page %lu holds %#llx/%#llx\n",
                           i, PERM(i), (unsigned long long)p[0], (unsigned long long)p[511]);
                bad++;
            }
        }
        ck(!bad, "512 guest-VA pages landed on the GPAs the guest's page tables name (%u wrong)", bad);
        for (unsigned p = 0; p < DATA_PAGES; p++)
            setbit(want, p);
        setbit(want, AD_PT_PAGE);               /* guest built a page table there */
        check_dirty("after writing all pages", want, NULL, got);
        for (unsigned p = 0; p < DATA_PAGES + DATA_EXTRA; p++)
            ((uint64_t *)(data + p * 4096UL))[1] = HOST_TOKEN(p);
        break;
    }
    case PH_SUBSET_WRITTEN: {
        unsigned bad = 0;
        for (unsigned i = 0; i < DATA_PAGES; i++) {
            uint64_t v = ((const uint64_t *)(data + PERM(i) * 4096UL))[2];
            bad += v != (i % 3 == 0 ? PHASE2_VAL(i) : 0);
            if (i % 3 == 0)
                setbit(want, PERM(i));
        }
        ck(!bad, "second-round writes to pages i%%3==0 landed (%u wrong)", bad);
        check_dirty("after rewriting pages i%3==0 (write-protected by the last log read)", want, NULL, got);
        break;
    }
    case PH_AD_DONE: {
        const uint64_t *pt = (const uint64_t *)(data + AD_PT_PAGE * 4096UL);
        ck((pt[0] & 0xc0) == 0xc0, "A/D test: the VS leaf PTE in the DATA slot has A and D set (%#llx)",
           (unsigned long long)pt[0]);
        setbit(want, AD_TARGET_PAGE);           /* the guest's store */
        setbit(maybe, AD_PT_PAGE);              /* judged below */
        check_dirty("after the A/D test", want, maybe, got);
        /* The A/D update is a write to the VS page table, an implicit access
           that the G-stage must check as a store (Priv 20211203 8.5.1) -- the
           page is write-protected for dirty logging, so KVM takes the guest-
           page fault and logs the page; or (Svade) the guest's handler writes
           it.  Either way the page is dirty. */
        if (!((got[AD_PT_PAGE / 64] >> (AD_PT_PAGE % 64)) & 1) && qemu_departures)
            printf("KVM-TEST known QEMU departure: the VS page-table page was not logged dirty after its "
                   "A/D update (QEMU 7.2 updates VS-stage A/D bits without a G-stage write check; "
                   "Priv 20211203 8.5.1 requires it)\n");
        else
            ck((got[AD_PT_PAGE / 64] >> (AD_PT_PAGE % 64)) & 1,
               "after the A/D test: the VS page-table page (A/D written through the G-stage) is dirty");
        break;
    }
    case PH_ROM_DONE: {
        unsigned bad = 0;
        for (unsigned k = 0; k < ROM_SIZE / 8; k++)
            bad += ((const uint64_t *)rom)[k] != ROM_WORD(k);
        ck(!bad, "ROM slot contents unchanged by guest stores (%u words changed)", bad);
        ck(nrom_writes == 2, "ROM: each of the 2 guest stores became an MMIO write exit (got %u)", nrom_writes);
        if (nrom_writes >= 2) {
            ck(rom_writes[0].off == 0x10 && rom_writes[0].len == 8 &&
               rom_writes[0].val == 0x7777777777777777ULL,
               "ROM: sd exit: offset %#x len %u data %#llx", rom_writes[0].off, rom_writes[0].len,
               (unsigned long long)rom_writes[0].val);
            ck(rom_writes[1].off == 0x2004 && rom_writes[1].len == 4 &&
               (rom_writes[1].val & 0xffffffffULL) == 0x66666666ULL,
               "ROM: sw exit: offset %#x len %u data %#llx", rom_writes[1].off, rom_writes[1].len,
               (unsigned long long)rom_writes[1].val);
        }
        break;
    }
    case PH_MMIO_DONE:
        check_mmio_log();
        break;
    default:
        ck(0, "unknown guest phase %llu", (unsigned long long)ph);
    }
}

static void do_report(uint64_t id, uint64_t v)
{
    reports_seen |= 1u << (id & 31);
    switch (id) {
    case R_SATP:
        reported_satp = v;
        ck(get_reg(CSR_REG(CSR_SATP_IDX)) == v, "KVM_GET_ONE_REG(satp) = %#llx, the guest wrote %#llx",
           (unsigned long long)get_reg(CSR_REG(CSR_SATP_IDX)), (unsigned long long)v);
        break;
    case R_FP_IN:
        ck(v == FP_IN_BITS, "guest f10 at entry = %#llx (set with KVM_SET_ONE_REG to %#llx)",
           (unsigned long long)v, FP_IN_BITS);
        break;
    case R_MVENDORID:
        ck(v == cfg_mvendorid, "SBI mvendorid %#llx = ONE_REG config %#llx", (unsigned long long)v,
           (unsigned long long)cfg_mvendorid);
        break;
    case R_MARCHID:
        ck(v == cfg_marchid, "SBI marchid %#llx = ONE_REG config %#llx", (unsigned long long)v,
           (unsigned long long)cfg_marchid);
        break;
    case R_MIMPID:
        ck(v == cfg_mimpid, "SBI mimpid %#llx = ONE_REG config %#llx", (unsigned long long)v,
           (unsigned long long)cfg_mimpid);
        break;
    case R_SBI_SPEC:
        /* SBI 2.0 4.1: bits 30:24 major, 23:0 minor; KVM implements >= 0.2 */
        ck(!(v >> 31) && (((v >> 24) & 0x7f) > 0 || (v & 0xffffff) >= 2),
           "SBI spec version %llu.%llu is at least 0.2", (unsigned long long)((v >> 24) & 0x7f),
           (unsigned long long)(v & 0xffffff));
        break;
    case R_MMIO_COUNT:
        ck(v == MMIO_SCRIPT_LEN && v == nmlog, "guest made %llu MMIO accesses, VMM saw %u exits, script has %u",
           (unsigned long long)v, nmlog, MMIO_SCRIPT_LEN);
        break;
    case R_NCHECKS:
        guest_reported_checks = v;
        break;
    default:
        ck(0, "unknown guest report id %llu", (unsigned long long)id);
    }
}

/* Returns 0 to stop the run loop. */
static int handle_sbi(void)
{
    uint64_t eid = run->riscv_sbi.extension_id, fid = run->riscv_sbi.function_id;
    unsigned long *a = run->riscv_sbi.args;
    run->riscv_sbi.ret[0] = 0;
    run->riscv_sbi.ret[1] = 0;
    if (verbose)
        printf("KVM-TEST sbi eid %#llx fid %llu a0 %#lx a1 %#lx a2 %#lx\n", (unsigned long long)eid,
               (unsigned long long)fid, a[0], a[1], a[2]);
    if (eid == SBI_EXT_DBCN) {
        dbcn_seen++;
        if (fid == 0) {                         /* console_write(len, lo, hi) */
            uint64_t gpa = a[1] | ((uint64_t)a[2] << 32), len = a[0];
            const char *p = guest_ptr(gpa, len);
            static const char want[] = "KVM-TEST guest: hello from VS-mode";
            ck(p != NULL, "DBCN write buffer %#llx+%llu inside guest memory", (unsigned long long)gpa,
               (unsigned long long)len);
            if (p) {
                fwrite(p, 1, len, stdout);
                ck(len >= sizeof want - 1 && !memcmp(p, want, sizeof want - 1),
                   "DBCN write: the VMM read the guest's string from its GPA");
            }
            run->riscv_sbi.ret[1] = p ? len : 0;
            run->riscv_sbi.ret[0] = p ? 0 : (unsigned long)-3L; /* SBI_ERR_INVALID_PARAM */
        } else {
            ck(0, "unexpected DBCN function %llu", (unsigned long long)fid);
            run->riscv_sbi.ret[0] = (unsigned long)-2L;
        }
        return 1;
    }
    if (eid != TEST_EID) {
        ck(0, "SBI call forwarded to user space for eid %#llx fid %llu (not expected)",
           (unsigned long long)eid, (unsigned long long)fid);
        run->riscv_sbi.ret[0] = (unsigned long)-2L;        /* SBI_ERR_NOT_SUPPORTED */
        return 1;
    }
    switch (fid) {
    case F_HELLO:
        hello_seen++;
        ck(a[0] == HELLO_MAGIC, "hello magic in a0 (%#lx)", a[0]);
        ck(a[1] == 0, "guest a0 at entry = hart id 0 (%#lx)", a[1]);
        ck(a[2] == BOOTINFO_GPA, "guest a1 at entry = bootinfo GPA (%#lx)", a[2]);
        ck(a[3] == BOOT_A2, "guest a2 at entry = %#llx (%#lx)", BOOT_A2, a[3]);
        run->riscv_sbi.ret[1] = ~a[0];
        return 1;
    case F_CHECK:
        guest_checks++;
        ck(a[0] == a[1], "guest: %s (got %#lx, expected %#lx)", guest_str(a[2]), a[0], a[1]);
        run->riscv_sbi.ret[1] = a[0] == a[1];
        return 1;
    case F_REPORT:
        do_report(a[0], a[1]);
        return 1;
    case F_PHASE:
        do_phase(a[0]);
        return 1;
    case F_FATAL:
        fatal_seen++;
        ck(0, "unexpected trap in the guest: scause %#lx sepc %#lx stval %#lx", a[0], a[1], a[2]);
        return 0;
    default:
        ck(0, "unknown test SBI function %llu", (unsigned long long)fid);
        run->riscv_sbi.ret[0] = (unsigned long)-2L;
        return 1;
    }
}

static void on_alarm(int sig) { (void)sig; timed_out = 1; }

int main(void)
{
    int kvm, ret;
    size_t runsz;
    unsigned long exits = 0, n_mmio = 0, n_sbi = 0, n_other = 0;
    int shutdown = 0;
    const char *e;
    unsigned timeout = 600;

    setvbuf(stdout, NULL, _IOLBF, 0);
    verbose = getenv("KVM_TEST_VERBOSE") && *getenv("KVM_TEST_VERBOSE") == '1';
    /* Set by kvm-test.sh --machine qemu only: documented QEMU 7.2 departures
       from the specification are noted instead of failed. */
    qemu_departures = getenv("KVM_TEST_QEMU_DEPARTURES") && *getenv("KVM_TEST_QEMU_DEPARTURES") == '1';
    if ((e = getenv("KVM_TEST_TIMEOUT")) && atoi(e) > 0)
        timeout = (unsigned)atoi(e);

    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        die("cannot open /dev/kvm: %s (is kvm.ko loaded? does the machine have the H extension?)",
            strerror(errno));
    ret = ioctl(kvm, KVM_GET_API_VERSION, 0);
    ck(ret == KVM_API_VERSION, "KVM_GET_API_VERSION = %d (want %d)", ret, KVM_API_VERSION);
    ck(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) > 0, "KVM_CAP_USER_MEMORY");
    ck(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_ONE_REG) > 0, "KVM_CAP_ONE_REG");
    ck(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) > 0, "KVM_CAP_READONLY_MEM");
    vmfd = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vmfd < 0)
        die("KVM_CREATE_VM: %s", strerror(errno));

    ram = anon(RAM_SIZE);
    data = anon(DATA_SIZE);
    rom = anon(ROM_SIZE);
    if ((size_t)(guest_bin_end - guest_bin) > RAM_SIZE - 0x1000)
        die("guest payload too large (%zu bytes)", (size_t)(guest_bin_end - guest_bin));
    memcpy(ram, guest_bin, (size_t)(guest_bin_end - guest_bin));
    for (unsigned k = 0; k < ROM_SIZE / 8; k++)
        ((uint64_t *)rom)[k] = ROM_WORD(k);
    memslot(0, RAM_GPA, RAM_SIZE, ram, 0);
    memslot(1, DATA_GPA, DATA_SIZE, data, KVM_MEM_LOG_DIRTY_PAGES);
    memslot(2, ROM_GPA, ROM_SIZE, rom, KVM_MEM_READONLY);

    vcpufd = ioctl(vmfd, KVM_CREATE_VCPU, 0);
    if (vcpufd < 0)
        die("KVM_CREATE_VCPU: %s", strerror(errno));
    runsz = (size_t)ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    run = mmap(NULL, runsz, PROT_READ | PROT_WRITE, MAP_SHARED, vcpufd, 0);
    if (run == MAP_FAILED)
        die("mmap kvm_run: %s", strerror(errno));

    cfg_mvendorid = get_reg(CONFIG_REG(CONFIG_MVENDORID));
    cfg_marchid = get_reg(CONFIG_REG(CONFIG_MARCHID));
    cfg_mimpid = get_reg(CONFIG_REG(CONFIG_MIMPID));
    {
        struct bootinfo *bi = (struct bootinfo *)(ram + (BOOTINFO_GPA - RAM_GPA));
        bi->magic = BOOT_MAGIC;
        bi->timebase = get_reg(TIMER_REG(TIMER_FREQ));
        bi->mvendorid = cfg_mvendorid;
        bi->marchid = cfg_marchid;
        bi->mimpid = cfg_mimpid;
        ck(bi->timebase > 0, "KVM timer frequency %llu Hz", (unsigned long long)bi->timebase);
    }
    ret = set_reg(REG64(SBI_EXT_REG_TYPE, SBI_EXT_DBCN_IDX), 1);
    ck(ret == 0, "enable SBI DBCN forwarding with KVM_SET_ONE_REG: %s", ret ? strerror(errno) : "ok");
    ck(set_reg(CORE_REG(0), RAM_GPA) == 0, "set pc");
    ck(set_reg(CORE_REG(10), 0) == 0, "set a0");
    ck(set_reg(CORE_REG(11), BOOTINFO_GPA) == 0, "set a1");
    ck(set_reg(CORE_REG(12), BOOT_A2) == 0, "set a2");
    ret = set_reg(FPD_REG(10), FP_IN_BITS);
    ck(ret == 0, "set f10 (KVM_REG_RISCV_FP_D): %s", ret ? strerror(errno) : "ok");
    ck(get_reg(CORE_REG(0)) == RAM_GPA, "pc reads back");
    ck(get_reg(CORE_REG(CORE_MODE)) == KVM_RISCV_MODE_S, "vCPU starts in (V)S-mode");

    {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;           /* no SA_RESTART: KVM_RUN returns EINTR */
        sigaction(SIGALRM, &sa, NULL);
        alarm(timeout);
    }
    for (;;) {
        ret = ioctl(vcpufd, KVM_RUN, 0);
        if (ret < 0 && errno == EINTR) {
            if (timed_out) {
                ck(0, "guest did not finish within %u s (next phase %d, %u guest checks so far)",
                   timeout, next_phase, guest_checks);
                break;
            }
            continue;
        }
        if (ret < 0) {
            ck(0, "KVM_RUN: %s (pc %#llx)", strerror(errno), (unsigned long long)get_reg(CORE_REG(0)));
            break;
        }
        exits++;
        if (run->exit_reason == KVM_EXIT_MMIO) {
            n_mmio++;
            handle_mmio();
        } else if (run->exit_reason == KVM_EXIT_RISCV_SBI) {
            n_sbi++;
            if (!handle_sbi())
                break;
        } else if (run->exit_reason == KVM_EXIT_SYSTEM_EVENT) {
            ck(run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN,
               "guest SBI SRST shutdown -> KVM_EXIT_SYSTEM_EVENT type %u (want SHUTDOWN)",
               run->system_event.type);
            shutdown = 1;
            break;
        } else {
            n_other++;
            ck(0, "unexpected exit reason %u (pc %#llx)", run->exit_reason,
               (unsigned long long)get_reg(CORE_REG(0)));
            break;
        }
        if (exits > 100000) {
            ck(0, "more than 100000 exits: guest looping?");
            break;
        }
    }
    alarm(0);

    ck(shutdown, "guest ran to its SBI shutdown");
    if (shutdown) {
        ck(get_reg(CORE_REG(18)) == 0x5252525252525252ULL, "s2 marker via KVM_GET_ONE_REG (%#llx)",
           (unsigned long long)get_reg(CORE_REG(18)));
        ck(get_reg(CORE_REG(19)) == 0x5353535353535353ULL, "s3 marker via KVM_GET_ONE_REG (%#llx)",
           (unsigned long long)get_reg(CORE_REG(19)));
        ck(get_reg(FPD_REG(11)) == FP_OUT_BITS, "f11 = f10 + f10 computed in the guest (%#llx; FP state saved by KVM)",
           (unsigned long long)get_reg(FPD_REG(11)));
        ck(get_reg(CSR_REG(CSR_SATP_IDX)) == reported_satp, "vsatp still the guest's at exit");
    }
    ck(hello_seen == 1, "hello call seen once (%u)", hello_seen);
    ck(dbcn_seen == 1, "DBCN call seen once (%u)", dbcn_seen);
    for (int p = PH_DATA_WRITTEN; p < PH_COUNT; p++)
        ck(phases_seen[p], "guest phase %d reached", p);
    ck(guest_reported_checks == guest_checks, "guest made %llu checks, VMM received %u",
       (unsigned long long)guest_reported_checks, guest_checks);
    ck(!fatal_seen, "no unexpected guest trap");
    printf("KVM-TEST exits: %lu (sbi %lu, mmio %lu, other %lu), guest checks %u\n", exits, n_sbi, n_mmio,
           n_other, guest_checks);
    if (nfail) {
        printf("KVM-TEST FAIL %u of %u checks failed\n", nfail, npass + nfail);
        return 1;
    }
    printf("KVM-TEST PASS %u checks\n", npass);
    return 0;
}
