/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The embedded NATS backend (nats.url: embedded): eventingd runs nats-server as a supervised
 * child.
 *
 * - JetStream on, loopback only (127.0.0.1), store under <state_dir>/jetstream limited by
 *   nats.embedded.max_store; no HTTP monitor port.
 * - The client port is chosen once (a free port, remembered in <state_dir>/nats.port) and reused
 *   on every restart of the child and of eventingd: nats.c cannot move a live connection to
 *   another URL.
 * - Started with uv_spawn through a shim that sets PR_SET_PDEATHSIG=SIGKILL between fork and
 *   exec (libuv 1.44's uv_spawn has no hook for it): `eventingd __pdeathsig-exec PROG ARGS...`,
 *   i.e. this binary re-executing itself, so no nats-server outlives eventingd, even after
 *   kill -9.
 * - Its stdout/stderr are read on the loop and folded into eventingd's log ("nats-server"
 *   component, level taken from nats-server's [INF]/[WRN]/[ERR] tags).
 * - It counts as up once it accepts TCP connections on its port; if it dies it is restarted with
 *   capped exponential backoff (250 ms .. 30 s).
 * - If the port is still taken at start (a previous child still shutting down), or the store is
 *   locked, it waits and retries rather than failing.
 * - Warns when the filesystem under state_dir has less free space than max_store. A missing
 *   binary is a clear error: "apt install nats-server" or set nats.url.
 *
 * Files in state_dir (created 0700 if missing): nats.port (the port, written once, atomically),
 * nats-server.conf (rewritten by every evd_embedded_new()), jetstream/ (nats-server's store).
 *
 * A missing binary fails evd_embedded_new() with -ENOENT: there is nothing to supervise, and
 * exiting with the message is clearer than a retry loop. nats.embedded.binary without a '/' is
 * looked up in PATH, then /usr/local/sbin and /usr/sbin (Debian's nats-server is in /usr/sbin,
 * which ordinary users running the sandbox do not have on PATH). If the binary disappears later
 * (the shim exits 127), the error is logged and the start retried with the usual backoff.
 * A port that stays taken by some other program is retried the same way, with a warning that
 * names nats.port (delete it to choose a new port). nats-server logs at debug level (its
 * "debug: true") when log.level is debug at evd_embedded_new().
 *
 * Loop thread only. Ownership: evd_embedded_new() returns an object freed by evd_embedded_stop().
 */
#ifndef EVD_DAEMON_EMBEDDED_H
#define EVD_DAEMON_EMBEDDED_H

#include <uv.h>

#include "config/config.h"

struct evd_embedded;

/*
 * Prepares state_dir, chooses or reads the port. Does not start anything yet. Returns 0 or a
 * negative errno (logged with what to do).
 */
int evd_embedded_new(uv_loop_t *loop, const struct evd_config *cfg, struct evd_embedded **out);

/* "nats://127.0.0.1:PORT", valid from evd_embedded_new() on. */
const char *evd_embedded_url(const struct evd_embedded *e);

/* Spawns the server; on_up runs (on the loop) each time the server accepts connections. */
int evd_embedded_start(struct evd_embedded *e, void (*on_up)(void *data), void *data);

/*
 * Child pid or 0 (tests and status). Restart count: how many times the child died unexpectedly
 * (or could not be spawned at all) and another start was scheduled.
 */
int evd_embedded_pid(const struct evd_embedded *e);
unsigned evd_embedded_restarts(const struct evd_embedded *e);

/*
 * Stops the child (SIGTERM, SIGKILL after timeout_ms), waits for it to exit, then calls
 * on_stopped on the loop and frees e. Callable in any state after evd_embedded_new() (before
 * start, during a backoff, from inside on_up); on_stopped always runs later from the loop, never
 * from inside this call. A second call is ignored.
 */
void evd_embedded_stop(struct evd_embedded *e, uint64_t timeout_ms,
		       void (*on_stopped)(void *data), void *data);

/*
 * The shim: called from main() when argv[1] is EVD_EMBEDDED_SHIM_ARG. Sets PR_SET_PDEATHSIG to
 * SIGKILL, checks the parent is still alive (its pid is in the environment variable
 * EVD_EMBEDDED_PARENT_ENV, removed before exec), and execs argv[2..] (execvp). Returns only on
 * error: 127 when the program is not found (or the parent is gone), 126 when it cannot be run.
 * Any program whose main() dispatches this argument can act as the shim (the tests do).
 */
#define EVD_EMBEDDED_SHIM_ARG "__pdeathsig-exec"
#define EVD_EMBEDDED_PARENT_ENV "EVD_PDEATHSIG_PARENT"
int evd_embedded_shim_main(int argc, char **argv);

/*
 * How one line of nats-server output is folded into our log: its level ([ERR]/[FTL] error,
 * [WRN] and untagged lines warn, [INF] debug except "Server is ready" at info, [DBG]/[TRC]
 * debug) and, in *msg_off, where the message starts after nats-server's "[pid] [TAG] " prefix.
 * Pure; exposed for tests.
 */
enum evd_log_level evd_embedded_classify_line(const char *line, size_t len, size_t *msg_off);

#endif
