/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Asynchronous JetStream publishing (DESIGN.md §1, §4).
 *
 * Each event becomes one natsMsg handed to js_PublishMsgAsync on the loop thread. nats.c gives
 * the ack handler nothing but the natsMsg* back (no per-message closure), and with an AckHandler
 * the message is ours to destroy after the handler, so its address stays unique until then and is
 * the key of a loop-side open-addressing map msg -> (request, event index).
 *
 * The handler (a nats.c thread) only appends {msg, outcome} to a mutex-protected vector and,
 * when the vector was empty, posts the sink's one bridge item; the loop swaps the vector out whole
 * (double buffering: no allocation per ack once warm), resolves each msg in the map, destroys
 * it and completes the request when its last publish is answered.
 *
 * nats.c never blocks us: our in-flight count (publishes whose ack the loop has not processed)
 * is at least nats.c's pending count and stays at or below max_in_flight (+ one request's
 * events), well under PublishAsync.MaxPending, so js_PublishMsgAsync never stalls. MaxWait is set
 * on every publish so an ack lost in a disconnect still ends as a NATS_TIMEOUT answer. A server
 * that stops reading cannot block it either: nats_conn.c gives writes a deadline. Bytes in flight
 * are bounded too (EVD_PUB_MAX_BYTES_IN_FLIGHT), not only messages.
 *
 * When nats.c closes the connection for good (state CLOSED), no ack or timeout will come for what
 * it had pending: evd_pub_js_backend_lost answers all of it 503 at once. The jsCtx is looked up
 * for every publish (evd_nats_js), never kept, so a dead one is never used.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "daemon/daemon.h"
#include "evd_build_config.h"
#include "nats/nats_bridge.h"
#include "nats/nats_conn.h"
#include "publish/publish_internal.h"
#include "util/util_log.h"
#include "util/util_mem.h"

#if EVD_NATS_RAW_HEADERS
/*
 * libnats's constructor for a message as read from the wire (src/msg.h in nats.c 3.x, exported
 * but not declared in nats.h): buf holds the NATS/1.0 header block (hdrLen bytes) followed by the
 * payload, copied into the message's single allocation. natsConn_publish sends such a block as is
 * (the path nats.c uses to republish a received message), so a message costs one allocation
 * instead of about thirty with natsMsgHeader_Set (a hash, a key copy, a value copy and an entry per
 * header), each freed again on natsMsg_Destroy.
 */
natsStatus natsMsg_create(natsMsg **newMsg, const char *subject, int subjLen, const char *reply,
			  int replyLen, const char *buf, int bufLen, int hdrLen);

static natsStatus msg_create(struct evd_publish *p, natsMsg **m, const char *subject,
			     const struct evd_ce_nats_headers *h, const char *data, size_t len)
{
	struct evd_buf *b = &p->scratch;
	evd_buf_reset(b);
	evd_buf_append(b, "NATS/1.0\r\n", 10);
	for (size_t k = 0; k < h->n; k++) {
		/* Values are percent-encoded (printable ASCII, no CR/LF) by evd_ce_to_nats_headers. */
		evd_buf_append_str(b, h->key[k]);
		evd_buf_append(b, ": ", 2);
		evd_buf_append_str(b, h->value[k]);
		evd_buf_append(b, "\r\n", 2);
	}
	evd_buf_append(b, "\r\n", 2);
	size_t hdr_len = b->len;
	evd_buf_append(b, data, len);
	return natsMsg_create(m, subject, (int)strlen(subject), NULL, 0, b->data, (int)b->len,
			      (int)hdr_len);
}
#else
static natsStatus msg_create(struct evd_publish *p, natsMsg **m, const char *subject,
			     const struct evd_ce_nats_headers *h, const char *data, size_t len)
{
	(void)p;
	natsStatus s = natsMsg_Create(m, subject, NULL, data, (int)len);
	for (size_t k = 0; s == NATS_OK && k < h->n; k++)
		s = natsMsgHeader_Set(*m, h->key[k], h->value[k]);
	return s;
}
#endif

struct ack_entry {
	natsMsg *msg;
	natsStatus err; /* NATS_OK: stored */
	jsErrCode jerr;
	bool duplicate;
	char text[112]; /* nats.c's error text, only for failures */
};

struct evd_pub_acks {
	uv_mutex_t lock; /* guards everything below but item and p */
	struct ack_entry *v, *spare;
	size_t n, cap, spare_cap;
	bool posted; /* item is queued on the bridge */
	bool orphan; /* the module is gone: the item's run frees the sink */
	struct evd_bridge_item item;
	struct evd_bridge *bridge;
	struct evd_publish *p;
};

/* ---- msg -> request map (loop thread) ------------------------------------------------------ */

static size_t slot_of(const struct evd_pub_map *m, const void *msg)
{
	uint64_t h = (uint64_t)(uintptr_t)msg * 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 32) & (m->cap - 1);
}

static void map_put(struct evd_pub_map *m, const void *msg, struct evd_pub_req *req, uint32_t idx,
		    uint32_t bytes);

static void map_grow(struct evd_pub_map *m)
{
	struct evd_pub_slot *old = m->slots;
	size_t oldcap = m->cap;
	m->cap = oldcap ? oldcap * 2 : 1024;
	m->slots = evd_xcalloc(m->cap, sizeof(*m->slots));
	m->n = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].msg)
			map_put(m, old[i].msg, old[i].req, old[i].idx, old[i].bytes);
	free(old);
}

static void map_put(struct evd_pub_map *m, const void *msg, struct evd_pub_req *req, uint32_t idx,
		    uint32_t bytes)
{
	if ((m->n + 1) * 2 > m->cap)
		map_grow(m);
	size_t i = slot_of(m, msg);
	while (m->slots[i].msg)
		i = (i + 1) & (m->cap - 1);
	m->slots[i] = (struct evd_pub_slot){ msg, req, idx, bytes };
	m->n++;
}

/* Removes msg; returns false when absent. Backward-shift deletion: no tombstones. */
static bool map_take(struct evd_pub_map *m, const void *msg, struct evd_pub_slot *out)
{
	if (!m->cap)
		return false;
	size_t i = slot_of(m, msg);
	while (m->slots[i].msg != msg) {
		if (!m->slots[i].msg)
			return false;
		i = (i + 1) & (m->cap - 1);
	}
	*out = m->slots[i];
	size_t hole = i;
	for (size_t j = (i + 1) & (m->cap - 1); m->slots[j].msg; j = (j + 1) & (m->cap - 1)) {
		size_t home = slot_of(m, m->slots[j].msg);
		/* Move j into the hole unless its home lies cyclically in (hole, j]. */
		bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!stays) {
			m->slots[hole] = m->slots[j];
			hole = j;
		}
	}
	m->slots[hole].msg = NULL;
	m->n--;
	return true;
}

/* ---- outcome -> status --------------------------------------------------------------------- */

static bool has_text(const char *t, const char *needle)
{
	return t && strstr(t, needle) != NULL;
}

/*
 * Kyma's mapping (reference §1.5) with our 503 for an unavailable backend (§9): 504 when no
 * stream answers (nats.c reports NATS_NO_RESPONDERS; its jerr is not reliable then), 507 when the
 * stream or the server is full, 503 + Retry-After when the ack did not come (timeout, disconnect).
 * Kyma answers other JetStream API errors with the API error's HTTP-like code, which nats.c's
 * jsPubAckErr does not carry; we answer 500 with JetStream's text.
 */
static int status_of(const struct ack_entry *e, bool *retry)
{
	*retry = false;
	switch (e->err) {
	case NATS_OK:
		return 0;
	case NATS_NO_RESPONDERS:
		return 504;
	case NATS_TIMEOUT:
	case NATS_CONNECTION_CLOSED:
	case NATS_CONNECTION_DISCONNECTED:
	case NATS_NOT_YET_CONNECTED:
	case NATS_STALE_CONNECTION:
	case NATS_IO_ERROR:
		*retry = true;
		return 503;
	default:
		break;
	}
	if (e->jerr == JSStreamStoreFailedErr || e->jerr == JSInsufficientResourcesErr ||
	    e->jerr == JSStorageResourcesExceededErr || has_text(e->text, "no space left on device") ||
	    has_text(e->text, "maximum bytes exceeded") || has_text(e->text, "maximum messages exceeded"))
		return 507;
	return 500;
}

static void complete_one(struct evd_publish *p, const struct ack_entry *e)
{
	struct evd_pub_slot s;
	if (!map_take(&p->map, e->msg, &s)) {
		natsMsg_Destroy(e->msg); /* cannot happen: every published msg is mapped until its ack */
		return;
	}
	struct evd_pub_req *r = s.req;
	bool retry;
	int status = status_of(e, &retry);
	p->in_flight--;
	p->bytes_in_flight -= s.bytes;
	evd_pub_metrics_backend(p, status ? status : 204, r->publish_ns);
	if (status == 0) {
		if (e->duplicate)
			evd_pub_metrics_duplicate(p);
		evd_pub_metrics_published(p, &r->events[s.idx]);
	} else if (status == 504) {
		evd_pub_fail(r, s.idx, 504, false, "no JetStream stream answers for subject %s",
			     natsMsg_GetSubject(e->msg));
	} else if (status == 503) {
		evd_pub_fail(r, s.idx, 503, true,
			     "no acknowledgement from JetStream (%s); the event may be stored, a retry "
			     "is safe", e->text);
	} else if (status == 507) {
		evd_pub_fail(r, s.idx, 507, false, "the stream is full: %s", e->text);
	} else {
		evd_pub_fail(r, s.idx, 500, false, "JetStream error %d: %s", (int)e->jerr, e->text);
	}
	natsMsg_Destroy(e->msg);
	if (--r->pending == 0)
		evd_pub_complete(r);
}

/* ---- the ack sink ------------------------------------------------------------------------- */

static void sink_free(struct evd_pub_acks *a)
{
	for (size_t i = 0; i < a->n; i++)
		natsMsg_Destroy(a->v[i].msg);
	uv_mutex_destroy(&a->lock);
	free(a->v);
	free(a->spare);
	free(a);
}

/* Takes the queued entries (swaps the vectors). Caller holds nothing. */
static struct ack_entry *sink_take(struct evd_pub_acks *a, size_t *n, bool *orphan,
				   bool item_ran)
{
	uv_mutex_lock(&a->lock);
	struct ack_entry *v = a->v;
	size_t cap = a->cap;
	*n = a->n;
	a->v = a->spare;
	a->cap = a->spare_cap;
	a->n = 0;
	a->spare = v;
	a->spare_cap = cap;
	if (item_ran)
		a->posted = false;
	*orphan = a->orphan;
	uv_mutex_unlock(&a->lock);
	return v;
}

static void on_acks_loop(struct evd_bridge_item *item)
{
	struct evd_pub_acks *a = EVD_CONTAINER_OF(item, struct evd_pub_acks, item);
	size_t n;
	bool orphan;
	struct ack_entry *v = sink_take(a, &n, &orphan, true);
	if (orphan) {
		/* The module is gone (shutdown); nats.c is closed: just release what came. */
		for (size_t i = 0; i < n; i++)
			natsMsg_Destroy(v[i].msg);
		sink_free(a);
		return;
	}
	for (size_t i = 0; i < n; i++)
		complete_one(a->p, &v[i]);
}

/* nats.c's thread: record and wake the loop; nothing else. */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	struct evd_pub_acks *a = closure;
	(void)js;
	uv_mutex_lock(&a->lock);
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 256;
		a->v = evd_xrealloc(a->v, a->cap * sizeof(*a->v));
	}
	struct ack_entry *e = &a->v[a->n++];
	e->msg = msg;
	e->err = NATS_OK;
	e->jerr = 0;
	e->duplicate = pa && pa->Duplicate;
	e->text[0] = '\0';
	if (!pa) {
		e->err = pae ? pae->Err : NATS_ERR;
		if (e->err == NATS_OK)
			e->err = NATS_ERR;
		e->jerr = pae ? pae->ErrCode : 0;
		snprintf(e->text, sizeof(e->text), "%s",
			 pae && pae->ErrText ? pae->ErrText : natsStatus_GetText(e->err));
	}
	bool post = !a->posted;
	a->posted = true;
	uv_mutex_unlock(&a->lock);
	if (post)
		evd_bridge_post(a->bridge, &a->item);
}

int evd_pub_js_init(struct evd_publish *p)
{
	struct evd_nats *n = evd_daemon_nats(p->daemon);
	struct evd_pub_acks *a = evd_xcalloc(1, sizeof(*a));
	int rc = uv_mutex_init(&a->lock);
	if (rc < 0) {
		free(a);
		return rc;
	}
	a->bridge = evd_daemon_bridge(p->daemon);
	a->p = p;
	a->item.on_loop = on_acks_loop;
	p->acks = a;
	/* Room for max_in_flight plus a whole batch and more, also after a reload doubles it. */
	int64_t want = 4 * (int64_t)p->max_in_flight + 4 * EVD_PUB_MAX_BATCH;
	p->max_pending = want > 65536 ? want : 65536;
	if (n) {
		evd_nats_set_pub_ack_handler(n, on_ack, a);
		evd_nats_set_pub_max_pending(n, p->max_pending);
	}
	return 0;
}

int evd_pub_js_publish(struct evd_pub_req *r, size_t i, const char *subject)
{
	struct evd_publish *p = r->p;
	struct evd_nats *n = evd_daemon_nats(p->daemon);
	jsCtx *js = n ? evd_nats_js(n) : NULL;
	struct evd_cloudevent *ev = &r->events[i];
	struct evd_ce_nats_headers h;
	natsMsg *m = NULL;
	natsStatus s;

	if (!js) {
		evd_pub_fail(r, i, 503, true, "JetStream unavailable: not connected");
		return -ENOTCONN;
	}
	evd_ce_to_nats_headers(ev, &h);
	char copy_id[33];
	if (r->route == EVD_ROUTE_LEGACY && i == 1) {
		/*
		 * The legacy prefixed copy has source "kyma" whatever the application, and the id of
		 * the standard copy: with the plain (source, id) Msg-Id JetStream would drop it as a
		 * duplicate of the standard copy of application "kyma", or of another application's
		 * prefixed copy with the same event-id, while the client got 200. Its own Msg-Id,
		 * tagged with the application, keeps retries deduplicated and copies apart.
		 */
		const struct evd_cloudevent *std = &r->events[0];
		evd_ce_nats_msg_id_tagged(std->attr[EVD_CE_SOURCE], std->attr_len[EVD_CE_SOURCE],
					  ev->attr[EVD_CE_SOURCE], ev->attr_len[EVD_CE_SOURCE],
					  ev->attr[EVD_CE_ID], ev->attr_len[EVD_CE_ID], copy_id);
		h.value[h.n - 1] = copy_id; /* Nats-Msg-Id comes last */
	}
	s = msg_create(p, &m, subject, &h, ev->data, ev->data_len);
	if (s != NATS_OK) {
		natsMsg_Destroy(m);
		evd_pub_fail(r, i, 500, false, "cannot build the NATS message: %s",
			     natsStatus_GetText(s));
		return -ENOMEM;
	}
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = EVD_PUB_ACK_WAIT_MS;
	/* The ack may be handled on nats.c's thread before js_PublishMsgAsync returns; the loop
	 * only looks at it later, by which time the map has the entry. */
	size_t bytes = ev->data_len + 12;
	for (size_t k = 0; k < h.n; k++)
		bytes += strlen(h.key[k]) + strlen(h.value[k]) + 4;
	map_put(&p->map, m, r, (uint32_t)i, (uint32_t)bytes);
	natsMsg *keep = m;
	s = js_PublishMsgAsync(js, &m, &po);
	if (s != NATS_OK) {
		struct evd_pub_slot gone;
		map_take(&p->map, keep, &gone);
		natsMsg_Destroy(keep);
		evd_pub_fail(r, i, 503, true, "cannot publish to JetStream: %s", natsStatus_GetText(s));
		return -EIO;
	}
	r->pending++;
	p->in_flight++;
	p->bytes_in_flight += bytes;
	return 0;
}

/*
 * Answers every publish still waiting for its ack with 503 + Retry-After (text), after the acks
 * that already came. The map is swapped out first: answering a request may start the next
 * pipelined one, which must find an empty map (and is refused: the backend is not ready).
 * nats.c may still hand us acks of these messages later (or destroy them itself); such an ack
 * finds no entry and its message is destroyed (complete_one).
 */
static void fail_pending(struct evd_publish *p, const char *text)
{
	struct evd_pub_acks *a = p->acks;
	size_t n;
	bool orphan;
	struct ack_entry *v = sink_take(a, &n, &orphan, false);
	for (size_t i = 0; i < n; i++)
		complete_one(p, &v[i]);
	struct evd_pub_map old = p->map;
	p->map.slots = NULL;
	p->map.cap = p->map.n = 0;
	for (size_t i = 0; i < old.cap; i++) {
		struct evd_pub_slot *s = &old.slots[i];
		if (!s->msg)
			continue;
		struct evd_pub_req *r = s->req;
		p->in_flight--;
		p->bytes_in_flight -= s->bytes;
		evd_pub_fail(r, s->idx, 503, true, "%s", text);
		if (--r->pending == 0)
			evd_pub_complete(r);
	}
	free(old.slots);
}

void evd_pub_js_backend_lost(struct evd_publish *p)
{
	if (!p->acks)
		return;
	if (p->map.n)
		evd_log_warn("publish",
			     "answering %zu publishes 503: the NATS connection was closed before "
			     "JetStream acknowledged them",
			     p->map.n);
	fail_pending(p, "the NATS connection was closed before JetStream acknowledged the event "
			"(it may be stored; a retry is safe)");
}

void evd_pub_js_shutdown(struct evd_publish *p)
{
	struct evd_pub_acks *a = p->acks;
	if (!a)
		return;
	/* What never got an ack: nats.c (closed by now) destroyed those messages itself. */
	fail_pending(p, "eventingd is shutting down");
	uv_mutex_lock(&a->lock);
	if (a->posted) {
		a->orphan = true; /* the queued item frees the sink when it runs */
		uv_mutex_unlock(&a->lock);
	} else {
		uv_mutex_unlock(&a->lock);
		sink_free(a);
	}
	p->acks = NULL;
}

void evd_pub_fail(struct evd_pub_req *r, size_t idx, int status, bool retry, const char *fmt, ...)
{
	if (r->status && r->fail_idx <= idx)
		return; /* keep the failure of the lowest event index */
	r->status = status;
	r->fail_idx = idx;
	r->fail_retry = retry;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->fail_text, sizeof(r->fail_text), fmt, ap);
	va_end(ap);
}
