/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The asynchronous HTTP/1.1 client (http_client.h). This first version is a stub so that the
 * dispatcher can build against the API: every send fails asynchronously with UV_ENOSYS.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_client.h"

struct evd_http_client {
	uv_loop_t *loop;
	struct evd_http_client_config cfg;
	uv_idle_t idle; /* runs pending completions (never from inside send) */
	struct evd_http_client_request *done_head, **done_tail;
	bool closing;
	void (*on_closed)(void *data);
	void *closed_data;
};

static void on_idle(uv_idle_t *h)
{
	struct evd_http_client *c = h->data;
	uv_idle_stop(h);
	while (c->done_head) {
		struct evd_http_client_request *r = c->done_head;
		c->done_head = r->next_;
		if (!c->done_head)
			c->done_tail = &c->done_head;
		r->next_ = NULL;
		struct evd_http_client_result res = {
			.err = c->closing ? UV_ECANCELED : UV_ENOSYS,
			.err_text = "the HTTP client is not implemented yet",
			.retry_after_ms = -1,
		};
		r->on_done(r, &res);
	}
}

int evd_http_client_new(uv_loop_t *loop, const struct evd_http_client_config *cfg,
			struct evd_http_client **out)
{
	struct evd_http_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = loop;
	c->cfg = *cfg;
	c->done_tail = &c->done_head;
	uv_idle_init(loop, &c->idle);
	c->idle.data = c;
	*out = c;
	return 0;
}

void evd_http_client_set_config(struct evd_http_client *c, const struct evd_http_client_config *cfg)
{
	c->cfg = *cfg;
}

int evd_http_client_send(struct evd_http_client *c, struct evd_http_client_request *req)
{
	if (c->closing)
		return -ESHUTDOWN;
	if (!req->url || !req->method || !req->on_done)
		return -EINVAL;
	if (strncmp(req->url, "https://", 8) == 0)
		return -EPROTONOSUPPORT;
	if (strncmp(req->url, "http://", 7) != 0)
		return -EINVAL;
	req->next_ = NULL;
	*c->done_tail = req;
	c->done_tail = &req->next_;
	uv_idle_start(&c->idle, on_idle);
	return 0;
}

void evd_http_client_cancel(struct evd_http_client *c, struct evd_http_client_request *req)
{
}

static void on_idle_closed(uv_handle_t *h)
{
	struct evd_http_client *c = h->data;
	void (*cb)(void *) = c->on_closed;
	void *data = c->closed_data;
	free(c);
	if (cb)
		cb(data);
}

void evd_http_client_close(struct evd_http_client *c, void (*on_closed)(void *data), void *data)
{
	c->closing = true;
	c->on_closed = on_closed;
	c->closed_data = data;
	on_idle(&c->idle);
	uv_close((uv_handle_t *)&c->idle, on_idle_closed);
}
