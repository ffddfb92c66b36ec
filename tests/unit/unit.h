/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal unit-test harness: CHECK records a failure with file and line and carries on, so one
 * run reports every broken row of a table. UNIT_MAIN prints "N passed, N failed".
 */
#ifndef EVD_TESTS_UNIT_H
#define EVD_TESTS_UNIT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_passed, unit_failed;

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (cond) {                                                                \
			unit_passed++;                                                     \
		} else {                                                                   \
			unit_failed++;                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                          \
	} while (0)

#define CHECK_STR(got, want)                                                               \
	do {                                                                               \
		const char *g_ = (got), *w_ = (want);                                      \
		if (g_ && w_ && strcmp(g_, w_) == 0) {                                     \
			unit_passed++;                                                     \
		} else {                                                                   \
			unit_failed++;                                                     \
			fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__, \
				g_ ? g_ : "(null)", w_ ? w_ : "(null)");                   \
		}                                                                          \
	} while (0)

#define CHECK_INT(got, want)                                                               \
	do {                                                                               \
		long long g_ = (long long)(got), w_ = (long long)(want);                   \
		if (g_ == w_) {                                                            \
			unit_passed++;                                                     \
		} else {                                                                   \
			unit_failed++;                                                     \
			fprintf(stderr, "%s:%d: %s = %lld, want %lld\n", __FILE__, __LINE__, #got, \
				g_, w_);                                                   \
		}                                                                          \
	} while (0)

/*
 * A test's timeouts in milliseconds, multiplied by EVD_TEST_TIME_SCALE (the same variable and
 * meaning as TIME_SCALE in tests/integration/evd_harness.py: CI sets it for the sanitizer
 * builds, which run several times slower). Only for waits that end when a condition holds: a
 * longer timeout then costs nothing unless the test fails.
 */
static inline uint64_t unit_scaled_ms(uint64_t ms)
{
	const char *s = getenv("EVD_TEST_TIME_SCALE");
	double scale = s && *s ? strtod(s, NULL) : 1.0;

	if (!(scale > 0.0) || scale > 1000.0)
		scale = 1.0;
	return (uint64_t)((double)ms * scale);
}

#define UNIT_MAIN_END()                                                                    \
	do {                                                                               \
		printf("%d passed, %d failed\n", unit_passed, unit_failed);                \
		return unit_failed ? 1 : 0;                                                \
	} while (0)

#endif
