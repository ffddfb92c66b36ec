/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The asynchronous HTTP/1.1 client (http_client.h): URLs, origins, the per-origin pool with its
 * FIFO of waiting requests, and completions. One connection's life is in http_client_conn.c.
 *
 * Nothing that a call starts completes inside the call: send only queues the request and marks
 * its origin; failures, cancellations and the dispatch of waiting requests run from one idle
 * handle (the "kick"), so on_done never runs inside send, cancel or close, and a callback may
 * call any of them. A response is handed over from the read callback directly.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_client_internal.h"

/* ---- URLs --------------------------------------------------------------------------------- */

struct url_parts {
	const struct evd_http_transport *transport;
	const char *host; /* without brackets */
	size_t host_len;
	bool v6;
	unsigned port;
	const char *path; /* from the first '/' or '?' after the authority, or "" */
};

static bool host_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '-' || ch == '.' || ch == '_';
}

/* "http://host[:port][/path][?query][#fragment]". */
static int parse_url(const char *url, struct url_parts *u)
{
	memset(u, 0, sizeof(*u));
	if (strncasecmp(url, "https://", 8) == 0)
		return -EPROTONOSUPPORT; /* until a TLS transport exists */
	if (strncasecmp(url, "http://", 7) != 0)
		return -EINVAL;
	u->transport = &evd_http_transport_tcp;
	const char *a = url + 7;
	size_t alen = strcspn(a, "/?#");
	const char *end = a + alen;
	const char *port = NULL;
	if (alen == 0 || memchr(a, '@', alen)) /* no userinfo: credentials belong in headers */
		return -EINVAL;
	if (a[0] == '[') {
		const char *close = memchr(a, ']', alen);
		if (!close)
			return -EINVAL;
		u->host = a + 1;
		u->host_len = (size_t)(close - a - 1);
		u->v6 = true;
		if (close + 1 < end) {
			if (close[1] != ':')
				return -EINVAL;
			port = close + 2;
		}
		for (size_t i = 0; i < u->host_len; i++)
			if (!isxdigit((unsigned char)u->host[i]) && u->host[i] != ':' &&
			    u->host[i] != '.')
				return -EINVAL;
	} else {
		const char *colon = memchr(a, ':', alen);
		u->host = a;
		u->host_len = colon ? (size_t)(colon - a) : alen;
		if (colon)
			port = colon + 1;
		for (size_t i = 0; i < u->host_len; i++)
			if (!host_char(u->host[i]))
				return -EINVAL;
	}
	if (u->host_len == 0 || u->host_len > 253)
		return -EINVAL;
	u->port = 80;
	if (port && port < end) {
		unsigned p = 0;
		for (const char *q = port; q < end; q++) {
			if (!isdigit((unsigned char)*q) || q - port >= 5)
				return -EINVAL;
			p = p * 10 + (unsigned)(*q - '0');
		}
		if (p == 0 || p > 65535)
			return -EINVAL;
		u->port = p;
	}
	u->path = end;
	/* The request target goes on the request line as is: no spaces or control bytes. */
	for (const char *q = end; *q && *q != '#'; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7f)
			return -EINVAL;
	return 0;
}

static bool token(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("!#$%&'*+-.^_`|~", s[i]))
			return false;
	return true;
}

/* Headers go on the wire as given: refuse what would break the framing or smuggle a request. */
static int check_headers(const struct evd_http_client_request *req)
{
	static const char *const ours[] = { "Host", "Content-Length", "Connection",
					    "Transfer-Encoding", "Expect" };
	if (!token(req->method, strlen(req->method)))
		return -EINVAL;
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct evd_header *h = &req->headers[i];
		if (!token(h->name, h->name_len))
			return -EINVAL;
		for (size_t j = 0; j < sizeof(ours) / sizeof(ours[0]); j++)
			if (h->name_len == strlen(ours[j]) &&
			    strncasecmp(h->name, ours[j], h->name_len) == 0)
				return -EINVAL;
		for (size_t j = 0; j < h->value_len; j++) {
			unsigned char ch = (unsigned char)h->value[j];
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return -EINVAL;
		}
	}
	return 0;
}

/* ---- origins ------------------------------------------------------------------------------ */

static unsigned hash_key(const char *s)
{
	unsigned h = 2166136261u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % EVD_HTTP_CLIENT_BUCKETS;
}

static char *dup_lower(const char *s, size_t len)
{
	char *d = malloc(len + 1);
	if (!d)
		abort();
	for (size_t i = 0; i < len; i++)
		d[i] = (char)tolower((unsigned char)s[i]);
	d[len] = '\0';
	return d;
}

static struct evd_http_origin *origin_get(struct evd_http_client *c, const struct url_parts *u)
{
	char key[300];
	snprintf(key, sizeof(key), "%s://%s%.*s%s:%u", u->transport->scheme, u->v6 ? "[" : "",
		 (int)u->host_len, u->host, u->v6 ? "]" : "", u->port);
	for (char *k = key; *k; k++)
		*k = (char)tolower((unsigned char)*k);
	unsigned b = hash_key(key);
	for (struct evd_http_origin *o = c->buckets[b]; o; o = o->hnext)
		if (strcmp(o->key, key) == 0)
			return o;

	struct evd_http_origin *o = calloc(1, sizeof(*o));
	if (!o)
		abort();
	o->key = strdup(key);
	o->host = dup_lower(u->host, u->host_len);
	char auth[300];
	snprintf(auth, sizeof(auth), "%s%s%s", u->v6 ? "[" : "", o->host, u->v6 ? "]" : "");
	if (u->port != 80)
		snprintf(auth + strlen(auth), sizeof(auth) - strlen(auth), ":%u", u->port);
	o->authority = strdup(auth);
	if (!o->key || !o->authority)
		abort();
	snprintf(o->port_str, sizeof(o->port_str), "%u", u->port);
	o->transport = u->transport;
	if (u->v6)
		o->numeric = uv_ip6_addr(o->host, (int)u->port, (struct sockaddr_in6 *)&o->addr) == 0;
	else
		o->numeric = uv_ip4_addr(o->host, (int)u->port, (struct sockaddr_in *)&o->addr) == 0 &&
			     /* inet_pton's strict dotted quad, not "1" or "0x7f.1" */
			     inet_pton(AF_INET, o->host, &(struct in_addr){ 0 }) == 1;
	o->wait_tail = &o->wait_head;
	o->hnext = c->buckets[b];
	c->buckets[b] = o;
	return o;
}

static void origin_free(struct evd_http_origin *o)
{
	free(o->key);
	free(o->host);
	free(o->authority);
	free(o);
}

/* An origin nothing refers to is dropped (a sink URL that changed leaves nothing behind). */
static void origin_maybe_free(struct evd_http_client *c, struct evd_http_origin *o)
{
	if (o->nobjs || o->nwait || o->dirty || c->closing)
		return;
	struct evd_http_origin **pp = &c->buckets[hash_key(o->key)];
	while (*pp != o)
		pp = &(*pp)->hnext;
	*pp = o->hnext;
	origin_free(o);
}

void evd_http_client_mark_dirty(struct evd_http_client *c, struct evd_http_origin *o)
{
	if (o->dirty)
		return;
	o->dirty = true;
	o->dnext = c->dirty_head;
	c->dirty_head = o;
	evd_http_client_kick(c);
}

static unsigned cap_of(const struct evd_http_client *c)
{
	return c->cfg.max_conns_per_origin ? c->cfg.max_conns_per_origin : 1;
}

static struct evd_http_client_request *pop_waiter(struct evd_http_origin *o)
{
	struct evd_http_client_request *req = o->wait_head;
	o->wait_head = req->next_;
	if (!o->wait_head)
		o->wait_tail = &o->wait_head;
	req->next_ = NULL;
	o->nwait--;
	return req;
}

/* Waiting requests take idle connections (most recently used first), then new ones up to the
 * cap; the rest keep waiting for a connection to free up. */
static void dispatch(struct evd_http_client *c, struct evd_http_origin *o)
{
	while (o->wait_head && !c->closing) {
		if (o->idle) {
			evd_http_cconn_assign(o->idle, pop_waiter(o));
		} else if (o->nconns < cap_of(c)) {
			uint64_t deadline = c->cfg.timeout_ms ? uv_now(c->loop) + c->cfg.timeout_ms
							      : 0;
			evd_http_cconn_new(c, o, pop_waiter(o), uv_hrtime(), NULL, NULL, deadline);
		} else {
			break;
		}
	}
}

void evd_http_client_conn_free_slot(struct evd_http_client_conn *conn)
{
	struct evd_http_client *c = conn->client;
	struct evd_http_origin *o = conn->origin;
	if (c->closing || o->nconns > cap_of(c) || c->cfg.idle_timeout_ms == 0) {
		evd_http_cconn_close(conn);
		/* A waiter, if any, opens a connection of its own (kicked by the close). */
	} else if (o->wait_head) {
		evd_http_cconn_assign(conn, pop_waiter(o));
	} else {
		evd_http_cconn_idle(conn);
	}
}

void evd_http_client_conn_gone(struct evd_http_client *c, struct evd_http_origin *o)
{
	o->nobjs--;
	c->nobjs--;
	origin_maybe_free(c, o);
	if (c->closing && c->nobjs == 0)
		evd_http_client_kick(c);
}

/* ---- completions -------------------------------------------------------------------------- */

static const char *phase_name(enum evd_http_client_phase p)
{
	switch (p) {
	case EVD_HCP_CANCELED: return "canceled";
	case EVD_HCP_RESOLVE: return "resolving the host";
	case EVD_HCP_CONNECT: return "connecting";
	case EVD_HCP_SEND: return "sending the request";
	case EVD_HCP_RECEIVE: return "receiving the response";
	case EVD_HCP_TIMEOUT: return "timed out";
	}
	return "?";
}

void evd_http_client_fail_later(struct evd_http_client *c, struct evd_http_client_request *req,
				int err, enum evd_http_client_phase phase, const char *detail)
{
	uintptr_t keep = HCR_FLAGS(req) & HCR_RETRIED;
	req->priv_[0] = NULL; /* the connection code may put the time spent (µs) here */
	req->priv_[1] = (void *)(uintptr_t)detail;
	req->priv_[3] = (void *)(keep | EVD_HCR_FAILED | ((uintptr_t)phase << 8) |
				 ((uintptr_t)-err << 16));
	req->next_ = NULL;
	*c->failed_tail = req;
	c->failed_tail = &req->next_;
	evd_http_client_kick(c);
}

void evd_http_client_complete(struct evd_http_client *c, struct evd_http_client_request *req,
			      struct evd_http_client_result *res)
{
	/* The request is the caller's again from here on: it may be sent again from on_done, so
	 * nothing touches it after the call. */
	req->next_ = NULL;
	req->priv_[0] = req->priv_[1] = req->priv_[2] = req->priv_[3] = NULL;
	req->on_done(req, res);
}

static void run_failed(struct evd_http_client *c)
{
	while (c->failed_head) {
		struct evd_http_client_request *req = c->failed_head;
		c->failed_head = req->next_;
		if (!c->failed_head)
			c->failed_tail = &c->failed_head;
		uintptr_t f = HCR_FLAGS(req);
		enum evd_http_client_phase phase = (enum evd_http_client_phase)((f >> 8) & 0xff);
		const char *detail = HCR_CONN(req) ? (const char *)req->priv_[1] : NULL;
		if (phase == EVD_HCP_CANCELED || !detail)
			snprintf(c->errbuf, sizeof(c->errbuf), "%s", phase_name(phase));
		else
			snprintf(c->errbuf, sizeof(c->errbuf), "%s: %s", phase_name(phase), detail);
		struct evd_http_client_result res = {
			.err = -(int)(f >> 16),
			.err_text = c->errbuf,
			.retry_after_ms = -1,
			.body = "",
			.duration_ns = (uint64_t)(uintptr_t)req->priv_[0] * 1000,
		};
		evd_http_client_complete(c, req, &res);
	}
}

static void on_kick_closed(uv_handle_t *h)
{
	struct evd_http_client *c = h->data;
	for (size_t i = 0; i < EVD_HTTP_CLIENT_BUCKETS; i++)
		while (c->buckets[i]) {
			struct evd_http_origin *o = c->buckets[i];
			c->buckets[i] = o->hnext;
			origin_free(o);
		}
	void (*cb)(void *) = c->on_closed;
	void *data = c->closed_data;
	free(c);
	if (cb)
		cb(data);
}

static void on_kick(uv_idle_t *h)
{
	struct evd_http_client *c = h->data;
	uv_idle_stop(h);
	while (c->dirty_head) {
		struct evd_http_origin *o = c->dirty_head;
		c->dirty_head = o->dnext;
		o->dirty = false;
		dispatch(c, o);
		origin_maybe_free(c, o);
	}
	run_failed(c);
	if (c->closing && !c->failed_head && c->nobjs == 0 && !uv_is_closing((uv_handle_t *)h))
		uv_close((uv_handle_t *)h, on_kick_closed);
}

void evd_http_client_kick(struct evd_http_client *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->kick))
		uv_idle_start(&c->kick, on_kick);
}

/* ---- the API ------------------------------------------------------------------------------ */

int evd_http_client_new(uv_loop_t *loop, const struct evd_http_client_config *cfg,
			struct evd_http_client **out)
{
	struct evd_http_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = loop;
	c->cfg = *cfg;
	c->failed_tail = &c->failed_head;
	uv_idle_init(loop, &c->kick);
	c->kick.data = c;
	*out = c;
	return 0;
}

void evd_http_client_set_config(struct evd_http_client *c, const struct evd_http_client_config *cfg)
{
	c->cfg = *cfg;
	for (size_t i = 0; i < EVD_HTTP_CLIENT_BUCKETS; i++)
		for (struct evd_http_origin *o = c->buckets[i]; o; o = o->hnext) {
			while (o->nconns > cap_of(c) && o->idle)
				evd_http_cconn_close(o->idle);
			if (o->wait_head) /* the cap may have grown */
				evd_http_client_mark_dirty(c, o);
		}
}

int evd_http_client_send(struct evd_http_client *c, struct evd_http_client_request *req)
{
	if (c->closing)
		return -ESHUTDOWN;
	if (!req || !req->url || !req->method || !req->on_done ||
	    (req->body_len && !req->body) || (req->nheaders && !req->headers) ||
	    HCR_STATE(req) != EVD_HCR_NONE)
		return -EINVAL;
	struct url_parts u;
	int rc = parse_url(req->url, &u);
	if (rc < 0)
		return rc;
	rc = check_headers(req);
	if (rc < 0)
		return rc;
	struct evd_http_origin *o = origin_get(c, &u);
	req->priv_[0] = o;
	req->priv_[1] = NULL;
	req->priv_[2] = (void *)(uintptr_t)u.path;
	req->priv_[3] = (void *)(uintptr_t)EVD_HCR_WAITING;
	req->next_ = NULL;
	*o->wait_tail = req;
	o->wait_tail = &req->next_;
	o->nwait++;
	evd_http_client_mark_dirty(c, o);
	return 0;
}

void evd_http_client_cancel(struct evd_http_client *c, struct evd_http_client_request *req)
{
	switch (HCR_STATE(req)) {
	case EVD_HCR_WAITING: {
		struct evd_http_origin *o = HCR_ORIGIN(req);
		struct evd_http_client_request **pp = &o->wait_head, *prev = NULL;
		while (*pp != req) {
			prev = *pp;
			pp = &(*pp)->next_;
		}
		*pp = req->next_;
		if (o->wait_tail == &req->next_)
			o->wait_tail = prev ? &prev->next_ : &o->wait_head;
		o->nwait--;
		evd_http_client_fail_later(c, req, UV_ECANCELED, EVD_HCP_CANCELED, NULL);
		origin_maybe_free(c, o);
		break;
	}
	case EVD_HCR_ACTIVE: {
		/* The response is still due: the connection cannot carry another request. */
		struct evd_http_client_request *r = evd_http_cconn_close(HCR_CONN(req));
		if (r)
			evd_http_client_fail_later(c, r, UV_ECANCELED, EVD_HCP_CANCELED, NULL);
		break;
	}
	default: /* not sent, already failing, or done */
		break;
	}
}

void evd_http_client_close(struct evd_http_client *c, void (*on_closed)(void *data), void *data)
{
	c->closing = true;
	c->on_closed = on_closed;
	c->closed_data = data;
	for (size_t i = 0; i < EVD_HTTP_CLIENT_BUCKETS; i++)
		for (struct evd_http_origin *o = c->buckets[i]; o; o = o->hnext)
			while (o->wait_head)
				evd_http_client_fail_later(c, pop_waiter(o), UV_ECANCELED,
							   EVD_HCP_CANCELED, NULL);
	for (struct evd_http_client_conn *conn = c->conns; conn; conn = conn->anext) {
		struct evd_http_client_request *r = evd_http_cconn_close(conn);
		if (r)
			evd_http_client_fail_later(c, r, UV_ECANCELED, EVD_HCP_CANCELED, NULL);
	}
	evd_http_client_kick(c);
}
