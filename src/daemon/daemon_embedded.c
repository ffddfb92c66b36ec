/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The embedded nats-server supervisor (daemon_embedded.h).
 *
 * One state machine on the loop thread:
 *
 *   CHECK     a TCP connect to 127.0.0.1:PORT before spawning: if something answers, the port
 *             is still taken (typically the previous nats-server still flushing its store), so
 *             we wait and retry instead of spawning a child that would die with "address
 *             already in use".
 *   STARTING  the child runs; connect attempts every 100 ms until one succeeds.
 *   UP        on_up has been called for this child.
 *   WAIT      backoff timer before the next CHECK (after a failed spawn, a busy port, or the
 *             death of the child).
 *
 * Lifetimes: the object owns two timers; every child (process handle + stdout/stderr pipe) and
 * every connect attempt is a small allocation of its own that counts in e->live until its last
 * uv_close callback. evd_embedded_stop() frees e once live reaches zero, so nothing here is freed
 * synchronously and callbacks (on_up may call evd_embedded_stop) cannot pull e away under us.
 */
#include "daemon/daemon_embedded.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "util/util_buf.h"
#include "util/util_log.h"
#include "util/util_mem.h"

#define LOG_COMPONENT "embedded"
#define CHILD_COMPONENT "nats-server"

#define BACKOFF_MIN_MS 250u
#define BACKOFF_MAX_MS 30000u
#define BACKOFF_RESET_UP_MS 60000u /* a child up this long counts as healthy */
#define PROBE_INTERVAL_MS 100u
#define READY_COMPLAIN_MS 30000u
#define LINE_MAX_BYTES 4000 /* the logger keeps 4 KiB per message */

extern char **environ;

enum embedded_state { ST_IDLE, ST_CHECK, ST_STARTING, ST_UP, ST_WAIT, ST_STOPPING };

struct evd_embedded_child {
	struct evd_embedded *e;
	uv_process_t proc;
	uv_pipe_t out; /* read end of the child's stdout+stderr */
	struct evd_buf line;
	char readbuf[8192];
	int open_handles;
	int pid;
	bool exited;
	bool port_busy;    /* it said "address already in use" */
	bool store_locked; /* it could not lock its store directory */
	int64_t exit_status;
	int term_signal;
};

enum probe_kind { PROBE_CHECK, PROBE_READY };

struct evd_embedded_probe {
	struct evd_embedded *e;
	uv_tcp_t tcp;
	uv_connect_t req;
	enum probe_kind kind;
};

struct evd_embedded {
	uv_loop_t *loop;
	char *binary;    /* resolved path of nats-server */
	char *configured_binary; /* as written in the config, for messages */
	char *state_dir; /* absolute */
	char *conf_path;
	uint64_t max_store;
	uint64_t max_memory; /* nats.embedded.max_memory: sized from the config (config.c) */
	int port;
	char url[40];

	void (*on_up)(void *data);
	void *up_data;
	void (*on_stopped)(void *data);
	void *stopped_data;

	enum embedded_state state;
	struct evd_embedded_child *child;  /* the running child, NULL between children */
	struct evd_embedded_probe *probe;  /* the connect attempt we wait for, or NULL */
	uv_timer_t timer;      /* backoff before CHECK, and the readiness poll interval */
	uv_timer_t kill_timer; /* SIGKILL when SIGTERM was not enough */
	unsigned live;         /* handles/children/probes whose close callback is still due */
	bool closing;          /* timers closed, waiting for live to reach 0 */

	uint64_t backoff_ms;
	uint64_t spawned_at;
	uint64_t up_at;
	bool ready_complained;
	unsigned restarts;
};

static void schedule_attempt(struct evd_embedded *e, uint64_t delay_ms);
static void maybe_finish(struct evd_embedded *e);

/* ---- small helpers ---- */

/* The delay to wait now; the next one doubles, up to BACKOFF_MAX_MS. */
static uint64_t next_backoff(struct evd_embedded *e)
{
	uint64_t d = e->backoff_ms;
	e->backoff_ms = d * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d * 2;
	return d;
}

static void format_bytes(uint64_t n, char *out, size_t outlen)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	unsigned u = 0;
	while (v >= 1024 && u + 1 < EVD_ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, outlen, "%llu B", (unsigned long long)n);
	else
		snprintf(out, outlen, "%.1f %s", v, units[u]);
}

/* mkdir -p: missing parents 0755, the last component with mode. 0 or -errno. */
static int mkdir_p(const char *path, mode_t mode)
{
	char *copy = evd_xstrdup(path);
	int rc = 0;
	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0755) != 0 && errno != EEXIST) {
			rc = -errno;
			goto out;
		}
		*p = '/';
	}
	if (mkdir(copy, mode) != 0 && errno != EEXIST)
		rc = -errno;
out:
	free(copy);
	if (rc == 0) {
		struct stat st;
		if (stat(path, &st) != 0)
			rc = -errno;
		else if (!S_ISDIR(st.st_mode))
			rc = -ENOTDIR;
	}
	return rc;
}

/* Writes data to path through path.tmp + rename, so a crash never leaves half a file. */
static int write_file_atomic(const char *path, const char *data, size_t len)
{
	struct evd_buf tmp = EVD_BUF_INIT;
	int rc = 0;
	evd_buf_printf(&tmp, "%s.tmp", path);
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		off += (size_t)w;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp.data, path) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp.data);
out:
	evd_buf_free(&tmp);
	return rc;
}

/*
 * Finds the program the way execvp would, plus /usr/local/sbin and /usr/sbin: Debian installs
 * nats-server in /usr/sbin, which is not on an ordinary user's PATH, and the sandbox (--dev) is
 * run by ordinary users. Returns a malloc'd path or NULL.
 */
static char *resolve_binary(const char *name)
{
	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? evd_xstrdup(name) : NULL;
	const char *path = getenv("PATH");
	struct evd_buf dirs = EVD_BUF_INIT;
	evd_buf_printf(&dirs, "%s:/usr/local/sbin:/usr/sbin",
		       path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	char *result = NULL;
	char *save = NULL;
	for (char *dir = strtok_r(dirs.data, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		struct evd_buf cand = EVD_BUF_INIT;
		struct stat st;
		evd_buf_printf(&cand, "%s/%s", *dir ? dir : ".", name);
		if (stat(cand.data, &st) == 0 && S_ISREG(st.st_mode) && access(cand.data, X_OK) == 0) {
			result = evd_buf_steal(&cand);
			break;
		}
		evd_buf_free(&cand);
	}
	evd_buf_free(&dirs);
	return result;
}

static void log_not_found(const struct evd_embedded *e)
{
	evd_log_error(LOG_COMPONENT,
		      "nats-server not found (nats.embedded.binary = %s): install it (Debian: apt "
		      "install nats-server) or set nats.url to an external NATS server",
		      e->configured_binary);
}

/* Reads <state_dir>/nats.port: the port, 0 when absent, -1 when unreadable garbage. */
static int read_port_file(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -1;
	char buf[32] = "";
	char *ok = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (!ok)
		return -1;
	char *end;
	errno = 0;
	long v = strtol(buf, &end, 10);
	while (*end == '\n' || *end == '\r' || *end == ' ')
		end++;
	if (errno || end == buf || *end || v < 1 || v > 65535)
		return -1;
	return (int)v;
}

/* Asks the kernel for a free loopback port. 1..65535 or -errno. */
static int pick_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int rc;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		rc = -errno;
	else
		rc = ntohs(sa.sin_port);
	close(fd);
	return rc;
}

/* nats-server config strings are double-quoted; paths may hold quotes or backslashes. */
static void append_quoted(struct evd_buf *b, const char *s)
{
	evd_buf_append_char(b, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			evd_buf_append_char(b, '\\');
		evd_buf_append_char(b, *s);
	}
	evd_buf_append_char(b, '"');
}

static int write_server_conf(const struct evd_embedded *e, bool debug)
{
	struct evd_buf b = EVD_BUF_INIT;
	evd_buf_printf(&b,
		       "# Written by eventingd each time it starts (nats.url: embedded); edits are lost.\n"
		       "server_name: \"eventingd-embedded\"\n"
		       "listen: \"127.0.0.1:%d\"\n"
		       "# eventingd adds its own timestamps when it folds these lines into its log.\n"
		       "logtime: false\n"
		       "debug: %s\n"
		       "jetstream {\n"
		       "  # nats-server keeps its files in <store_dir>/jetstream.\n"
		       "  store_dir: ",
		       e->port, debug ? "true" : "false");
	append_quoted(&b, e->state_dir);
	evd_buf_append_str(&b, "\n");
	if (e->max_store)
		evd_buf_printf(&b, "  max_file_store: %llu\n", (unsigned long long)e->max_store);
	evd_buf_printf(&b, "  max_memory_store: %llu\n}\n", (unsigned long long)e->max_memory);
	int rc = write_file_atomic(e->conf_path, b.data, b.len);
	evd_buf_free(&b);
	return rc;
}

static void check_disk_space(const struct evd_embedded *e)
{
	struct statvfs sv;
	if (!e->max_store || statvfs(e->state_dir, &sv) != 0)
		return;
	uint64_t avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
	if (avail >= e->max_store)
		return;
	char have[32], want[32];
	format_bytes(avail, have, sizeof(have));
	format_bytes(e->max_store, want, sizeof(want));
	evd_log_warn(LOG_COMPONENT,
		     "only %s free on the filesystem of %s, less than nats.embedded.max_store (%s): "
		     "JetStream will fail writes before the store reaches its limit; free space or "
		     "lower nats.embedded.max_store",
		     have, e->state_dir, want);
}

/* ---- nats-server's output ---- */

enum evd_log_level evd_embedded_classify_line(const char *line, size_t len, size_t *msg_off)
{
	static const struct {
		const char *tag;
		enum evd_log_level level;
	} tags[] = {
		{ "[INF] ", EVD_LOG_DEBUG }, { "[WRN] ", EVD_LOG_WARN },  { "[ERR] ", EVD_LOG_ERROR },
		{ "[FTL] ", EVD_LOG_ERROR }, { "[DBG] ", EVD_LOG_DEBUG }, { "[TRC] ", EVD_LOG_DEBUG },
	};
	/* "[pid] [date time ][TAG] message": the first tag-shaped token wins. */
	const char *best = NULL;
	enum evd_log_level level = EVD_LOG_WARN; /* untagged: panics, the shim's own errors */
	for (size_t i = 0; i < EVD_ARRAY_SIZE(tags); i++) {
		const char *hit = memmem(line, len, tags[i].tag, strlen(tags[i].tag));
		if (hit && (!best || hit < best)) {
			best = hit;
			level = tags[i].level;
		}
	}
	size_t off = best ? (size_t)(best - line) + 6 : 0;
	if (msg_off)
		*msg_off = off;
	/* The one line an operator wants at the default level: the server is serving. */
	if (best && level == EVD_LOG_DEBUG && strncmp(best, "[INF] ", 6) == 0 &&
	    len - off >= 15 && memcmp(line + off, "Server is ready", 15) == 0)
		level = EVD_LOG_INFO;
	return level;
}

static void child_line(struct evd_embedded_child *c, const char *line, size_t len)
{
	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	if (!len)
		return;
	size_t off;
	enum evd_log_level level = evd_embedded_classify_line(line, len, &off);
	if (memmem(line, len, "address already in use", 22))
		c->port_busy = true;
	if (level == EVD_LOG_ERROR && (memmem(line, len, "lock", 4) ||
				       memmem(line, len, "resource temporarily unavailable", 32)))
		c->store_locked = true;
	evd_log(level, CHILD_COMPONENT, "%.*s", (int)(len - off), line + off);
}

/* Splits buffered output into lines; a line longer than LINE_MAX_BYTES is logged in pieces. */
static void child_output(struct evd_embedded_child *c, const char *data, size_t n, bool eof)
{
	evd_buf_append(&c->line, data, n);
	if (!c->line.len)
		return;
	size_t start = 0;
	for (;;) {
		char *nl = memchr(c->line.data + start, '\n', c->line.len - start);
		size_t end = nl ? (size_t)(nl - c->line.data) : c->line.len;
		if (!nl && end - start < LINE_MAX_BYTES && !(eof && end > start))
			break;
		if (!nl && end - start >= LINE_MAX_BYTES)
			end = start + LINE_MAX_BYTES;
		child_line(c, c->line.data + start, end - start);
		start = nl ? end + 1 : end;
		if (start >= c->line.len)
			break;
	}
	evd_buf_consume(&c->line, start);
}

static void on_child_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct evd_embedded_child *c = h->data;
	(void)suggested;
	buf->base = c->readbuf; /* consumed (copied into c->line) before the next read */
	buf->len = sizeof(c->readbuf);
}

static void child_handle_closed(uv_handle_t *h)
{
	struct evd_embedded_child *c = h->data;
	if (--c->open_handles > 0)
		return;
	struct evd_embedded *e = c->e;
	evd_buf_free(&c->line);
	free(c);
	e->live--;
	maybe_finish(e);
}

static void on_child_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct evd_embedded_child *c = s->data;
	if (nread > 0) {
		child_output(c, buf->base, (size_t)nread, false);
		return;
	}
	if (nread == 0)
		return;
	/* EOF or error: keep what is left, then stop reading. The exit callback drains too. */
	child_output(c, "", 0, true);
	if (!uv_is_closing((uv_handle_t *)&c->out))
		uv_close((uv_handle_t *)&c->out, child_handle_closed);
}

/*
 * Reads whatever the dead child left in the pipe, synchronously: once it has exited every byte it
 * wrote is already in the pipe buffer (a writer blocks on a full pipe, it cannot exit past it),
 * so the exit decision below sees its last words ("address already in use") even when SIGCHLD
 * was handled before the pipe became readable.
 */
static void child_drain(struct evd_embedded_child *c)
{
	uv_os_fd_t fd;
	if (uv_is_closing((uv_handle_t *)&c->out) || uv_fileno((uv_handle_t *)&c->out, &fd) != 0)
		return;
	char buf[8192];
	for (int rounds = 0; rounds < 64; rounds++) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			child_output(c, buf, (size_t)n, false);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	child_output(c, "", 0, true);
	uv_close((uv_handle_t *)&c->out, child_handle_closed);
}

/* ---- connect attempts ---- */

static void probe_closed(uv_handle_t *h)
{
	struct evd_embedded_probe *p = h->data;
	struct evd_embedded *e = p->e;
	free(p);
	e->live--;
	maybe_finish(e);
}

/* Forgets the attempt we were waiting for; closing its handle cancels the connect. */
static void abandon_probe(struct evd_embedded *e)
{
	struct evd_embedded_probe *p = e->probe;
	if (!p)
		return;
	e->probe = NULL;
	if (!uv_is_closing((uv_handle_t *)&p->tcp))
		uv_close((uv_handle_t *)&p->tcp, probe_closed);
}

static void on_probe_connect(uv_connect_t *req, int status);

static int start_probe(struct evd_embedded *e, enum probe_kind kind)
{
	struct evd_embedded_probe *p = evd_xcalloc(1, sizeof(*p));
	struct sockaddr_in sa;
	p->e = e;
	p->kind = kind;
	uv_ip4_addr("127.0.0.1", e->port, &sa);
	int rc = uv_tcp_init(e->loop, &p->tcp);
	if (rc) {
		free(p);
		return rc;
	}
	p->tcp.data = p;
	p->req.data = p;
	e->live++;
	rc = uv_tcp_connect(&p->req, &p->tcp, (const struct sockaddr *)&sa, on_probe_connect);
	if (rc) {
		uv_close((uv_handle_t *)&p->tcp, probe_closed);
		return rc;
	}
	e->probe = p;
	return 0;
}

static void spawn_child(struct evd_embedded *e);

static void on_probe_connect(uv_connect_t *req, int status)
{
	struct evd_embedded_probe *p = req->data;
	struct evd_embedded *e = p->e;
	bool current = e->probe == p;
	if (current) {
		e->probe = NULL;
		uv_close((uv_handle_t *)&p->tcp, probe_closed);
	}
	/* Abandoned attempts were closed when abandoned (status is then UV_ECANCELED). */
	if (!current || e->state == ST_STOPPING)
		return;

	if (p->kind == PROBE_CHECK) {
		if (status != 0) { /* nobody listens: the port is ours to use */
			spawn_child(e);
			return;
		}
		uint64_t delay = next_backoff(e);
		evd_log_warn(LOG_COMPONENT,
			     "port 127.0.0.1:%d (from %s/nats.port) is still in use, probably by a "
			     "previous nats-server that is shutting down; retrying in %llu ms (if "
			     "another program holds it, stop it or delete nats.port to choose a new "
			     "port)",
			     e->port, e->state_dir, (unsigned long long)delay);
		schedule_attempt(e, delay);
		return;
	}

	/* PROBE_READY */
	if (status == 0) {
		e->state = ST_UP;
		e->up_at = uv_now(e->loop);
		evd_log_info(LOG_COMPONENT, "nats-server (pid %d) accepts connections on %s after %llu ms",
			     e->child ? e->child->pid : 0, e->url,
			     (unsigned long long)(e->up_at - e->spawned_at));
		if (e->on_up)
			e->on_up(e->up_data);
		return;
	}
	uint64_t waited = uv_now(e->loop) - e->spawned_at;
	if (waited >= READY_COMPLAIN_MS && !e->ready_complained) {
		e->ready_complained = true;
		evd_log_error(LOG_COMPONENT,
			      "nats-server (pid %d) still does not accept connections on %s after %llu "
			      "s; still waiting (see its log lines above)",
			      e->child ? e->child->pid : 0, e->url, (unsigned long long)(waited / 1000));
	}
	schedule_attempt(e, PROBE_INTERVAL_MS);
}

/* ---- the child ---- */

static void child_exited(struct evd_embedded *e, struct evd_embedded_child *c)
{
	bool was_up = e->state == ST_UP;
	uint64_t now = uv_now(e->loop);
	char how[64];

	e->child = NULL;
	abandon_probe(e);
	uv_timer_stop(&e->timer);
	if (c->term_signal)
		snprintf(how, sizeof(how), "was killed by signal %d (%s)", c->term_signal,
			 strsignal(c->term_signal));
	else
		snprintf(how, sizeof(how), "exited with status %lld", (long long)c->exit_status);

	if (e->state == ST_STOPPING) {
		uv_timer_stop(&e->kill_timer);
		/* nats-server exits 1 after a clean SIGTERM shutdown (store flushed). */
		evd_log_info(LOG_COMPONENT, "nats-server (pid %d) stopped: %s", c->pid, how);
		maybe_finish(e);
		return;
	}

	if (was_up && now - e->up_at >= BACKOFF_RESET_UP_MS)
		e->backoff_ms = BACKOFF_MIN_MS;
	uint64_t delay = next_backoff(e);
	e->restarts++;
	if (!was_up && !c->term_signal && c->exit_status == 127)
		log_not_found(e);
	else if (!was_up && !c->term_signal && c->exit_status == 126)
		evd_log_error(LOG_COMPONENT,
			      "cannot execute %s (nats.embedded.binary = %s): check its permissions",
			      e->binary, e->configured_binary);
	else if (!was_up && c->port_busy)
		evd_log_warn(LOG_COMPONENT,
			     "nats-server (pid %d) found 127.0.0.1:%d still in use (a previous "
			     "nats-server shutting down?)",
			     c->pid, e->port);
	else if (!was_up && c->store_locked)
		evd_log_warn(LOG_COMPONENT,
			     "nats-server (pid %d) found its store under %s locked (a previous "
			     "nats-server shutting down?)",
			     c->pid, e->state_dir);
	/* A busy port or store is expected to pass (the previous server finishing): a warning. */
	bool transient = !was_up && (c->port_busy || c->store_locked);
	evd_log(transient ? EVD_LOG_WARN : EVD_LOG_ERROR, LOG_COMPONENT,
		"nats-server (pid %d) %s%s; restarting in %llu ms", c->pid, how,
		was_up ? "" : " before accepting connections", (unsigned long long)delay);
	schedule_attempt(e, delay);
}

static void on_child_exit(uv_process_t *proc, int64_t exit_status, int term_signal)
{
	struct evd_embedded_child *c = proc->data;
	struct evd_embedded *e = c->e;
	c->exited = true;
	c->exit_status = exit_status;
	c->term_signal = term_signal;
	child_drain(c);
	uv_close((uv_handle_t *)&c->proc, child_handle_closed);
	child_exited(e, c);
}

/* environ plus EVD_EMBEDDED_PARENT_ENV=<our pid>, for the shim's "is my parent alive" check. */
static char **child_env(struct evd_buf *own)
{
	size_t n = 0, keylen = strlen(EVD_EMBEDDED_PARENT_ENV);
	while (environ && environ[n])
		n++;
	char **env = evd_xcalloc(n + 2, sizeof(*env));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(environ[i], EVD_EMBEDDED_PARENT_ENV, keylen) == 0 &&
		    environ[i][keylen] == '=')
			continue;
		env[k++] = environ[i];
	}
	evd_buf_printf(own, "%s=%ld", EVD_EMBEDDED_PARENT_ENV, (long)getpid());
	env[k] = own->data;
	return env;
}

static void spawn_child(struct evd_embedded *e)
{
	char self[PATH_MAX];
	size_t self_len = sizeof(self);
	uv_file fds[2] = { -1, -1 };
	struct evd_buf own_env = EVD_BUF_INIT;
	char **env = NULL;
	int rc = uv_exepath(self, &self_len);
	if (rc) {
		evd_log_error(LOG_COMPONENT, "cannot find eventingd's own path: %s", uv_strerror(rc));
		goto retry;
	}

	struct evd_embedded_child *c = evd_xcalloc(1, sizeof(*c));
	c->e = e;
	c->proc.data = c;
	c->out.data = c;
	rc = uv_pipe(fds, 0, 0); /* both ends O_CLOEXEC: no other child inherits them */
	if (rc) {
		free(c);
		evd_log_error(LOG_COMPONENT, "cannot create a pipe for nats-server: %s", uv_strerror(rc));
		goto retry;
	}
	uv_pipe_init(e->loop, &c->out, 0);
	e->live++;
	c->open_handles = 1;
	rc = uv_pipe_open(&c->out, fds[0]);
	if (rc) {
		close(fds[0]);
		close(fds[1]);
		uv_close((uv_handle_t *)&c->out, child_handle_closed);
		evd_log_error(LOG_COMPONENT, "cannot read from a pipe: %s", uv_strerror(rc));
		goto retry;
	}

	char *args[] = { self, (char *)EVD_EMBEDDED_SHIM_ARG, e->binary, (char *)"-c", e->conf_path,
			 NULL };
	uv_stdio_container_t stdio[3];
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = fds[1];
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = fds[1];
	env = child_env(&own_env);
	uv_process_options_t opt = {
		.exit_cb = on_child_exit,
		.file = self,
		.args = args,
		.env = env,
		.stdio_count = 3,
		.stdio = stdio,
		/*
		 * Own session: a terminal's Ctrl-C reaches eventingd only, which then stops the
		 * server in order (SIGTERM, wait), instead of both racing. It stays in our cgroup,
		 * so systemd still sees it.
		 */
		.flags = UV_PROCESS_DETACHED,
	};
	rc = uv_spawn(e->loop, &c->proc, &opt);
	close(fds[1]); /* the child holds its own copy; EOF then means the child is gone */
	free(env);
	evd_buf_free(&own_env);
	if (rc) {
		/* uv_spawn leaves the handle initialised even on failure: it must be closed. */
		c->open_handles++;
		uv_close((uv_handle_t *)&c->proc, child_handle_closed);
		uv_close((uv_handle_t *)&c->out, child_handle_closed);
		if (rc == UV_ENOENT)
			evd_log_error(LOG_COMPONENT, "cannot run eventingd itself (%s) as the "
				      "nats-server launcher: %s", self, uv_strerror(rc));
		else
			evd_log_error(LOG_COMPONENT, "cannot start nats-server (%s): %s", e->binary,
				      uv_strerror(rc));
		goto retry;
	}
	c->open_handles++;
	c->pid = c->proc.pid;
	e->child = c;
	e->state = ST_STARTING;
	e->spawned_at = uv_now(e->loop);
	e->ready_complained = false;
	rc = uv_read_start((uv_stream_t *)&c->out, on_child_alloc, on_child_read);
	if (rc) {
		evd_log_warn(LOG_COMPONENT, "cannot read nats-server's output: %s", uv_strerror(rc));
		uv_close((uv_handle_t *)&c->out, child_handle_closed);
	}
	evd_log_info(LOG_COMPONENT, "started nats-server (pid %d) on %s, store under %s/jetstream",
		     c->pid, e->url, e->state_dir);
	schedule_attempt(e, PROBE_INTERVAL_MS);
	return;

retry:
	e->restarts++;
	schedule_attempt(e, next_backoff(e));
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
	struct evd_embedded *e = t->data;
	int rc;
	switch (e->state) {
	case ST_WAIT:
		e->state = ST_CHECK;
		rc = start_probe(e, PROBE_CHECK);
		if (rc) {
			/* Cannot even try to connect (out of fds?): spawn and let the child decide. */
			evd_log_warn(LOG_COMPONENT, "cannot check 127.0.0.1:%d: %s", e->port,
				     uv_strerror(rc));
			spawn_child(e);
		}
		break;
	case ST_STARTING:
		rc = start_probe(e, PROBE_READY);
		if (rc)
			uv_timer_start(&e->timer, on_timer, PROBE_INTERVAL_MS, 0);
		break;
	default:
		break;
	}
}

/*
 * After a delay: in STARTING, the next readiness attempt; otherwise a fresh CHECK + spawn.
 * The state says which.
 */
static void schedule_attempt(struct evd_embedded *e, uint64_t delay_ms)
{
	if (e->state == ST_STOPPING)
		return;
	if (!e->child)
		e->state = ST_WAIT;
	uv_timer_start(&e->timer, on_timer, delay_ms, 0);
}

static void on_kill_timer(uv_timer_t *t)
{
	struct evd_embedded *e = t->data;
	if (!e->child || e->child->exited)
		return;
	evd_log_warn(LOG_COMPONENT, "nats-server (pid %d) did not stop after SIGTERM; sending SIGKILL",
		     e->child->pid);
	uv_process_kill(&e->child->proc, SIGKILL);
}

static void timer_closed(uv_handle_t *h)
{
	struct evd_embedded *e = h->data;
	e->live--;
	maybe_finish(e);
}

static void maybe_finish(struct evd_embedded *e)
{
	if (e->state != ST_STOPPING || e->child || e->probe)
		return;
	if (!e->closing) {
		e->closing = true;
		uv_close((uv_handle_t *)&e->timer, timer_closed);
		uv_close((uv_handle_t *)&e->kill_timer, timer_closed);
		return;
	}
	if (e->live > 0)
		return;
	void (*cb)(void *) = e->on_stopped;
	void *data = e->stopped_data;
	free(e->binary);
	free(e->configured_binary);
	free(e->state_dir);
	free(e->conf_path);
	free(e);
	if (cb)
		cb(data);
}

/* ---- public ---- */

int evd_embedded_new(uv_loop_t *loop, const struct evd_config *cfg, struct evd_embedded **out)
{
	const char *dir = cfg->state_dir && *cfg->state_dir ? cfg->state_dir : ".eventingd";
	const char *bin = cfg->nats.embedded.binary && *cfg->nats.embedded.binary
				  ? cfg->nats.embedded.binary
				  : "nats-server";
	struct evd_embedded *e = evd_xcalloc(1, sizeof(*e));
	struct evd_buf path = EVD_BUF_INIT;
	char cwd[PATH_MAX];
	int rc;

	e->loop = loop;
	e->configured_binary = evd_xstrdup(bin);
	e->max_store = cfg->nats.embedded.max_store;
	e->max_memory = cfg->nats.embedded.max_memory;
	e->backoff_ms = BACKOFF_MIN_MS;

	e->binary = resolve_binary(bin);
	if (!e->binary) {
		log_not_found(e);
		rc = -ENOENT;
		goto fail;
	}

	rc = mkdir_p(dir, 0700);
	if (rc) {
		evd_log_error(LOG_COMPONENT,
			      "cannot create state_dir %s: %s; create it (owned by the user eventingd "
			      "runs as, mode 0700) or set state_dir",
			      dir, strerror(-rc));
		goto fail;
	}
	/*
	 * nats-server gets an absolute path, but not a symlink-resolved one: under systemd's
	 * DynamicUser /var/lib/eventingd is a link into /var/lib/private, and the logs should name
	 * the directory the operator configured.
	 */
	if (dir[0] == '/') {
		e->state_dir = evd_xstrdup(dir);
	} else if (getcwd(cwd, sizeof(cwd))) {
		/* "./.eventingd" (the sandbox default) reads better as "<cwd>/.eventingd". */
		while (dir[0] == '.' && dir[1] == '/')
			dir += 2;
		evd_buf_printf(&path, "%s/%s", cwd, dir);
		e->state_dir = evd_buf_steal(&path);
	} else {
		rc = -errno;
		evd_log_error(LOG_COMPONENT, "cannot resolve state_dir %s: %s", dir, strerror(-rc));
		goto fail;
	}
	for (size_t n = strlen(e->state_dir); n > 1 && e->state_dir[n - 1] == '/'; n--)
		e->state_dir[n - 1] = '\0';

	evd_buf_printf(&path, "%s/nats.port", e->state_dir);
	e->port = read_port_file(path.data);
	if (e->port < 0)
		evd_log_warn(LOG_COMPONENT, "%s does not hold a port number; choosing a new port",
			     path.data);
	if (e->port <= 0) {
		rc = pick_free_port();
		if (rc < 0) {
			evd_log_error(LOG_COMPONENT, "cannot find a free port on 127.0.0.1: %s",
				      strerror(-rc));
			goto fail;
		}
		e->port = rc;
		char text[16];
		int n = snprintf(text, sizeof(text), "%d\n", e->port);
		rc = write_file_atomic(path.data, text, (size_t)n);
		if (rc) {
			evd_log_error(LOG_COMPONENT, "cannot write %s: %s; make state_dir writable",
				      path.data, strerror(-rc));
			goto fail;
		}
		evd_log_info(LOG_COMPONENT, "chose port 127.0.0.1:%d for the embedded nats-server "
			     "(kept in %s)", e->port, path.data);
	}
	snprintf(e->url, sizeof(e->url), "nats://127.0.0.1:%d", e->port);

	evd_buf_reset(&path);
	evd_buf_printf(&path, "%s/nats-server.conf", e->state_dir);
	e->conf_path = evd_buf_steal(&path);
	rc = write_server_conf(e, cfg->log.level >= EVD_LOG_DEBUG);
	if (rc) {
		evd_log_error(LOG_COMPONENT, "cannot write %s: %s; make state_dir writable",
			      e->conf_path, strerror(-rc));
		goto fail;
	}

	uv_timer_init(loop, &e->timer);
	uv_timer_init(loop, &e->kill_timer);
	e->timer.data = e;
	e->kill_timer.data = e;
	e->live = 2;
	e->state = ST_IDLE;
	*out = e;
	return 0;

fail:
	evd_buf_free(&path);
	free(e->binary);
	free(e->configured_binary);
	free(e->state_dir);
	free(e->conf_path);
	free(e);
	return rc;
}

const char *evd_embedded_url(const struct evd_embedded *e)
{
	return e->url;
}

int evd_embedded_start(struct evd_embedded *e, void (*on_up)(void *data), void *data)
{
	if (e->state != ST_IDLE)
		return -EALREADY;
	e->on_up = on_up;
	e->up_data = data;
	check_disk_space(e);
	e->state = ST_WAIT;
	on_timer(&e->timer); /* CHECK now; the spawn follows from its callback */
	return 0;
}

int evd_embedded_pid(const struct evd_embedded *e)
{
	return e->child && !e->child->exited ? e->child->pid : 0;
}

unsigned evd_embedded_restarts(const struct evd_embedded *e)
{
	return e->restarts;
}

void evd_embedded_stop(struct evd_embedded *e, uint64_t timeout_ms,
		       void (*on_stopped)(void *data), void *data)
{
	if (e->state == ST_STOPPING)
		return;
	e->state = ST_STOPPING;
	e->on_stopped = on_stopped;
	e->stopped_data = data;
	uv_timer_stop(&e->timer);
	abandon_probe(e);
	if (e->child && !e->child->exited) {
		evd_log_info(LOG_COMPONENT, "stopping nats-server (pid %d)", e->child->pid);
		/* nats-server shuts JetStream down cleanly on SIGTERM (flushes the store). */
		uv_process_kill(&e->child->proc, SIGTERM);
		uv_timer_start(&e->kill_timer, on_kill_timer, timeout_ms, 0);
	}
	maybe_finish(e);
}

int evd_embedded_shim_main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: eventingd %s PROGRAM [ARGS...]\n", EVD_EMBEDDED_SHIM_ARG);
		return 127;
	}
	/*
	 * The kernel sends the signal when the *thread* that forked us exits, not the process.
	 * uv_spawn forks from the loop thread, which lives as long as eventingd, so this is "when
	 * eventingd dies". The setting survives execve (nats-server is not set-uid).
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
		fprintf(stderr, "eventingd: prctl(PR_SET_PDEATHSIG): %s\n", strerror(errno));
		return 127;
	}
	/*
	 * If the parent died between fork and prctl we were already re-parented and the signal
	 * will never come: compare with the pid it gave us (getppid() == 1 is not enough under a
	 * subreaper such as systemd --user).
	 */
	const char *want = getenv(EVD_EMBEDDED_PARENT_ENV);
	pid_t parent = getppid();
	if (want ? strtol(want, NULL, 10) != (long)parent : parent == 1) {
		fprintf(stderr, "eventingd: parent gone before %s started; not starting it\n", argv[2]);
		return 127;
	}
	unsetenv(EVD_EMBEDDED_PARENT_ENV);
	execvp(argv[2], argv + 2);
	int err = errno;
	fprintf(stderr, "eventingd: cannot execute %s: %s\n", argv[2], strerror(err));
	/* The shell's convention, which the supervisor reads: 127 not found, 126 not runnable. */
	return err == ENOENT || err == ENOTDIR ? 127 : 126;
}
