/*
 * waker: preemption load for nested-test.sh --preempt. Sleeps NS nanoseconds
 * at a time, forever: every wake-up is a host timer interrupt and a runnable
 * task that the scheduler lets preempt the VMM's vCPU thread, at whatever
 * point of kvm.ko's run loop it is. With Sstc, one such point (between an
 * SBI set_timer and the next guest entry) loses the guest's timer update in
 * kvm.ko (tests/kvm/README.md, "kvm.ko's Sstc timer race").
 *
 *   waker NS
 */
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    long ns = argc > 1 ? atol(argv[1]) : 20000;
    struct timespec t = { ns / 1000000000L, ns % 1000000000L };

    if (ns <= 0)
        return 2;
    for (;;)
        nanosleep(&t, NULL);
}
