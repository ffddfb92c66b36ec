/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The embedded nats-server supervisor against the real nats-server: start, readiness, the port
 * kept across child and supervisor restarts, restart after kill -9 of the child, stop, a port
 * still taken at start, no orphan after kill -9 of the supervising process, missing binary.
 *
 * This program is its own launcher: uv_exepath() names it, so its main() dispatches
 * "__pdeathsig-exec" to evd_embedded_shim_main() exactly as eventingd's does. It is also the
 * supervising process that the orphan test kills ("__supervise STATE_DIR").
 *
 * Exit 77 (skip) when nats-server is not installed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "daemon/daemon_embedded.h"
#include "util/util_buf.h"
#include "util/util_mem.h"
#include "unit.h"

static char tmp_root[PATH_MAX - 64]; /* room for names appended to it */

/* ---- helpers ---- */

struct events {
	int up;
	int stopped;
};

static void on_up(void *data)
{
	((struct events *)data)->up++;
}

static void on_stopped(void *data)
{
	((struct events *)data)->stopped++;
}

static void on_deadline(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

/* Runs the loop until *counter reaches target or exactly timeout_ms passes. True if reached. */
static bool run_until_exact(uv_loop_t *loop, const int *counter, int target, uint64_t timeout_ms)
{
	uv_timer_t deadline;
	int expired = 0;
	uv_timer_init(loop, &deadline);
	deadline.data = &expired;
	uv_timer_start(&deadline, on_deadline, timeout_ms, 0);
	while (*counter < target && !expired)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&deadline, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return *counter >= target;
}

/* The same with a timeout scaled by EVD_TEST_TIME_SCALE (unit.h): for waits on a condition. */
static bool run_until(uv_loop_t *loop, const int *counter, int target, uint64_t timeout_ms)
{
	return run_until_exact(loop, counter, target, unit_scaled_ms(timeout_ms));
}

/* Runs the loop for ms milliseconds (not scaled: a duration, not a timeout). */
static void run_for(uv_loop_t *loop, uint64_t ms)
{
	int never = 0;
	run_until_exact(loop, &never, 1, ms);
}

static struct evd_config *make_config(const char *state_dir, const char *binary, uint64_t max_store)
{
	struct evd_config *cfg = evd_xcalloc(1, sizeof(*cfg));
	cfg->state_dir = evd_xstrdup(state_dir);
	cfg->nats.embedded.binary = evd_xstrdup(binary);
	cfg->nats.embedded.max_store = max_store;
	cfg->log.level = EVD_LOG_INFO;
	return cfg;
}

static void free_config(struct evd_config *cfg)
{
	free(cfg->state_dir);
	free(cfg->nats.embedded.binary);
	free(cfg);
}

static char *path_in(const char *dir, const char *name)
{
	struct evd_buf b = EVD_BUF_INIT;
	evd_buf_printf(&b, "%s/%s", dir, name);
	return evd_buf_steal(&b);
}

static char *read_text(const char *path)
{
	struct evd_buf b = EVD_BUF_INIT;
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		evd_buf_append(&b, chunk, n);
	fclose(f);
	evd_buf_append_str(&b, "");
	return evd_buf_steal(&b);
}

/* Connects to 127.0.0.1:port and reads nats-server's greeting; true if it starts with INFO. */
static bool nats_greets(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = false;
	if (fd < 0)
		return false;
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		char buf[8] = "";
		ssize_t n = recv(fd, buf, 5, MSG_WAITALL);
		ok = n == 5 && memcmp(buf, "INFO ", 5) == 0;
	}
	close(fd);
	return ok;
}

static int port_of(const char *url)
{
	const char *colon = strrchr(url, ':');
	return colon ? atoi(colon + 1) : 0;
}

/* Gone, or a zombie nobody reaps yet (our container's pid 1 may not reap orphans). */
static bool pid_dead(int pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return true;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	const char *paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

static bool wait_dead(int pid, int ms)
{
	ms = (int)unit_scaled_ms((uint64_t)ms);
	for (int waited = 0; waited <= ms; waited += 20) {
		if (pid_dead(pid))
			return true;
		usleep(20 * 1000);
	}
	return false;
}

/* stderr into a file while a step runs, so the test can read what was logged. */
struct capture {
	int saved;
	char path[PATH_MAX];
};

static void capture_begin(struct capture *c)
{
	snprintf(c->path, sizeof(c->path), "%s/stderr.XXXXXX", tmp_root);
	int fd = mkstemp(c->path);
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

/* Restores stderr, echoes what was captured (for the test log), returns it (caller frees). */
static char *capture_end(struct capture *c)
{
	fflush(stderr);
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	char *text = read_text(c->path);
	unlink(c->path);
	if (text)
		fputs(text, stderr);
	return text ? text : evd_xstrdup("");
}

/* Runs the loop until text shows in what c captured so far (or timeout_ms, scaled, passes): a
 * line is there when the code got to it, which on a loaded machine is not after a fixed time. */
static bool run_until_logged(uv_loop_t *loop, struct capture *c, const char *text, uint64_t timeout_ms)
{
	uint64_t end = uv_hrtime() + unit_scaled_ms(timeout_ms) * 1000000u;
	int never = 0;

	for (;;) {
		fflush(stderr);
		char *log = read_text(c->path);
		bool seen = log && strstr(log, text) != NULL;
		free(log);
		if (seen)
			return true;
		if (uv_hrtime() >= end)
			return false;
		run_until_exact(loop, &never, 1, 50);
	}
}

static void stop_and_wait(uv_loop_t *loop, struct evd_embedded *e, struct events *ev)
{
	int before = ev->stopped;
	evd_embedded_stop(e, 5000, on_stopped, ev);
	CHECK(run_until(loop, &ev->stopped, before + 1, 15000));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* ---- tests ---- */

static void test_classify(void)
{
	static const struct {
		const char *line;
		enum evd_log_level level;
		const char *msg;
	} rows[] = {
		{ "[123] [INF] Starting nats-server", EVD_LOG_DEBUG, "Starting nats-server" },
		{ "[123] [INF] Server is ready", EVD_LOG_INFO, "Server is ready" },
		{ "[123] 2026/11/28 04:33:39.502087 [INF] Server is ready", EVD_LOG_INFO,
		  "Server is ready" },
		{ "[9] [WRN] Filestore slow", EVD_LOG_WARN, "Filestore slow" },
		{ "[9] [ERR] bad thing", EVD_LOG_ERROR, "bad thing" },
		{ "[9] [FTL] Error listening on port: 127.0.0.1:1, \"address already in use\"",
		  EVD_LOG_ERROR, "Error listening on port: 127.0.0.1:1, \"address already in use\"" },
		{ "[9] [DBG] client connected", EVD_LOG_DEBUG, "client connected" },
		{ "[9] [TRC] <<- [PING]", EVD_LOG_DEBUG, "<<- [PING]" },
		/* A later tag-shaped text inside the message does not win over the real tag. */
		{ "[9] [INF] said [ERR] once", EVD_LOG_DEBUG, "said [ERR] once" },
		{ "panic: runtime error", EVD_LOG_WARN, "panic: runtime error" },
		{ "eventingd: cannot execute x: No such file or directory", EVD_LOG_WARN,
		  "eventingd: cannot execute x: No such file or directory" },
	};
	for (size_t i = 0; i < EVD_ARRAY_SIZE(rows); i++) {
		size_t off = 999;
		enum evd_log_level level =
			evd_embedded_classify_line(rows[i].line, strlen(rows[i].line), &off);
		CHECK_INT(level, rows[i].level);
		CHECK_STR(off <= strlen(rows[i].line) ? rows[i].line + off : "(bad offset)",
			  rows[i].msg);
	}
}

/* Start, port file, connect, kill -9 of the child, restart on the same port, stop. */
static void test_lifecycle(uv_loop_t *loop, const char *state_dir, int *port_out)
{
	struct evd_config *cfg = make_config(state_dir, "nats-server", 1ull << 30);
	struct evd_embedded *e = NULL;
	struct events ev = { 0 };

	CHECK_INT(evd_embedded_new(loop, cfg, &e), 0);
	if (!e)
		goto out;
	const char *url = evd_embedded_url(e);
	int port = port_of(url);
	CHECK(strncmp(url, "nats://127.0.0.1:", 17) == 0);
	CHECK(port > 0);
	*port_out = port;

	char *port_file = path_in(state_dir, "nats.port");
	char *text = read_text(port_file);
	CHECK(text && atoi(text) == port);
	free(text);
	free(port_file);
	struct stat st;
	CHECK(stat(state_dir, &st) == 0 && (st.st_mode & 0777) == 0700);
	char *conf_file = path_in(state_dir, "nats-server.conf");
	text = read_text(conf_file);
	CHECK(text && strstr(text, "127.0.0.1:") && strstr(text, "max_file_store: 1073741824"));
	free(text);
	free(conf_file);

	CHECK_INT(evd_embedded_pid(e), 0);
	CHECK_INT(evd_embedded_start(e, on_up, &ev), 0);
	CHECK_INT(evd_embedded_start(e, on_up, &ev), -EALREADY);
	CHECK(run_until(loop, &ev.up, 1, 20000));
	int pid = evd_embedded_pid(e);
	CHECK(pid > 0);
	CHECK(nats_greets(port));
	CHECK_INT(evd_embedded_restarts(e), 0);
	char *js_dir = path_in(state_dir, "jetstream");
	CHECK(stat(js_dir, &st) == 0 && S_ISDIR(st.st_mode));
	free(js_dir);

	/* kill -9 of nats-server: restarted, on the same port, on_up again. */
	CHECK(pid > 0 && kill(pid, SIGKILL) == 0);
	CHECK(run_until(loop, &ev.up, 2, 20000));
	int pid2 = evd_embedded_pid(e);
	CHECK(pid2 > 0 && pid2 != pid);
	CHECK_INT(evd_embedded_restarts(e), 1);
	CHECK_STR(evd_embedded_url(e), url);
	CHECK(nats_greets(port));

	stop_and_wait(loop, e, &ev);
	CHECK_INT(ev.stopped, 1);
	CHECK(pid2 > 0 && kill(pid2, 0) != 0 && errno == ESRCH);
out:
	free_config(cfg);
}

/* A second supervisor (eventingd restarted) keeps the port from nats.port. */
static void test_reuse(uv_loop_t *loop, const char *state_dir, int port)
{
	struct evd_config *cfg = make_config(state_dir, "nats-server", 1ull << 30);
	struct evd_embedded *e = NULL;
	struct events ev = { 0 };
	CHECK_INT(evd_embedded_new(loop, cfg, &e), 0);
	if (!e)
		goto out;
	CHECK_INT(port_of(evd_embedded_url(e)), port);
	CHECK_INT(evd_embedded_start(e, on_up, &ev), 0);
	CHECK(run_until(loop, &ev.up, 1, 20000));
	CHECK(nats_greets(port));
	int pid = evd_embedded_pid(e);
	stop_and_wait(loop, e, &ev);
	CHECK(pid > 0 && kill(pid, 0) != 0);
out:
	free_config(cfg);
}

/*
 * The port still held at start (a previous server shutting down): the supervisor waits, spawns
 * nothing meanwhile, and comes up once the port is free. Also: the disk-space warning.
 */
static void test_port_busy(uv_loop_t *loop, const char *state_dir, int port)
{
	struct evd_config *cfg = make_config(state_dir, "nats-server", 1ull << 60);
	struct evd_embedded *e = NULL;
	struct events ev = { 0 };
	struct capture cap;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	/* Phase 1: something accepts connections on the port: nothing is even spawned. */
	int holder = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(bind(holder, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(holder, 16) == 0);

	CHECK_INT(evd_embedded_new(loop, cfg, &e), 0);
	if (!e)
		goto out;
	capture_begin(&cap);
	CHECK_INT(evd_embedded_start(e, on_up, &ev), 0);
	CHECK(run_until_logged(loop, &cap, "retrying in 500 ms", 15000));
	char *log = capture_end(&cap);
	CHECK(strstr(log, "less than nats.embedded.max_store") != NULL);
	CHECK(strstr(log, "is still in use") != NULL);
	CHECK(strstr(log, "retrying in 500 ms") != NULL); /* backing off, not spinning */
	CHECK(strstr(log, "started nats-server") == NULL);
	free(log);
	CHECK_INT(ev.up, 0);
	CHECK_INT(evd_embedded_pid(e), 0);

	close(holder);
	holder = -1;
	CHECK(run_until(loop, &ev.up, 1, 20000));
	CHECK(nats_greets(port));
	stop_and_wait(loop, e, &ev);
	free_config(cfg);

	/*
	 * Phase 2: the port is bound but not listening (connect is refused, bind is not): the
	 * child starts, dies with "address already in use", and we say so and retry.
	 */
	cfg = make_config(state_dir, "nats-server", 1ull << 30);
	e = NULL;
	holder = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(bind(holder, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK_INT(evd_embedded_new(loop, cfg, &e), 0);
	if (!e)
		goto out;
	capture_begin(&cap);
	CHECK_INT(evd_embedded_start(e, on_up, &ev), 0);
	CHECK(run_until_logged(loop, &cap, "address already in use", 15000));
	CHECK(run_until_logged(loop, &cap, "still in use (a previous nats-server shutting down?)", 15000));
	log = capture_end(&cap);
	CHECK(strstr(log, "address already in use") != NULL); /* its [FTL] line, folded in */
	CHECK(strstr(log, "still in use (a previous nats-server shutting down?)") != NULL);
	free(log);
	CHECK_INT(ev.up, 1);
	CHECK(evd_embedded_restarts(e) >= 1);
	close(holder);
	holder = -1;
	CHECK(run_until(loop, &ev.up, 2, 20000));
	CHECK(nats_greets(port));
	stop_and_wait(loop, e, &ev);
out:
	if (holder >= 0)
		close(holder);
	free_config(cfg);
}

/* Stop before start, and stop while waiting out a backoff: on_stopped still comes, once. */
static void test_stop_early(uv_loop_t *loop, const char *state_dir)
{
	struct evd_config *cfg = make_config(state_dir, "nats-server", 1ull << 30);
	struct evd_embedded *e = NULL;
	struct events ev = { 0 };
	CHECK_INT(evd_embedded_new(loop, cfg, &e), 0);
	if (e) {
		evd_embedded_stop(e, 1000, on_stopped, &ev);
		CHECK_INT(ev.stopped, 0); /* never synchronously */
		CHECK(run_until(loop, &ev.stopped, 1, 5000));
	}
	/* Started and stopped at once, while the port check is in flight. */
	e = NULL;
	CHECK_INT(evd_embedded_new(loop, cfg, &e), 0);
	if (e) {
		CHECK_INT(evd_embedded_start(e, on_up, &ev), 0);
		evd_embedded_stop(e, 1000, on_stopped, &ev);
		CHECK(run_until(loop, &ev.stopped, 2, 5000));
		CHECK_INT(ev.up, 0);
	}
	free_config(cfg);
}

/* Stop from inside on_up (a daemon shutting down as the backend comes up). */
struct stop_in_up {
	struct evd_embedded *e;
	struct events ev;
	int pid;
};

static void on_up_then_stop(void *data)
{
	struct stop_in_up *s = data;
	s->ev.up++;
	s->pid = evd_embedded_pid(s->e);
	evd_embedded_stop(s->e, 5000, on_stopped, &s->ev);
}

static void test_stop_in_on_up(uv_loop_t *loop, const char *state_dir)
{
	struct evd_config *cfg = make_config(state_dir, "nats-server", 1ull << 30);
	struct stop_in_up s = { 0 };
	CHECK_INT(evd_embedded_new(loop, cfg, &s.e), 0);
	if (s.e) {
		CHECK_INT(evd_embedded_start(s.e, on_up_then_stop, &s), 0);
		CHECK(run_until(loop, &s.ev.stopped, 1, 20000));
		CHECK_INT(s.ev.up, 1);
		CHECK(s.pid > 0 && kill(s.pid, 0) != 0);
	}
	free_config(cfg);
}

/* ---- kill -9 of the supervising process ---- */

static void supervise_on_up(void *data)
{
	struct evd_embedded *e = *(struct evd_embedded **)data;
	printf("%d\n", evd_embedded_pid(e));
	fflush(stdout);
}

/* "__supervise STATE_DIR": runs a supervisor until killed; prints the child pid when up. */
static int supervise_main(const char *state_dir)
{
	uv_loop_t loop;
	struct evd_embedded *e = NULL;
	uv_loop_init(&loop);
	struct evd_config *cfg = make_config(state_dir, "nats-server", 1ull << 30);
	if (evd_embedded_new(&loop, cfg, &e) != 0)
		return 1;
	if (evd_embedded_start(e, supervise_on_up, &e) != 0)
		return 1;
	uv_run(&loop, UV_RUN_DEFAULT);
	return 1; /* not reached: the test kills us */
}

static void test_parent_killed(const char *state_dir)
{
	char self[PATH_MAX];
	size_t len = sizeof(self);
	int fds[2];
	CHECK_INT(uv_exepath(self, &len), 0);
	CHECK(pipe(fds) == 0);
	pid_t sup = fork();
	if (sup == 0) {
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execl(self, self, "__supervise", state_dir, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	CHECK(sup > 0);

	char line[32] = "";
	size_t got = 0;
	struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
	while (got < sizeof(line) - 1 && !memchr(line, '\n', got) && poll(&pfd, 1, 20000) > 0) {
		ssize_t n = read(fds[0], line + got, sizeof(line) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fds[0]);
	int child = atoi(line);
	CHECK(child > 0);

	CHECK(kill(sup, SIGKILL) == 0);
	int status;
	CHECK(waitpid(sup, &status, 0) == sup);
	if (child > 0) {
		CHECK(wait_dead(child, 2000));
		if (!pid_dead(child))
			kill(child, SIGKILL); /* do not leave it behind when the check failed */
	}
	/* The port it used is free again: a new supervisor on the same state dir comes up. */
}

/* ---- missing binary ---- */

static void test_missing_binary(uv_loop_t *loop, const char *state_dir)
{
	struct capture cap;
	struct evd_embedded *e = NULL;
	struct events ev = { 0 };

	/* At evd_embedded_new(): refused with the message that says what to do. */
	struct evd_config *cfg = make_config(state_dir, "/nonexistent/nats-server", 1ull << 30);
	capture_begin(&cap);
	int rc = evd_embedded_new(loop, cfg, &e);
	char *log = capture_end(&cap);
	CHECK_INT(rc, -ENOENT);
	CHECK(e == NULL);
	CHECK(strstr(log, "nats-server not found (nats.embedded.binary = /nonexistent/nats-server): "
			  "install it (Debian: apt install nats-server) or set nats.url") != NULL);
	free(log);
	free_config(cfg);

	cfg = make_config(state_dir, "no-such-nats-server-xyz", 1ull << 30);
	CHECK_INT(evd_embedded_new(loop, cfg, &e), -ENOENT);
	free_config(cfg);

	/* Gone after start (a package removed underneath us): the shim exits 127, we say so. */
	char *fake = path_in(tmp_root, "vanishing-nats-server");
	FILE *f = fopen(fake, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("#!/bin/sh\nexit 0\n", f);
		fclose(f);
	}
	chmod(fake, 0755);
	cfg = make_config(state_dir, fake, 1ull << 30);
	CHECK_INT(evd_embedded_new(loop, cfg, &e), 0);
	unlink(fake);
	if (e) {
		capture_begin(&cap);
		CHECK_INT(evd_embedded_start(e, on_up, &ev), 0);
		CHECK(run_until_logged(loop, &cap, "nats-server not found (nats.embedded.binary = ", 15000));
		CHECK(run_until_logged(loop, &cap, "cannot execute", 15000));
		log = capture_end(&cap);
		CHECK(strstr(log, "nats-server not found (nats.embedded.binary = ") != NULL);
		CHECK(strstr(log, "cannot execute") != NULL); /* the shim's own line, folded in */
		free(log);
		CHECK(evd_embedded_restarts(e) >= 1);
		CHECK_INT(ev.up, 0);
		stop_and_wait(loop, e, &ev);
	}
	free_config(cfg);
	free(fake);
}

/* A server that ignores SIGTERM gets SIGKILL after the stop timeout. */
static void test_kill_timeout(uv_loop_t *loop, const char *state_dir)
{
	struct capture cap;
	struct evd_embedded *e = NULL;
	struct events ev = { 0 };
	char *fake = path_in(tmp_root, "stubborn-nats-server");
	FILE *f = fopen(fake, "w");
	CHECK(f != NULL);
	if (f) {
		/* Its sleep keeps the output pipe open after the shell dies: must not matter. */
		fputs("#!/bin/sh\ntrap '' TERM\necho '[1] [WRN] ignoring TERM'\n"
		      "while :; do sleep 1; done\n", f);
		fclose(f);
	}
	chmod(fake, 0755);
	struct evd_config *cfg = make_config(state_dir, fake, 1ull << 30);
	CHECK_INT(evd_embedded_new(loop, cfg, &e), 0);
	if (e) {
		CHECK_INT(evd_embedded_start(e, on_up, &ev), 0);
		run_for(loop, 500);
		int pid = evd_embedded_pid(e);
		CHECK(pid > 0);
		capture_begin(&cap);
		evd_embedded_stop(e, 300, on_stopped, &ev);
		bool stopped = run_until(loop, &ev.stopped, 1, 5000);
		char *log = capture_end(&cap);
		CHECK(stopped);
		CHECK(strstr(log, "did not stop after SIGTERM; sending SIGKILL") != NULL);
		CHECK(strstr(log, "signal 9") != NULL);
		free(log);
		CHECK(pid > 0 && kill(pid, 0) != 0);
		CHECK_INT(ev.up, 0);
	}
	free_config(cfg);
	free(fake);
}

/* A relative state_dir (the sandbox's ./.eventingd) reaches nats-server as an absolute path. */
static void test_relative_state_dir(uv_loop_t *loop)
{
	char old_cwd[PATH_MAX];
	struct evd_embedded *e = NULL;
	struct events ev = { 0 };
	CHECK(getcwd(old_cwd, sizeof(old_cwd)) != NULL);
	CHECK(chdir(tmp_root) == 0);
	struct evd_config *cfg = make_config("./rel/.eventingd/", "nats-server", 1ull << 30);
	CHECK_INT(evd_embedded_new(loop, cfg, &e), 0);
	CHECK(chdir(old_cwd) == 0);
	char *conf_path = path_in(tmp_root, "rel/.eventingd/nats-server.conf");
	char *conf = read_text(conf_path);
	struct evd_buf want = EVD_BUF_INIT;
	evd_buf_printf(&want, "store_dir: \"%s/rel/.eventingd\"\n", tmp_root);
	CHECK(conf && strstr(conf, want.data) != NULL);
	if (e) {
		evd_embedded_stop(e, 1000, on_stopped, &ev);
		CHECK(run_until(loop, &ev.stopped, 1, 5000));
	}
	evd_buf_free(&want);
	free(conf);
	free(conf_path);
	free_config(cfg);
}

static void test_bad_state_dir(uv_loop_t *loop)
{
	struct capture cap;
	struct evd_embedded *e = NULL;
	char *file = path_in(tmp_root, "plainfile");
	FILE *f = fopen(file, "w");
	if (f)
		fclose(f);
	char *dir = path_in(file, "state");
	struct evd_config *cfg = make_config(dir, "nats-server", 1ull << 30);
	capture_begin(&cap);
	int rc = evd_embedded_new(loop, cfg, &e);
	char *log = capture_end(&cap);
	CHECK_INT(rc, -ENOTDIR);
	CHECK(strstr(log, "cannot create state_dir") != NULL);
	free(log);
	free_config(cfg);
	free(dir);
	free(file);
}

static bool have_nats_server(void)
{
	const char *path = getenv("PATH");
	struct evd_buf dirs = EVD_BUF_INIT;
	bool found = false;
	evd_buf_printf(&dirs, "%s:/usr/local/sbin:/usr/sbin", path ? path : "");
	for (char *save, *d = strtok_r(dirs.data, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char *p = path_in(d, "nats-server");
		found = access(p, X_OK) == 0;
		free(p);
		if (found)
			break;
	}
	evd_buf_free(&dirs);
	return found;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], EVD_EMBEDDED_SHIM_ARG) == 0)
		return evd_embedded_shim_main(argc, argv);
	if (argc > 2 && strcmp(argv[1], "__supervise") == 0)
		return supervise_main(argv[2]);

	test_classify();
	if (!have_nats_server()) {
		printf("nats-server not installed: skipping\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	evd_log_setup(EVD_LOG_INFO, EVD_LOG_TEXT);

	const char *base = getenv("TMPDIR");
	snprintf(tmp_root, sizeof(tmp_root), "%s/evd-embedded-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmp_root)) {
		perror("mkdtemp");
		return 1;
	}
	/* A state dir that does not exist yet, two levels deep: created with its parents. */
	char *state_dir = path_in(tmp_root, "var/state");

	uv_loop_t loop;
	uv_loop_init(&loop);

	int port = 0;
	test_lifecycle(&loop, state_dir, &port);
	test_reuse(&loop, state_dir, port);
	test_port_busy(&loop, state_dir, port);
	test_stop_early(&loop, state_dir);
	test_stop_in_on_up(&loop, state_dir);
	test_parent_killed(state_dir);
	test_reuse(&loop, state_dir, port);
	test_missing_binary(&loop, state_dir);
	test_kill_timeout(&loop, state_dir);
	test_relative_state_dir(&loop);
	test_bad_state_dir(&loop);

	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK_INT(uv_loop_close(&loop), 0);
	free(state_dir);
	nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	UNIT_MAIN_END();
}
