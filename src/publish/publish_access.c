/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The publish endpoint's access log (publish.access_log): one line per answered request,
 *
 *   2026-11-28T04:49:21.123Z 127.0.0.1:53412 POST /publish 204 512 0 0.412
 *   time (UTC)               peer            method path  status request-body-bytes
 *                                                          response-body-bytes duration-ms
 *
 * Lines collect in a buffer; a short timer hands the buffer to uv_fs_write (libuv's thread pool),
 * so the loop never waits for the disk or for whoever reads standard error. While one write is
 * in flight the next lines collect in a second buffer; past 1 MiB waiting, lines are dropped and
 * counted (a stuck log must not grow memory without bound). The path is printed with bytes
 * outside printable ASCII percent-encoded, so no request can forge log lines.
 *
 * Loop thread only. The object frees itself after evd_access_log_close, once what was waiting is
 * written (by uv_fs_write as well: up to 2 MiB at close must not be a blocking write() on the loop
 * at SIGHUP or shutdown), its file closed and its timer handle closed. A reopen on SIGHUP may thus
 * append its first lines before the old object's last ones.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "publish/publish_internal.h"
#include "util/util_log.h"
#include "util/util_mem.h"

#define FLUSH_MS 100
#define MAX_WAITING (1024 * 1024)

struct evd_access_log {
	uv_loop_t *loop;
	uv_file fd;
	bool own_fd;
	uv_timer_t timer;
	uv_fs_t wreq;
	struct evd_buf buf;  /* lines waiting */
	struct evd_buf wbuf; /* lines being written */
	bool writing;
	bool closing;
	uint64_t dropped;
	time_t sec;
	char stamp[32]; /* "2026-11-28T04:49:21" for sec */
};

static void flush(struct evd_access_log *a);

static void on_timer_closed(uv_handle_t *h)
{
	struct evd_access_log *a = h->data;
	evd_buf_free(&a->buf);
	evd_buf_free(&a->wbuf);
	free(a);
}

static void start_write(struct evd_access_log *a);

/* Closing: writes what is left (asynchronously, one buffer at a time), then closes. */
static void finish_close(struct evd_access_log *a)
{
	if (a->writing)
		return; /* on_written comes back here */
	if (!a->wbuf.len && a->buf.len) {
		struct evd_buf t = a->wbuf;
		a->wbuf = a->buf;
		a->buf = t;
	}
	if (a->wbuf.len) {
		start_write(a);
		if (a->writing)
			return;
		finish_close(a); /* could not even start: dropped, try the rest */
		return;
	}
	if (a->dropped)
		evd_log_warn("publish", "access log: %llu lines dropped (the log could not keep up)",
			     (unsigned long long)a->dropped);
	if (a->own_fd)
		close(a->fd);
	uv_close((uv_handle_t *)&a->timer, on_timer_closed);
}

static void on_written(uv_fs_t *req);

static void start_write(struct evd_access_log *a)
{
	uv_buf_t b = uv_buf_init(a->wbuf.data, (unsigned)a->wbuf.len);
	a->wreq.data = a;
	if (uv_fs_write(a->loop, &a->wreq, a->fd, &b, 1, -1, on_written) < 0) {
		a->dropped++;
		evd_buf_reset(&a->wbuf);
		return;
	}
	a->writing = true;
}

static void on_written(uv_fs_t *req)
{
	struct evd_access_log *a = req->data;
	ssize_t r = req->result;
	uv_fs_req_cleanup(req);
	a->writing = false;
	if (r <= 0) {
		evd_log_warn("publish", "access log write failed: %s",
			     r < 0 ? uv_strerror((int)r) : "nothing written");
		evd_buf_reset(&a->wbuf);
	} else {
		evd_buf_consume(&a->wbuf, (size_t)r); /* a short write: the rest goes next */
	}
	if (a->closing)
		finish_close(a);
	else if (a->wbuf.len)
		start_write(a);
	else if (a->buf.len)
		flush(a);
}

static void flush(struct evd_access_log *a)
{
	if (a->writing || a->buf.len == 0)
		return;
	struct evd_buf t = a->wbuf;
	a->wbuf = a->buf;
	a->buf = t;
	start_write(a);
}

static void on_timer(uv_timer_t *t)
{
	flush(t->data);
}

int evd_access_log_open(uv_loop_t *loop, const char *path, struct evd_access_log **out)
{
	struct evd_access_log *a = evd_xcalloc(1, sizeof(*a));
	a->loop = loop;
	if (strcmp(path, "-") == 0) {
		a->fd = STDERR_FILENO;
	} else {
		a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (a->fd < 0) {
			int err = -errno;
			evd_log_error("publish", "publish.access_log: cannot open %s: %s", path,
				      strerror(errno));
			free(a);
			return err;
		}
		a->own_fd = true;
	}
	uv_timer_init(loop, &a->timer);
	a->timer.data = a;
	*out = a;
	return 0;
}

static void append_escaped(struct evd_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c > 0x20 && c < 0x7f && c != '%') {
			evd_buf_append_char(b, (char)c);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			evd_buf_append(b, e, 3);
		}
	}
}

void evd_access_log_line(struct evd_access_log *a, const struct evd_http_request *req,
			 int status, size_t resp_bytes)
{
	if (a->closing)
		return;
	if (a->buf.len > MAX_WAITING) {
		a->dropped++;
		return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != a->sec) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		strftime(a->stamp, sizeof(a->stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		a->sec = ts.tv_sec;
	}
	bool was_empty = a->buf.len == 0;
	double ms = (double)(uv_hrtime() - req->start_ns) / 1e6;
	evd_buf_printf(&a->buf, "%s.%03ldZ %s %s ", a->stamp, ts.tv_nsec / 1000000, req->peer,
		       req->method ? req->method : "-");
	append_escaped(&a->buf, req->path ? req->path : "-");
	evd_buf_printf(&a->buf, " %d %zu %zu %.3f\n", status, req->body_len, resp_bytes, ms);
	if (was_empty && !a->writing)
		uv_timer_start(&a->timer, on_timer, FLUSH_MS, 0);
}

void evd_access_log_close(struct evd_access_log *a)
{
	if (!a || a->closing)
		return;
	a->closing = true;
	uv_timer_stop(&a->timer);
	if (!a->writing)
		finish_close(a);
}
