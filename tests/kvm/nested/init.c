/*
 * /init of the nested guest (a Linux booted by kvm-nested inside the Strata
 * guest).  There is no console device in the nested machine: the kernel's
 * earlycon (SBI DBCN) is the only output, so this writes to /dev/kmsg.
 * It proves user space runs (a computed value, the kernel release, the CPU
 * count), then powers off (SBI SRST -> KVM_EXIT_SYSTEM_EVENT in the VMM).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(void)
{
    struct utsname u;
    char line[256];
    unsigned long long sum = 0;
    long ncpu;
    int fd;

    mkdir("/dev", 0755);
    mkdir("/proc", 0555);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    mount("proc", "/proc", "proc", 0, NULL);
    fd = open("/dev/kmsg", O_WRONLY);
    for (unsigned long long i = 1; i <= 100000; i++)
        sum += i * i;                 /* 333338333350000 */
    uname(&u);
    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(line, sizeof line, "NESTED-GUEST-OK release=%s machine=%s cpus=%ld sum=%llu\n",
             u.release, u.machine, ncpu, sum);
    if (fd >= 0)
        write(fd, line, strlen(line));
    sync();
    reboot(RB_POWER_OFF);
    return 1;
}
