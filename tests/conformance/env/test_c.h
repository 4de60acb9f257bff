/* Strata conformance suite: C interface to the runtime (see test.h). */
#ifndef STRATA_TEST_C_H
#define STRATA_TEST_C_H
#include <stdint.h>

/* rt_check(value, expected, name, kind): kind 1 = self-check, 0 = record */
void rt_check(uint64_t value, uint64_t expected, const char *name, uint64_t kind);
void rt_finish(void) __attribute__((noreturn));

#define TEST_NAME_C(n) const char rt_test_name[] = #n
#define CHECK_C(name, value, expected) rt_check((uint64_t)(value), (uint64_t)(expected), name, 1)
#define RECORD_C(name, value) rt_check((uint64_t)(value), 0, name, 0)
#endif
