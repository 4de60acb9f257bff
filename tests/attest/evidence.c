/* Evidence guest for tests/attest/vm-evidence-test.sh: a VS-mode program
 * under Strata's hypervisor that asks for signed evidence of its own
 * initial state through Strata's SBI extension (docs/attestation.md,
 * "Evidence for VMs") with the verifier's nonce, and prints it.
 *
 * The nonce comes from the command line (`nonce=` and 64 hex digits in
 * /chosen/bootargs of the device tree the hypervisor hands over in a1).
 * Console lines:
 *   EVIDENCE-SHORT <a0> <a1>   a call with a too-small buffer (-3, 176)
 *   EVIDENCE-BADNONCE <a0>     a call whose nonce is outside RAM (-5)
 *   EVIDENCE <hex>             the evidence
 *   EVIDENCE-ERR <a0>          a call that failed */
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned char u8;

#define SBI_EXT_STRATA 0x0A005354UL /* strata_arch::sbi::ext::STRATA */
#define SBI_EXT_DBCN 0x4442434EUL
#define SBI_EXT_SRST 0x53525354UL
#define EVIDENCE_LEN 176

volatile u64 last_cause = ~0UL; /* set by probe-start.S's trap handler */

struct ret { long error; u64 value; };

static struct ret sbi(u64 eid, u64 fid, u64 a0, u64 a1, u64 a2) {
    register u64 r0 asm("a0") = a0, r1 asm("a1") = a1, r2 asm("a2") = a2;
    register u64 r6 asm("a6") = fid, r7 asm("a7") = eid;
    asm volatile("ecall" : "+r"(r0), "+r"(r1) : "r"(r2), "r"(r6), "r"(r7) : "memory");
    struct ret r = { (long)r0, r1 };
    return r;
}

static void putc_(char c) { sbi(SBI_EXT_DBCN, 2, (u64)c, 0, 0); }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void hexbyte(u8 b) { putc_("0123456789abcdef"[b >> 4]); putc_("0123456789abcdef"[b & 15]); }
static void dec(long v) {
    char buf[24]; int i = 0;
    if (v < 0) { putc_('-'); v = -v; }
    do { buf[i++] = '0' + v % 10; v /= 10; } while (v);
    while (i) putc_(buf[--i]);
}

static u32 be32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }
static int streq(const char *a, const char *b) { while (*a && *a == *b) { a++; b++; } return *a == *b; }
static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* /chosen/bootargs of the flattened device tree at `fdt` (Devicetree
 * Specification 0.4, chapter 5), or 0. */
static const char *bootargs(const u8 *fdt) {
    if (be32(fdt) != 0xd00dfeed) return 0;
    const u8 *p = fdt + be32(fdt + 8);
    const char *strings = (const char *)fdt + be32(fdt + 12);
    int depth = 0, in_chosen = 0;
    for (;;) {
        u32 tok = be32(p); p += 4;
        if (tok == 1) { /* FDT_BEGIN_NODE */
            const char *name = (const char *)p;
            depth++;
            if (depth == 2) in_chosen = streq(name, "chosen");
            while (*p) p++;
            p = (const u8 *)(((u64)p + 4) & ~3UL);
        } else if (tok == 2) { /* FDT_END_NODE */
            if (depth == 2) in_chosen = 0;
            depth--;
        } else if (tok == 3) { /* FDT_PROP */
            u32 len = be32(p), nameoff = be32(p + 4);
            const char *val = (const char *)p + 8;
            if (in_chosen && streq(strings + nameoff, "bootargs")) return val;
            p = (const u8 *)(((u64)(p + 8 + len) + 3) & ~3UL);
        } else if (tok == 4) { /* FDT_NOP */
        } else {
            return 0;
        }
    }
}

static u8 nonce[32];
static u8 evidence[EVIDENCE_LEN + 64];

static int parse_nonce(const char *args) {
    for (const char *s = args; s && *s; s++) {
        if (s[0] == 'n' && s[1] == 'o' && s[2] == 'n' && s[3] == 'c' && s[4] == 'e' && s[5] == '=') {
            s += 6;
            for (int i = 0; i < 32; i++) {
                int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
                if (hi < 0 || lo < 0) return 0;
                nonce[i] = (u8)(hi << 4 | lo);
            }
            return 1;
        }
    }
    return 0;
}

int main(u64 hartid, u64 dtb) {
    (void)hartid;
    if (!parse_nonce(bootargs((const u8 *)dtb))) {
        puts_("EVIDENCE-ERR no nonce= in bootargs\n");
    } else {
        struct ret r = sbi(SBI_EXT_STRATA, 0, (u64)nonce, (u64)evidence, 100);
        puts_("EVIDENCE-SHORT "); dec(r.error); putc_(' '); dec((long)r.value); putc_('\n');
        r = sbi(SBI_EXT_STRATA, 0, 0x1000, (u64)evidence, sizeof evidence);
        puts_("EVIDENCE-BADNONCE "); dec(r.error); putc_('\n');
        r = sbi(SBI_EXT_STRATA, 0, (u64)nonce, (u64)evidence, sizeof evidence);
        if (r.error != 0 || r.value != EVIDENCE_LEN) {
            puts_("EVIDENCE-ERR "); dec(r.error); putc_('\n');
        } else {
            puts_("EVIDENCE ");
            for (int i = 0; i < EVIDENCE_LEN; i++) hexbyte(evidence[i]);
            putc_('\n');
        }
    }
    sbi(SBI_EXT_SRST, 0, 0, 0, 0);
    for (;;) {}
}
