/* SPDX-License-Identifier: Apache-2.0 */
#include "daemon/daemon_notify.h"
#include "evd_build_config.h"
#include "util/util_log.h"

#include <stdarg.h>
#include <stdio.h>

#if EVD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

void evd_notify(const char *state)
{
#if EVD_HAVE_SYSTEMD
	int rc = sd_notify(0, state);
	if (rc < 0)
		evd_log_warn("daemon", "sd_notify(%s) failed: %d", state, rc);
#else
	(void)state;
#endif
}

void evd_notifyf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	evd_notify(buf);
}

uint64_t evd_notify_watchdog_usec(void)
{
#if EVD_HAVE_SYSTEMD
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) > 0)
		return usec;
#endif
	return 0;
}
