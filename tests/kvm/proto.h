/*
 * Shared between the KVM test VMM (kvm-test.c, runs in the Linux guest as a
 * KVM user) and its guest payload (guest/, runs in VS-mode under KVM).
 *
 * Guest-physical layout (all slots are plain anonymous memory in the VMM):
 *   RAM   slot 0  0x8000_0000  2 MiB   code, data, stack, VS page tables
 *   DATA  slot 1  0x9000_0000  DATA_PAGES pages, dirty logging on
 *   ROM   slot 2  0xA000_0000  64 KiB  KVM_MEM_READONLY, filled by the VMM
 *   MMIO          0x1000_0000  one page in no memslot: every access is a
 *                              KVM_EXIT_MMIO that the VMM answers
 *
 * Guest virtual layout (Sv39, built by the guest itself):
 *   0x0000_0000 1 GiB leaf -> GPA 0          (RW, reaches MMIO)
 *   0x4000_0000 4 KiB leaves: VA page i -> DATA page PERM(i)  (scrambled)
 *   0x4020_0000 unmapped at first: the guest's own page-fault handler maps
 *               it (2 MiB leaf -> DATA) on first touch
 *   0x4060_0000 2 MiB leaf, read-only -> DATA  (guest-level store fault)
 *   0x4080_0000 4 KiB leaf with A=D=0 whose leaf table lives in DATA
 *               (A/D update through the G-stage of a write-protected page)
 *   0x8000_0000 1 GiB leaf identity -> RAM/DATA/ROM (RWX)
 *   0x1_0000_0000 1 GiB leaf, U=1 -> RAM (VU-mode code runs here)
 *   0xFFFF_FFFF_C000_0000 1 GiB leaf -> RAM (code runs from the high alias)
 */
#ifndef KVM_TEST_PROTO_H
#define KVM_TEST_PROTO_H

#define RAM_GPA         0x80000000UL
#define RAM_SIZE        (2UL << 20)
#define DATA_GPA        0x90000000UL
#define DATA_PAGES      512            /* scrambled-mapped pages */
#define DATA_EXTRA      16             /* pages 512.. used for page tables etc. */
#define DATA_SIZE       ((DATA_PAGES + DATA_EXTRA) * 4096UL)
#define ROM_GPA         0xA0000000UL
#define ROM_SIZE        (64UL << 10)
#define MMIO_GPA        0x10000000UL
#define MMIO_SIZE       0x1000UL
#define BOOTINFO_GPA    (RAM_GPA + RAM_SIZE - 0x1000)   /* written by the VMM */

#define DATA_VA         0x40000000UL
#define LAZY_VA         0x40200000UL
#define ROVA            0x40600000UL
#define AD_VA           0x40800000UL
#define USER_VA_BASE    0x100000000UL
#define HIGH_VA_BASE    0xFFFFFFFFC0000000UL

/* Extra DATA pages (index >= DATA_PAGES) */
#define AD_PT_PAGE      (DATA_PAGES + 0)   /* leaf table for AD_VA */
#define AD_TARGET_PAGE  (DATA_PAGES + 1)   /* page mapped at AD_VA */

/* VA page i maps DATA page PERM(i); 167 is odd, so PERM is a bijection. */
#define PERM(i)         (((unsigned long)(i) * 167UL) % DATA_PAGES)
#define PAT_FIRST(i)    (0x5A5A000000000000ULL | ((unsigned long long)(i) << 16) | 0xA5ULL)
#define PAT_LAST(i)     (~(unsigned long long)(i))
#define HOST_TOKEN(p)   ((unsigned long long)(p) * 0x9E3779B97F4A7C15ULL)
#define PHASE2_VAL(i)   (0x3300000000000000ULL ^ ((unsigned long long)(i) * 0x10001ULL))
#define ROM_WORD(k)     (0xC0DE000000000000ULL ^ ((unsigned long long)(k) * 0x100000001ULL))
/* MMIO device: offsets below 0x800 read as a byte pattern, 0x800.. is a
   scratch register file (stores are kept, loads return them). */
#define MMIO_PAT(off)   ((unsigned char)((off) * 7 + 0x91))
#define MMIO_SCRATCH    0x800

#define BOOT_MAGIC      0x4b564d54424f4f54ULL   /* "KVMTBOOT" */
#define HELLO_MAGIC     0x5354524154410001ULL
#define BOOT_A2         0x12345678abcdef01ULL
#define FP_IN_BITS      0x3ff8000000000000ULL   /* 1.5 */
#define FP_OUT_BITS     0x4008000000000000ULL   /* 3.0 = 1.5 + 1.5 */

struct bootinfo {
    unsigned long long magic;
    unsigned long long timebase;      /* KVM timer frequency (Hz) */
    unsigned long long mvendorid, marchid, mimpid;
};

/* Test SBI extension: in the SBI experimental range (0x0800_0000-0x08FF_FFFF),
   which KVM forwards to user space as KVM_EXIT_RISCV_SBI (SBI 2.0 ch. 3). */
#define TEST_EID        0x08005354UL
enum test_fid {
    F_HELLO  = 0,   /* a0 = HELLO_MAGIC, a1..a3 = boot a0..a2; value = ~a0 */
    F_CHECK  = 1,   /* a0 = got, a1 = expected, a2 = GPA of name; value = 1 if equal */
    F_REPORT = 2,   /* a0 = report id, a1 = value: the VMM checks it */
    F_PHASE  = 3,   /* a0 = phase: the VMM checks guest memory / dirty log */
    F_FATAL  = 4,   /* a0 = scause, a1 = sepc, a2 = stval: unexpected trap */
};
enum report_id {
    R_SATP = 1,         /* satp as written by the guest (VMM reads vsatp) */
    R_FP_IN,            /* f10 bits at entry (VMM set it via ONE_REG) */
    R_MVENDORID, R_MARCHID, R_MIMPID,   /* SBI base results */
    R_SBI_SPEC,         /* SBI spec version */
    R_MMIO_COUNT,       /* number of MMIO accesses the guest made */
    R_NCHECKS,          /* number of F_CHECK calls made */
};
enum phase_id {
    PH_DATA_WRITTEN = 1, /* all DATA_PAGES written: check GPAs + dirty log (all) */
    PH_SUBSET_WRITTEN,   /* pages i%3==0 written again: dirty log exactly those */
    PH_AD_DONE,          /* A/D test done: PT page + target page dirty */
    PH_ROM_DONE,         /* ROM read/write test done */
    PH_MMIO_DONE,        /* MMIO script done: compare the access log */
    PH_COUNT
};

/* The MMIO script: every access the guest makes, in order.  The VMM
   compares its log of KVM_EXIT_MMIO exits against this. */
struct mmio_step { unsigned int off, len, write; unsigned long long val; };
#define MMIO_SCRIPT { \
    { 0x005, 1, 0, 0 },  /* lb  */ \
    { 0x005, 1, 0, 0 },  /* lbu */ \
    { 0x022, 2, 0, 0 },  /* lh  */ \
    { 0x022, 2, 0, 0 },  /* lhu */ \
    { 0x044, 4, 0, 0 },  /* lw  */ \
    { 0x044, 4, 0, 0 },  /* lwu */ \
    { 0x088, 8, 0, 0 },  /* ld  */ \
    { 0x104, 4, 0, 0 },  /* c.lw */ \
    { 0x108, 8, 0, 0 },  /* c.ld */ \
    { 0x801, 1, 1, 0xa5 },                 /* sb */ \
    { 0x802, 2, 1, 0xbeef },               /* sh */ \
    { 0x804, 4, 1, 0xdeadbeef },           /* sw */ \
    { 0x808, 8, 1, 0x0123456789abcdefULL },/* sd */ \
    { 0x810, 4, 1, 0x13572468 },           /* c.sw */ \
    { 0x818, 8, 1, 0xfedcba9876543210ULL },/* c.sd */ \
    { 0x808, 8, 0, 0 },  /* ld back */ \
    { 0x804, 4, 0, 0 },  /* lw back */ \
    { 0x800, 8, 0, 0 },  /* ld: bytes 0x800..0x807 incl. sb/sh */ \
    { 0x818, 8, 0, 0 },  /* ld back of c.sd */ \
    { 0x810, 4, 0, 0 },  /* lwu back of c.sw */ \
}
#define MMIO_SCRIPT_LEN 20

#endif
