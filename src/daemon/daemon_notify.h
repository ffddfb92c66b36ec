/* SPDX-License-Identifier: Apache-2.0 */
/*
 * systemd notifications (sd_notify(3)): READY=1, STATUS=..., RELOADING=1, STOPPING=1, WATCHDOG=1.
 * A no-op when NOTIFY_SOCKET is unset or eventingd was built without libsystemd. Loop thread.
 */
#ifndef EVD_DAEMON_NOTIFY_H
#define EVD_DAEMON_NOTIFY_H

#include <stdint.h>

void evd_notify(const char *state);
void evd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The watchdog interval asked for by the service manager in microseconds, or 0. */
uint64_t evd_notify_watchdog_usec(void);

#endif
