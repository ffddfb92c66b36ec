/* SPDX-License-Identifier: Apache-2.0 */
#include "util/util_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

volatile int evd_log_threshold = EVD_LOG_INFO;
static enum evd_log_format log_format = EVD_LOG_TEXT;
static int log_journal = -1; /* -1: not yet probed */

static const char *const level_names[] = { "error", "warn", "info", "debug" };
/* sd-daemon priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const int level_priority[] = { 3, 4, 6, 7 };

void evd_log_setup(enum evd_log_level level, enum evd_log_format format)
{
	evd_log_threshold = (int)level;
	log_format = format;
}

int evd_log_level_parse(const char *name, enum evd_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*out = (enum evd_log_level)i;
			return 0;
		}
	}
	if (strcasecmp(name, "warning") == 0) {
		*out = EVD_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

const char *evd_log_level_name(enum evd_log_level level)
{
	return (unsigned)level < 4 ? level_names[level] : "?";
}

/* Appends src to dst as the inside of a JSON string; returns the new length (never past cap). */
static size_t json_escape(char *dst, size_t len, size_t cap, const char *src)
{
	for (const unsigned char *p = (const unsigned char *)src; *p && len + 7 < cap; p++) {
		switch (*p) {
		case '"': dst[len++] = '\\'; dst[len++] = '"'; break;
		case '\\': dst[len++] = '\\'; dst[len++] = '\\'; break;
		case '\n': dst[len++] = '\\'; dst[len++] = 'n'; break;
		case '\r': dst[len++] = '\\'; dst[len++] = 'r'; break;
		case '\t': dst[len++] = '\\'; dst[len++] = 't'; break;
		default:
			if (*p < 0x20)
				len += (size_t)snprintf(dst + len, cap - len, "\\u%04x", *p);
			else
				dst[len++] = (char)*p;
		}
	}
	return len;
}

void evd_log_vwrite(enum evd_log_level level, const char *component, const char *fmt, va_list ap)
{
	char msg[4096];
	char line[8192];
	size_t len = 0;

	if ((unsigned)level > EVD_LOG_DEBUG)
		level = EVD_LOG_DEBUG;
	if (log_journal < 0)
		log_journal = getenv("JOURNAL_STREAM") != NULL;

	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg))
		memcpy(msg + sizeof(msg) - 4, "...", 4);

	if (log_format == EVD_LOG_JSON) {
		struct timeval tv;
		struct tm tm;
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		len = (size_t)snprintf(line, sizeof(line),
			"{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"component\":\"",
			tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			(long)(tv.tv_usec / 1000), level_names[level]);
		len = json_escape(line, len, sizeof(line) - 16, component);
		len += (size_t)snprintf(line + len, sizeof(line) - len, "\",\"msg\":\"");
		len = json_escape(line, len, sizeof(line) - 8, msg);
		len += (size_t)snprintf(line + len, sizeof(line) - len, "\"}\n");
	} else if (log_journal) {
		len = (size_t)snprintf(line, sizeof(line), "<%d>%s: %s\n", level_priority[level],
				       component, msg);
	} else {
		struct timeval tv;
		struct tm tm;
		gettimeofday(&tv, NULL);
		localtime_r(&tv.tv_sec, &tm);
		len = (size_t)snprintf(line, sizeof(line),
				       "%04d-%02d-%02d %02d:%02d:%02d.%03ld %-5s %s: %s\n",
				       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
				       tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000),
				       level_names[level], component, msg);
	}
	if (len >= sizeof(line)) {
		len = sizeof(line) - 1;
		line[len - 1] = '\n';
	}
	/* One write per line; a short write to stderr is not worth retrying from a logger. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

void evd_log_write(enum evd_log_level level, const char *component, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evd_log_vwrite(level, component, fmt, ap);
	va_end(ap);
}
