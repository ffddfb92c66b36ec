/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The blocking client behind `eventingd status` and `eventingd publish`: a non-blocking socket
 * driven by poll() against one overall deadline, a request with Connection: close, and the shared
 * response parser (http_response.c) so Content-Length, chunked and read-until-close bodies all
 * work.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http_fetch.h"
#include "http/http_response.h"
#include "util/util_addr.h"

/* A CLI response larger than this is a bug on the other side, not something to buffer. */
#define EVD_FETCH_MAX_BODY (64u * 1024 * 1024)

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pfd = { .fd = fd, .events = events };
		int n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* Splits "http://host:port/path?q" into "host:port" and "/path?q". */
static int split_url(const char *url, char *hostport, size_t hplen, const char **path,
		     char *err, size_t errlen)
{
	if (strncmp(url, "http://", 7) != 0) {
		snprintf(err, errlen, "only http:// URLs are supported: %s", url);
		return -EINVAL;
	}
	const char *h = url + 7;
	const char *slash = strchr(h, '/');
	size_t n = slash ? (size_t)(slash - h) : strlen(h);
	*path = slash ? slash : "/";
	if (n == 0 || n + 4 >= hplen) {
		snprintf(err, errlen, "bad host in URL: %s", url);
		return -EINVAL;
	}
	memcpy(hostport, h, n);
	hostport[n] = '\0';
	/* No port: 80. A bracketed IPv6 address has colons of its own. */
	const char *close = strrchr(hostport, ']');
	const char *colon = strrchr(hostport, ':');
	if (!colon || (close && colon < close))
		strcat(hostport, ":80");
	return 0;
}

static int send_all(int fd, const char *data, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = wait_fd(fd, POLLOUT, deadline);
			if (rc < 0)
				return rc;
			continue;
		}
		return -errno;
	}
	return 0;
}

int evd_http_fetch(const char *method, const char *url, const char *extra_headers,
		   const void *body, size_t body_len, int timeout_ms,
		   struct evd_http_fetch_result *res, char *err, size_t errlen)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 30000);
	char hostport[300], aerr[128];
	const char *path;
	struct sockaddr_storage ss;
	struct evd_buf req = EVD_BUF_INIT;
	int fd = -1;
	int rc;

	memset(res, 0, sizeof(*res));
	rc = split_url(url, hostport, sizeof(hostport), &path, err, errlen);
	if (rc < 0)
		return rc;
	if (evd_addr_parse(hostport, &ss, aerr, sizeof(aerr)) < 0) {
		snprintf(err, errlen, "%s: %s", url, aerr);
		return -EINVAL;
	}

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	socklen_t slen = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						  : sizeof(struct sockaddr_in);
	if (connect(fd, (struct sockaddr *)&ss, slen) < 0) {
		if (errno != EINPROGRESS) {
			rc = -errno;
			goto fail_connect;
		}
		rc = wait_fd(fd, POLLOUT, deadline);
		if (rc < 0)
			goto fail_connect;
		int soerr = 0;
		socklen_t elen = sizeof(soerr);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen);
		if (soerr) {
			rc = -soerr;
			goto fail_connect;
		}
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	evd_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
			     "User-Agent: eventingd\r\n", method, path, hostport);
	if (body_len || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0)
		evd_buf_printf(&req, "Content-Length: %zu\r\n", body_len);
	if (extra_headers)
		evd_buf_append_str(&req, extra_headers);
	evd_buf_append(&req, "\r\n", 2);
	if (body_len)
		evd_buf_append(&req, body, body_len);
	rc = send_all(fd, req.data, req.len, deadline);
	if (rc < 0) {
		snprintf(err, errlen, "sending to %s: %s", hostport, strerror(-rc));
		goto fail;
	}

	struct evd_http_response resp;
	evd_http_response_init(&resp);
	evd_http_response_reset(&resp, strcmp(method, "HEAD") == 0);
	resp.body_max = EVD_FETCH_MAX_BODY;
	resp.body_max_fails = true;
	resp.keep_headers = true;

	char buf[16384];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			rc = wait_fd(fd, POLLIN, deadline);
			if (rc < 0) {
				snprintf(err, errlen, "no response from %s within %d ms", hostport,
					 timeout_ms);
				goto fail_resp;
			}
			continue;
		}
		if (n < 0) {
			rc = -errno;
			snprintf(err, errlen, "reading from %s: %s", hostport, strerror(errno));
			goto fail_resp;
		}
		size_t used;
		rc = n == 0 ? evd_http_response_eof(&resp)
			    : evd_http_response_feed(&resp, buf, (size_t)n, &used);
		if (rc == 1)
			break;
		if (rc < 0) {
			if (rc == -ECONNRESET)
				snprintf(err, errlen, "%s closed the connection before a complete "
					 "response", hostport);
			else
				snprintf(err, errlen, "bad response from %s: %s", hostport,
					 evd_http_response_error(&resp));
			goto fail_resp;
		}
	}
	/* The result takes the parser's buffers. */
	res->status = resp.status;
	res->headers = resp.headers;
	res->body = resp.body;
	resp.headers = (struct evd_buf)EVD_BUF_INIT;
	resp.body = (struct evd_buf)EVD_BUF_INIT;
	evd_http_response_free(&resp);
	close(fd);
	evd_buf_free(&req);
	return 0;

fail_resp:
	evd_http_response_free(&resp);
	goto fail;
fail_connect:
	snprintf(err, errlen, "cannot connect to %s: %s", hostport,
		 rc == -ETIMEDOUT ? "timed out" : strerror(-rc));
fail:
	if (fd >= 0)
		close(fd);
	evd_buf_free(&req);
	evd_http_fetch_result_free(res);
	return rc;
}

void evd_http_fetch_result_free(struct evd_http_fetch_result *res)
{
	if (!res)
		return;
	evd_buf_free(&res->headers);
	evd_buf_free(&res->body);
	res->status = 0;
}
