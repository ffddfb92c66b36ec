/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sizes and durations as people write them in config files. Sizes are bare bytes or IEC units
 * (B, KiB, MiB, GiB, TiB): "64KB" is refused rather than guessed, because KB means 1000 to some
 * readers and 1024 to others. Durations are one or more <number><unit> terms (ms, s, m, h, d),
 * such as "1h30m" or "1.5s"; a bare "0" is the only number without a unit. Every duration must
 * fit JetStream's int64 nanoseconds, so the daemon can pass it on without overflow checks.
 */
#include "config/config.h"
#include "config/config_internal.h"
#include "util/util_mem.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* INT64_MAX nanoseconds, in whole milliseconds (about 292 years). */
#define DURATION_MAX_MS (INT64_MAX / 1000000)

static const struct {
	const char *name;
	uint64_t factor;
} size_units[] = {
	{ "B", 1 },
	{ "KiB", UINT64_C(1) << 10 },
	{ "MiB", UINT64_C(1) << 20 },
	{ "GiB", UINT64_C(1) << 30 },
	{ "TiB", UINT64_C(1) << 40 },
};

/* Units we refuse with a pointed message instead of "unknown unit". */
static const char *const si_units[] = { "K", "M", "G", "T", "KB", "MB", "GB", "TB" };

static const struct {
	const char *name;
	int64_t ms;
} duration_units[] = {
	{ "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 },
};

static void set_why(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

int evd_parse_size_why(const char *text, uint64_t *out, char *why, size_t whylen)
{
	const char *p = text;
	uint64_t n = 0;

	set_why(why, whylen, "%s", "");
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	while (isdigit((unsigned char)*p)) {
		unsigned d = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - d) / 10) {
			set_why(why, whylen, "%s", "too large");
			return -EINVAL;
		}
		n = n * 10 + d;
		p++;
	}
	while (*p == ' ')
		p++;
	if (*p == '\0') {
		*out = n;
		return 0;
	}
	for (size_t i = 0; i < EVD_ARRAY_SIZE(size_units); i++) {
		if (strcasecmp(p, size_units[i].name) == 0) {
			if (n > UINT64_MAX / size_units[i].factor) {
				set_why(why, whylen, "%s", "too large");
				return -EINVAL;
			}
			*out = n * size_units[i].factor;
			return 0;
		}
	}
	for (size_t i = 0; i < EVD_ARRAY_SIZE(si_units); i++) {
		if (strcasecmp(p, si_units[i]) == 0) {
			set_why(why, whylen,
				"\"%s\" is not accepted: use bare bytes or the IEC units B, KiB, MiB, GiB, TiB",
				p);
			return -EINVAL;
		}
	}
	set_why(why, whylen, "unknown unit \"%s\": use bare bytes or B, KiB, MiB, GiB, TiB", p);
	return -EINVAL;
}

int evd_parse_size(const char *text, uint64_t *out)
{
	return evd_parse_size_why(text, out, NULL, 0);
}

int evd_parse_duration_why(const char *text, int64_t *out_ms, char *why, size_t whylen)
{
	const char *p = text;
	int64_t total = 0;

	set_why(why, whylen, "%s", "");
	if (strcmp(text, "0") == 0) {
		*out_ms = 0;
		return 0;
	}
	if (!*p)
		return -EINVAL;
	while (*p) {
		int64_t whole = 0, frac = 0, scale = 1;
		const char *start = p;

		while (isdigit((unsigned char)*p)) {
			if (whole > DURATION_MAX_MS / 10) {
				set_why(why, whylen, "%s", "too large");
				return -EINVAL;
			}
			whole = whole * 10 + (*p - '0');
			p++;
		}
		if (*p == '.') {
			p++;
			if (!isdigit((unsigned char)*p))
				return -EINVAL;
			while (isdigit((unsigned char)*p)) {
				if (scale >= 1000000000) {
					set_why(why, whylen, "%s", "too many decimal places");
					return -EINVAL;
				}
				frac = frac * 10 + (*p - '0');
				scale *= 10;
				p++;
			}
		}
		if (p == start)
			return -EINVAL;

		const char *u = p;
		while (isalpha((unsigned char)*p))
			p++;
		size_t ulen = (size_t)(p - u);
		if (ulen == 0) {
			set_why(why, whylen, "%s", "a number needs a unit: ms, s, m, h or d");
			return -EINVAL;
		}
		int64_t unit = 0;
		for (size_t i = 0; i < EVD_ARRAY_SIZE(duration_units); i++) {
			if (strlen(duration_units[i].name) == ulen &&
			    strncmp(u, duration_units[i].name, ulen) == 0)
				unit = duration_units[i].ms;
		}
		if (!unit) {
			char name[16];
			snprintf(name, sizeof(name), "%.*s", (int)(ulen < 15 ? ulen : 15), u);
			set_why(why, whylen, "unknown unit \"%s\": use ms, s, m, h or d", name);
			return -EINVAL;
		}
		if (whole > DURATION_MAX_MS / unit) {
			set_why(why, whylen, "%s", "too large");
			return -EINVAL;
		}
		/* frac/scale of a unit must come out in whole milliseconds ("0.5ms" does not). */
		if ((frac * unit) % scale != 0) {
			set_why(why, whylen, "%s", "not a whole number of milliseconds");
			return -EINVAL;
		}
		int64_t term = whole * unit + frac * unit / scale;
		if (term > DURATION_MAX_MS - total) {
			set_why(why, whylen, "%s", "too large");
			return -EINVAL;
		}
		total += term;
	}
	*out_ms = total;
	return 0;
}

int evd_parse_duration(const char *text, int64_t *out_ms)
{
	return evd_parse_duration_why(text, out_ms, NULL, 0);
}

void evd_format_size(uint64_t bytes, char *out, size_t outlen)
{
	/* The largest unit that divides exactly, so the text parses back to the same number. */
	for (size_t i = EVD_ARRAY_SIZE(size_units); i-- > 1;) {
		uint64_t f = size_units[i].factor;
		if (bytes && bytes % f == 0) {
			snprintf(out, outlen, "%" PRIu64 "%s", bytes / f, size_units[i].name);
			return;
		}
	}
	snprintf(out, outlen, "%" PRIu64 "B", bytes);
}

void evd_format_duration(int64_t ms, char *out, size_t outlen)
{
	size_t len = 0;

	if (!outlen)
		return;
	out[0] = '\0';
	if (ms == 0) {
		snprintf(out, outlen, "0");
		return;
	}
	if (ms < 0) { /* never a config value; printed plainly for logs */
		snprintf(out, outlen, "%" PRId64 "ms", ms);
		return;
	}
	/* One term per unit, largest first: 90 minutes is "1h30m", 1500 ms "1s500ms". */
	for (size_t i = 0; i < EVD_ARRAY_SIZE(duration_units) && ms; i++) {
		int64_t u = duration_units[i].ms;
		if (ms >= u) {
			int n = snprintf(out + len, outlen - len, "%" PRId64 "%s", ms / u,
					 duration_units[i].name);
			if (n < 0 || (size_t)n >= outlen - len)
				return;
			len += (size_t)n;
			ms %= u;
		}
	}
}
