/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal unit-test harness: CHECK records a failure with file and line and carries on, so one
 * run reports every broken row of a table. UNIT_MAIN prints "N passed, N failed".
 */
#ifndef EVD_TESTS_UNIT_H
#define EVD_TESTS_UNIT_H

#include <stdio.h>
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

#define UNIT_MAIN_END()                                                                    \
	do {                                                                               \
		printf("%d passed, %d failed\n", unit_passed, unit_failed);                \
		return unit_failed ? 1 : 0;                                                \
	} while (0)

#endif
