/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One logger for the whole process. Lines go to stderr as one write(2) each, so lines from the
 * rare non-loop thread that logs (the nats bridge's worker) never interleave mid-line.
 *
 * Formats: "text" (human: "LEVEL component: message") and "json" (one object per line).
 * Under systemd (JOURNAL_STREAM set) text lines carry sd-daemon "<N>" priority prefixes and no
 * timestamp, since journald adds its own.
 *
 * Thread rules: evd_log() may be called from any thread; evd_log_setup() only before other
 * threads start or from the loop thread on reload.
 */
#ifndef EVD_UTIL_LOG_H
#define EVD_UTIL_LOG_H

#include <stdarg.h>

enum evd_log_level {
	EVD_LOG_ERROR = 0,
	EVD_LOG_WARN = 1,
	EVD_LOG_INFO = 2,
	EVD_LOG_DEBUG = 3,
};

enum evd_log_format {
	EVD_LOG_TEXT = 0,
	EVD_LOG_JSON = 1,
};

/* The current threshold; read without a lock (a stale read only logs one line more or less). */
extern volatile int evd_log_threshold;

void evd_log_setup(enum evd_log_level level, enum evd_log_format format);

/* Parses "error|warn|info|debug" (and "warning"); returns 0 or -EINVAL. */
int evd_log_level_parse(const char *name, enum evd_log_level *out);
const char *evd_log_level_name(enum evd_log_level level);

void evd_log_write(enum evd_log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void evd_log_vwrite(enum evd_log_level level, const char *component, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* The level is checked before any argument is evaluated or formatted. */
#define evd_log(level, component, ...)                                                     \
	do {                                                                               \
		if ((int)(level) <= evd_log_threshold)                                     \
			evd_log_write((level), (component), __VA_ARGS__);                  \
	} while (0)

#define evd_log_error(component, ...) evd_log(EVD_LOG_ERROR, component, __VA_ARGS__)
#define evd_log_warn(component, ...) evd_log(EVD_LOG_WARN, component, __VA_ARGS__)
#define evd_log_info(component, ...) evd_log(EVD_LOG_INFO, component, __VA_ARGS__)
#define evd_log_debug(component, ...) evd_log(EVD_LOG_DEBUG, component, __VA_ARGS__)

#endif
