/*
 * kvm-nested: a minimal KVM VMM that boots a Linux kernel (RISC-V Image) as
 * a nested guest: one vCPU, one RAM memslot, a device tree built here, an
 * initrd, and the SBI debug console (DBCN, forwarded to user space) as the
 * only device.  Everything else the guest needs from SBI (TIME, IPI, RFENCE,
 * HSM, SRST, base) is implemented by kvm.ko.
 *
 *   kvm-nested IMAGE INITRD [BOOTARGS]
 *
 * Prints the guest console, then "KVM-NESTED EXIT <reason>" and exits 0 on
 * a guest SBI shutdown, 1 on anything else.
 * Env: KVM_NESTED_MEM_MB (RAM size, default 256), KVM_NESTED_TIMEOUT (s, 1200).
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
#include <sys/stat.h>
#include <unistd.h>

#define RAM_GPA 0x80000000UL
#define REG64(type, idx) (KVM_REG_RISCV | KVM_REG_SIZE_U64 | (uint64_t)(type) | (uint64_t)(idx))
#define SBI_EXT_REG_TYPE (0x08UL << 24)   /* KVM_REG_RISCV_SBI_EXT (Linux >= 6.5) */
#define SBI_EXT_DBCN_IDX 9                /* KVM_RISCV_SBI_EXT_DBCN (Linux >= 6.8) */
#define SBI_EXT_DBCN 0x4442434EUL

static int vcpufd;
static volatile sig_atomic_t timed_out;

static void die(const char *fmt, ...)
{
    va_list ap;
    printf("KVM-NESTED FAIL: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    exit(1);
}

static uint64_t get_reg(uint64_t id)
{
    uint64_t v = 0;
    struct kvm_one_reg r = { .id = id, .addr = (uint64_t)(uintptr_t)&v };
    if (ioctl(vcpufd, KVM_GET_ONE_REG, &r) < 0)
        die("KVM_GET_ONE_REG %#llx: %s", (unsigned long long)id, strerror(errno));
    return v;
}

static void set_reg(uint64_t id, uint64_t v)
{
    struct kvm_one_reg r = { .id = id, .addr = (uint64_t)(uintptr_t)&v };
    if (ioctl(vcpufd, KVM_SET_ONE_REG, &r) < 0)
        die("KVM_SET_ONE_REG %#llx: %s", (unsigned long long)id, strerror(errno));
}

static unsigned char *load_file(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY);
    unsigned char *buf;
    size_t got = 0;
    if (fd < 0 || fstat(fd, &st) < 0)
        die("cannot open %s: %s", path, strerror(errno));
    buf = malloc(st.st_size ? st.st_size : 1);
    if (!buf)
        die("out of memory for %s", path);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, st.st_size - got);
        if (n <= 0)
            die("cannot read %s: %s", path, n ? strerror(errno) : "short file");
        got += n;
    }
    close(fd);
    *len = got;
    return buf;
}

/* ---- a minimal flattened device tree writer (Devicetree spec v0.4, ch. 5) */
static unsigned char fdt_struct[8192], fdt_strings[1024];
static size_t fs_len, fstr_len;
static void be32(unsigned char *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static void fdt_u32(uint32_t v)
{
    if (fs_len + 4 > sizeof fdt_struct)
        die("device tree too large");
    be32(fdt_struct + fs_len, v);
    fs_len += 4;
}
static void fdt_bytes(const void *d, size_t n)
{
    if (fs_len + n + 4 > sizeof fdt_struct)
        die("device tree too large");
    memcpy(fdt_struct + fs_len, d, n);
    fs_len += n;
    while (fs_len & 3)
        fdt_struct[fs_len++] = 0;
}
static uint32_t fdt_string(const char *s)
{
    size_t n = strlen(s) + 1;
    for (size_t i = 0; i + n <= fstr_len; i++)
        if (!memcmp(fdt_strings + i, s, n))
            return (uint32_t)i;
    if (fstr_len + n > sizeof fdt_strings)
        die("device tree strings too large");
    memcpy(fdt_strings + fstr_len, s, n);
    fstr_len += n;
    return (uint32_t)(fstr_len - n);
}
static void fdt_begin(const char *name) { fdt_u32(1); fdt_bytes(name, strlen(name) + 1); }
static void fdt_end(void) { fdt_u32(2); }
static void fdt_prop(const char *name, const void *val, size_t len)
{
    fdt_u32(3);
    fdt_u32((uint32_t)len);
    fdt_u32(fdt_string(name));
    fdt_bytes(val, len);
}
static void fdt_prop_str(const char *name, const char *s) { fdt_prop(name, s, strlen(s) + 1); }
static void fdt_prop_u32(const char *name, uint32_t v) { unsigned char b[4]; be32(b, v); fdt_prop(name, b, 4); }
static void fdt_prop_u64(const char *name, uint64_t v)
{
    unsigned char b[8];
    be32(b, v >> 32);
    be32(b + 4, (uint32_t)v);
    fdt_prop(name, b, 8);
}
static size_t fdt_finish(unsigned char *out, size_t cap)
{
    size_t off_rsv = 40, off_struct = off_rsv + 16, off_str, total;
    fdt_u32(9);                                /* FDT_END */
    off_str = off_struct + fs_len;
    total = off_str + fstr_len;
    if (total > cap)
        die("device tree does not fit");
    memset(out, 0, total);
    be32(out + 0, 0xd00dfeed);
    be32(out + 4, (uint32_t)total);
    be32(out + 8, (uint32_t)off_struct);
    be32(out + 12, (uint32_t)off_str);
    be32(out + 16, (uint32_t)off_rsv);
    be32(out + 20, 17);
    be32(out + 24, 16);
    be32(out + 28, 0);
    be32(out + 32, (uint32_t)fstr_len);
    be32(out + 36, (uint32_t)fs_len);
    memcpy(out + off_struct, fdt_struct, fs_len);
    memcpy(out + off_str, fdt_strings, fstr_len);
    return total;
}

static void on_alarm(int sig) { (void)sig; timed_out = 1; }

int main(int argc, char **argv)
{
    int kvm, vmfd;
    size_t img_len, rd_len, runsz, dtb_len;
    unsigned char *img, *rd, *ram;
    uint64_t mem_mb = 256, ram_size, kernel_gpa, rd_gpa, dtb_gpa, freq, isa;
    const char *bootargs = "earlycon=sbi keep_bootcon panic=-1 rdinit=/init";
    struct kvm_run *run;
    unsigned timeout = 1200;
    char isastr[40];
    const char *e;
    unsigned long exits = 0, dbcn_bytes = 0;

    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s IMAGE INITRD [BOOTARGS]\n", argv[0]);
        return 2;
    }
    if (argc == 4)
        bootargs = argv[3];
    if ((e = getenv("KVM_NESTED_MEM_MB")) && atoi(e) >= 64)
        mem_mb = (uint64_t)atoi(e);
    if ((e = getenv("KVM_NESTED_TIMEOUT")) && atoi(e) > 0)
        timeout = (unsigned)atoi(e);
    ram_size = mem_mb << 20;

    img = load_file(argv[1], &img_len);
    rd = load_file(argv[2], &rd_len);
    /* RISC-V Image header (Linux Documentation/arch/riscv/boot-image-header) */
    if (img_len < 64 || memcmp(img + 0x30, "RISCV\0\0\0", 8) || memcmp(img + 0x38, "RSC\x05", 4))
        die("%s is not a RISC-V Linux Image (no RISCV/RSC magic)", argv[1]);
    uint64_t text_offset, image_size;
    memcpy(&text_offset, img + 8, 8);
    memcpy(&image_size, img + 16, 8);
    kernel_gpa = RAM_GPA + (text_offset ? text_offset : 0x200000);
    if (kernel_gpa + image_size + rd_len + (2 << 20) > RAM_GPA + ram_size)
        die("%llu MiB of guest RAM is too small for the kernel and initrd", (unsigned long long)mem_mb);
    dtb_gpa = RAM_GPA + ram_size - (64 << 10);
    rd_gpa = (dtb_gpa - rd_len) & ~0xfffUL;

    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        die("cannot open /dev/kvm: %s", strerror(errno));
    vmfd = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vmfd < 0)
        die("KVM_CREATE_VM: %s", strerror(errno));
    ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ram == MAP_FAILED)
        die("mmap guest RAM: %s", strerror(errno));
    {
        struct kvm_userspace_memory_region m = { .slot = 0, .guest_phys_addr = RAM_GPA,
            .memory_size = ram_size, .userspace_addr = (uint64_t)(uintptr_t)ram };
        if (ioctl(vmfd, KVM_SET_USER_MEMORY_REGION, &m) < 0)
            die("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
    }
    memcpy(ram + (kernel_gpa - RAM_GPA), img, img_len);
    memcpy(ram + (rd_gpa - RAM_GPA), rd, rd_len);

    vcpufd = ioctl(vmfd, KVM_CREATE_VCPU, 0);
    if (vcpufd < 0)
        die("KVM_CREATE_VCPU: %s", strerror(errno));
    runsz = (size_t)ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    run = mmap(NULL, runsz, PROT_READ | PROT_WRITE, MAP_SHARED, vcpufd, 0);
    if (run == MAP_FAILED)
        die("mmap kvm_run: %s", strerror(errno));
    freq = get_reg(REG64(KVM_REG_RISCV_TIMER, 0));
    isa = get_reg(REG64(KVM_REG_RISCV_CONFIG, 0));
    {   /* "rv64" + the single-letter extensions KVM gives the vCPU */
        const char *order = "imafdc";
        char *p = isastr + sprintf(isastr, "rv64");
        for (const char *o = order; *o; o++)
            if (isa & (1UL << (*o - 'a')))
                *p++ = *o;
        *p = 0;
    }
    set_reg(REG64(SBI_EXT_REG_TYPE, SBI_EXT_DBCN_IDX), 1);

    /* device tree */
    fdt_begin("");
    fdt_prop_u32("#address-cells", 2);
    fdt_prop_u32("#size-cells", 2);
    fdt_prop_str("compatible", "strata,kvm-nested");
    fdt_prop_str("model", "strata kvm-nested");
    fdt_begin("chosen");
    fdt_prop_str("bootargs", bootargs);
    fdt_prop_u64("linux,initrd-start", rd_gpa);
    fdt_prop_u64("linux,initrd-end", rd_gpa + rd_len);
    fdt_end();
    {
        char name[32];
        unsigned char reg[16];
        snprintf(name, sizeof name, "memory@%lx", RAM_GPA);
        fdt_begin(name);
        fdt_prop_str("device_type", "memory");
        be32(reg, 0); be32(reg + 4, (uint32_t)RAM_GPA);
        be32(reg + 8, (uint32_t)(ram_size >> 32)); be32(reg + 12, (uint32_t)ram_size);
        fdt_prop("reg", reg, 16);
        fdt_end();
    }
    fdt_begin("cpus");
    fdt_prop_u32("#address-cells", 1);
    fdt_prop_u32("#size-cells", 0);
    fdt_prop_u32("timebase-frequency", (uint32_t)freq);
    fdt_begin("cpu@0");
    fdt_prop_str("device_type", "cpu");
    fdt_prop_u32("reg", 0);
    fdt_prop_str("compatible", "riscv");
    fdt_prop_str("riscv,isa", isastr);
    fdt_prop_str("mmu-type", "riscv,sv39");
    fdt_prop_str("status", "okay");
    fdt_begin("interrupt-controller");
    fdt_prop_u32("#interrupt-cells", 1);
    fdt_prop("interrupt-controller", NULL, 0);
    fdt_prop_str("compatible", "riscv,cpu-intc");
    fdt_prop_u32("phandle", 1);
    fdt_end();
    fdt_end();
    fdt_end();
    fdt_end();
    dtb_len = fdt_finish(ram + (dtb_gpa - RAM_GPA), 64 << 10);

    set_reg(REG64(KVM_REG_RISCV_CORE, 0), kernel_gpa);      /* pc */
    set_reg(REG64(KVM_REG_RISCV_CORE, 10), 0);              /* a0 = hart id */
    set_reg(REG64(KVM_REG_RISCV_CORE, 11), dtb_gpa);        /* a1 = DTB */
    printf("KVM-NESTED start: kernel %zu bytes at %#llx, initrd %zu bytes at %#llx, dtb %zu bytes at %#llx, "
           "%llu MiB, isa %s, timebase %llu\n", img_len, (unsigned long long)kernel_gpa, rd_len,
           (unsigned long long)rd_gpa, dtb_len, (unsigned long long)dtb_gpa, (unsigned long long)mem_mb,
           isastr, (unsigned long long)freq);

    {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sigaction(SIGALRM, &sa, NULL);
        alarm(timeout);
    }
    for (;;) {
        if (ioctl(vcpufd, KVM_RUN, 0) < 0) {
            if (errno == EINTR && !timed_out)
                continue;
            printf("\nKVM-NESTED EXIT %s after %lu exits (pc %#llx)\n",
                   timed_out ? "timeout" : strerror(errno), exits,
                   (unsigned long long)get_reg(REG64(KVM_REG_RISCV_CORE, 0)));
            return 1;
        }
        exits++;
        switch (run->exit_reason) {
        case KVM_EXIT_RISCV_SBI: {
            unsigned long *a = run->riscv_sbi.args;
            run->riscv_sbi.ret[0] = 0;
            run->riscv_sbi.ret[1] = 0;
            if (run->riscv_sbi.extension_id == SBI_EXT_DBCN && run->riscv_sbi.function_id == 0) {
                uint64_t gpa = a[1] | ((uint64_t)a[2] << 32), len = a[0];
                if (gpa >= RAM_GPA && gpa + len <= RAM_GPA + ram_size && gpa + len >= gpa) {
                    fwrite(ram + (gpa - RAM_GPA), 1, len, stdout);
                    run->riscv_sbi.ret[1] = len;
                    dbcn_bytes += len;
                } else {
                    run->riscv_sbi.ret[0] = (unsigned long)-3L;   /* SBI_ERR_INVALID_PARAM */
                }
            } else if (run->riscv_sbi.extension_id == SBI_EXT_DBCN && run->riscv_sbi.function_id == 2) {
                putchar((int)(a[0] & 0xff));
                dbcn_bytes++;
            } else if (run->riscv_sbi.extension_id == SBI_EXT_DBCN && run->riscv_sbi.function_id == 1) {
                run->riscv_sbi.ret[1] = 0;                         /* console_read: nothing */
            } else {
                run->riscv_sbi.ret[0] = (unsigned long)-2L;       /* SBI_ERR_NOT_SUPPORTED */
            }
            break;
        }
        case KVM_EXIT_SYSTEM_EVENT:
            printf("\nKVM-NESTED EXIT system-event %u after %lu exits, %lu console bytes\n",
                   run->system_event.type, exits, dbcn_bytes);
            return run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ? 0 : 1;
        case KVM_EXIT_MMIO:
            printf("\nKVM-NESTED EXIT unexpected MMIO %s at %#llx len %u\n",
                   run->mmio.is_write ? "write" : "read", (unsigned long long)run->mmio.phys_addr,
                   run->mmio.len);
            return 1;
        default:
            printf("\nKVM-NESTED EXIT reason %u after %lu exits\n", run->exit_reason, exits);
            return 1;
        }
    }
}
