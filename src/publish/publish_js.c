/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Asynchronous JetStream publishing (DESIGN.md §1, §4).
 *
 * Each event becomes one core NATS publish on the loop thread, with a reply subject of ours,
 * "<inbox>.<id>": that is all js_PublishMsgAsync puts on the wire, and JetStream answers the
 * reply subject with its PubAck. The answers arrive on an ack subscription to "<inbox>.*"
 * (nats_sub.h; with the loop I/O model it is drained on the loop right after the read event that
 * brought the acks, so an ack reaches its request without a thread hop; see nats_conn.h). The id
 * is the key of a loop-side open-addressing map id -> (request, event index); the natsMsg is
 * destroyed as soon as nats.c has copied it into its write buffer. Done on the loop this way, an
 * ack costs no lock hand-off, no allocation for the pending entry and no nats.c timer.
 *
 * Outcomes as js_PublishMsgAsync reported them: PubAck JSON parsed in place (duplicate, or
 * JetStream's error code and text), no responders (no stream on the subject: nats.c's parser
 * hands that status to the subscription, nats_conn.c's filter), and NATS_TIMEOUT when no answer
 * came within EVD_PUB_ACK_WAIT_MS (a sweep timer every 250 ms; this replaces jsPubOptions.MaxWait).
 *
 * Nothing blocks: our in-flight count (publishes whose ack the loop has not processed) stays at
 * or below max_in_flight (+ one request's events), bytes in flight are bounded too
 * (EVD_PUB_MAX_BYTES_IN_FLIGHT), and a server that stops reading only makes nats.c buffer (the
 * loop writes a non-blocking socket; with TLS nats_conn.c gives writes a deadline).
 *
 * When nats.c closes the connection for good (state CLOSED), no ack will come for what was
 * pending: evd_pub_js_backend_lost answers all of it 503 at once; the ack subscription ends with
 * that connection and the next READY makes a new one. The connection is looked up for every
 * publish (evd_nats_connection), never kept, so a dead one is never used.
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
#include "nats/nats_sub.h"
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
			     const char *reply, int reply_len, const struct evd_ce_nats_headers *h,
			     const char *data, size_t len)
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
	return natsMsg_create(m, subject, (int)strlen(subject), reply, reply_len, b->data,
			      (int)b->len, (int)hdr_len);
}
#else
static natsStatus msg_create(struct evd_publish *p, natsMsg **m, const char *subject,
			     const char *reply, int reply_len, const struct evd_ce_nats_headers *h,
			     const char *data, size_t len)
{
	(void)p;
	(void)reply_len;
	natsStatus s = natsMsg_Create(m, subject, reply, data, (int)len);
	for (size_t k = 0; s == NATS_OK && k < h->n; k++)
		s = natsMsgHeader_Set(*m, h->key[k], h->value[k]);
	return s;
}
#endif

struct ack_entry {
	uint64_t id;
	natsStatus err; /* NATS_OK: stored */
	jsErrCode jerr;
	bool duplicate;
	char text[112]; /* JetStream's error text, only for failures */
};

/*
 * The ack inbox: one subscription to "<prefix>.*" on the loop (nats_sub.h), made at every READY
 * (a connection from scratch after CLOSED needs a new one). Publish i carries the reply subject
 * "<prefix>.<id>"; JetStream answers there.
 */
struct evd_pub_acks {
	struct evd_nats_sub *sub; /* NULL: none (yet); `live` says whether it may be used */
	bool live;                /* subscribed on the current connection */
	bool want;                /* READY came while the old one was still ending */
	char prefix[64];          /* "_INBOX.<nuid>" of the current subscription */
	size_t prefix_len;
	uint64_t next_id;
	uv_timer_t sweep; /* answers publishes whose ack did not come in time */
	bool orphan;      /* the module is gone: the sweep timer's close callback frees this */
	struct evd_publish *p;
};

/* ---- msg -> request map (loop thread) ------------------------------------------------------ */

static size_t slot_of(const struct evd_pub_map *m, uint64_t id)
{
	uint64_t h = id * 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 32) & (m->cap - 1);
}

static void map_put(struct evd_pub_map *m, uint64_t id, const char *subject,
		    struct evd_pub_req *req, uint32_t idx, uint32_t bytes);

static void map_grow(struct evd_pub_map *m)
{
	struct evd_pub_slot *old = m->slots;
	size_t oldcap = m->cap;
	m->cap = oldcap ? oldcap * 2 : 1024;
	m->slots = evd_xcalloc(m->cap, sizeof(*m->slots));
	m->n = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].id)
			map_put(m, old[i].id, old[i].subject, old[i].req, old[i].idx, old[i].bytes);
	free(old);
}

static void map_put(struct evd_pub_map *m, uint64_t id, const char *subject,
		    struct evd_pub_req *req, uint32_t idx, uint32_t bytes)
{
	if ((m->n + 1) * 2 > m->cap)
		map_grow(m);
	size_t i = slot_of(m, id);
	while (m->slots[i].id)
		i = (i + 1) & (m->cap - 1);
	m->slots[i] = (struct evd_pub_slot){ id, subject, req, idx, bytes };
	m->n++;
}

/* Removes id; returns false when absent. Backward-shift deletion: no tombstones. */
static bool map_take(struct evd_pub_map *m, uint64_t id, struct evd_pub_slot *out)
{
	if (!m->cap)
		return false;
	size_t i = slot_of(m, id);
	while (m->slots[i].id != id) {
		if (!m->slots[i].id)
			return false;
		i = (i + 1) & (m->cap - 1);
	}
	*out = m->slots[i];
	size_t hole = i;
	for (size_t j = (i + 1) & (m->cap - 1); m->slots[j].id; j = (j + 1) & (m->cap - 1)) {
		size_t home = slot_of(m, m->slots[j].id);
		/* Move j into the hole unless its home lies cyclically in (hole, j]. */
		bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!stays) {
			m->slots[hole] = m->slots[j];
			hole = j;
		}
	}
	m->slots[hole].id = 0;
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
	if (!map_take(&p->map, e->id, &s))
		return; /* answered already (timed out, or the connection was lost) */
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
			     s.subject);
	} else if (status == 503) {
		evd_pub_fail(r, s.idx, 503, true,
			     "no acknowledgement from JetStream (%s); the event may be stored, a retry "
			     "is safe", e->text);
	} else if (status == 507) {
		evd_pub_fail(r, s.idx, 507, false, "the stream is full: %s", e->text);
	} else {
		evd_pub_fail(r, s.idx, 500, false, "JetStream error %d: %s", (int)e->jerr, e->text);
	}
	if (--r->pending == 0)
		evd_pub_complete(r);
}

/* ---- the ack inbox (loop thread) ---------------------------------------------------------- */

/* Where the value of `"name":` starts in JetStream's JSON answer (whitespace skipped; Go's
 * encoder writes `"seq":1`, nats-server's own `"duplicate": true`), or NULL. */
static const char *json_find(const char *data, size_t len, const char *name)
{
	size_t nlen = strlen(name);
	const char *end = data + len;
	for (const char *q = data; q + nlen + 3 <= end; q++) {
		if (q[0] != '"' || memcmp(q + 1, name, nlen) != 0 || q[1 + nlen] != '"')
			continue;
		const char *v = q + nlen + 2;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		if (v >= end || *v != ':')
			continue;
		v++;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		return v;
	}
	return NULL;
}

/*
 * JetStream's answer to a publish (nats-server 2.9, JSPubAckResponse):
 *   {"stream":"sap","seq":12}, with "duplicate":true when the Nats-Msg-Id was seen, or
 *   {"error":{"code":503,"err_code":10077,"description":"..."},"stream":..}
 * and nats-server's no-responders status (header "NATS/1.0 503", no body) when no stream
 * listens on the subject. Parsed in place: a cJSON tree per ack would cost more than the rest
 * of the ack's way together.
 */
static void parse_ack(natsMsg *m, struct ack_entry *e)
{
	const char *data = natsMsg_GetData(m);
	size_t len = (size_t)natsMsg_GetDataLength(m);
	const char *v;

	e->err = NATS_OK;
	e->jerr = 0;
	e->duplicate = false;
	e->text[0] = '\0';
	if (natsMsg_IsNoResponders(m)) {
		e->err = NATS_NO_RESPONDERS;
		snprintf(e->text, sizeof(e->text), "%s", natsStatus_GetText(e->err));
		return;
	}
	if (!data || !len) {
		e->err = NATS_ERR;
		snprintf(e->text, sizeof(e->text), "empty answer from JetStream");
		return;
	}
	if (!json_find(data, len, "error")) {
		v = json_find(data, len, "duplicate");
		e->duplicate = v && (size_t)(data + len - v) >= 4 && memcmp(v, "true", 4) == 0;
		return;
	}
	e->err = NATS_ERR;
	if ((v = json_find(data, len, "err_code")))
		e->jerr = (jsErrCode)strtol(v, NULL, 10); /* stops at the ',' or '}' after it */
	if ((v = json_find(data, len, "description")) && *v == '"') {
		size_t k = 0;
		v++;
		while (v < data + len && *v != '"' && k + 1 < sizeof(e->text)) {
			if (*v == '\\' && v + 1 < data + len)
				v++;
			e->text[k++] = *v++;
		}
		e->text[k] = '\0';
	}
	if (!e->text[0])
		snprintf(e->text, sizeof(e->text), "%.*s", (int)(len < 100 ? len : 100), data);
}

static void on_ack_msgs(struct evd_nats_sub *s, natsMsg **msgs, size_t n, void *data)
{
	struct evd_pub_acks *a = data;
	struct evd_publish *p = a->p; /* NULL once the module is gone */
	struct ack_entry e;

	for (size_t i = 0; i < n; i++) {
		const char *subj = natsMsg_GetSubject(msgs[i]);
		if (p && subj && strncmp(subj, a->prefix, a->prefix_len) == 0 &&
		    subj[a->prefix_len] == '.') {
			e.id = strtoull(subj + a->prefix_len + 1, NULL, 10);
			if (e.id) {
				parse_ack(msgs[i], &e);
				complete_one(p, &e);
			}
		}
		evd_nats_sub_msg_done(s, msgs[i]);
	}
}

static void subscribe_acks(struct evd_publish *p);

static void on_ack_sub_closed(struct evd_nats_sub *s, void *data)
{
	struct evd_pub_acks *a = data;
	(void)s;
	a->sub = NULL;
	a->live = false;
	if (!a->p) {
		if (a->orphan) /* the sweep timer is closed too */
			free(a);
		return;
	}
	if (a->want) {
		a->want = false;
		subscribe_acks(a->p);
	}
}

static void subscribe_acks(struct evd_publish *p)
{
	struct evd_pub_acks *a = p->acks;
	struct evd_nats *n = evd_daemon_nats(p->daemon);
	natsInbox *inbox = NULL;
	char subject[80];

	if (a->sub) {
		if (a->live)
			return; /* the subscription survives reconnects: nats.c resubscribes it */
		a->want = true; /* the old one is still ending (CLOSED): on_ack_sub_closed comes back */
		return;
	}
	if (!n || natsInbox_Create(&inbox) != NATS_OK)
		return;
	snprintf(a->prefix, sizeof(a->prefix), "%s", (const char *)inbox);
	natsInbox_Destroy(inbox);
	a->prefix_len = strlen(a->prefix);
	snprintf(subject, sizeof(subject), "%s.*", a->prefix);
	int err = evd_nats_sub_new(n, subject, NULL, on_ack_msgs, on_ack_sub_closed, a, &a->sub);
	if (err < 0) {
		a->sub = NULL;
		evd_log_error("publish", "cannot subscribe to the acknowledgement inbox: %s; "
			      "publishes are refused until the next reconnect", strerror(-err));
		return;
	}
	a->live = true;
}

/* Publishes whose ack is overdue get what nats.c's MaxWait gave before: NATS_TIMEOUT, 503. */
static void on_sweep(uv_timer_t *t)
{
	struct evd_pub_acks *a = t->data;
	struct evd_publish *p = a->p;
	uint64_t limit = uv_hrtime() - (uint64_t)EVD_PUB_ACK_WAIT_MS * 1000000u;
	uint64_t late[64];
	size_t n;

	if (!p->map.n)
		return;
	do {
		n = 0;
		for (size_t i = 0; i < p->map.cap && n < EVD_ARRAY_SIZE(late); i++) {
			const struct evd_pub_slot *sl = &p->map.slots[i];
			if (sl->id && (int64_t)(sl->req->publish_ns - limit) < 0)
				late[n++] = sl->id;
		}
		for (size_t i = 0; i < n; i++) {
			struct ack_entry e = { .id = late[i], .err = NATS_TIMEOUT };
			snprintf(e.text, sizeof(e.text), "%s", natsStatus_GetText(NATS_TIMEOUT));
			complete_one(p, &e);
		}
	} while (n == EVD_ARRAY_SIZE(late));
}

int evd_pub_js_init(struct evd_publish *p)
{
	struct evd_pub_acks *a = evd_xcalloc(1, sizeof(*a));
	a->p = p;
	uv_timer_init(evd_daemon_loop(p->daemon), &a->sweep);
	a->sweep.data = a;
	uv_timer_start(&a->sweep, on_sweep, 250, 250);
	uv_unref((uv_handle_t *)&a->sweep);
	p->acks = a;
	/* Room for max_in_flight plus a whole batch and more, also after a reload doubles it. */
	int64_t want = 4 * (int64_t)p->max_in_flight + 4 * EVD_PUB_MAX_BATCH;
	p->max_pending = want > 65536 ? want : 65536;
	return 0;
}

void evd_pub_js_backend_ready(struct evd_publish *p)
{
	if (p->acks)
		subscribe_acks(p);
}

int evd_pub_js_publish(struct evd_pub_req *r, size_t i, const char *subject)
{
	struct evd_publish *p = r->p;
	struct evd_pub_acks *a = p->acks;
	struct evd_nats *n = evd_daemon_nats(p->daemon);
	natsConnection *nc = n ? evd_nats_connection(n) : NULL;
	struct evd_cloudevent *ev = &r->events[i];
	struct evd_ce_nats_headers h;
	natsMsg *m = NULL;
	natsStatus s;
	char reply[96];

	if (!nc || !a || !a->live) {
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
	uint64_t id = ++a->next_id;
	int reply_len = snprintf(reply, sizeof(reply), "%s.%llu", a->prefix, (unsigned long long)id);
	s = msg_create(p, &m, subject, reply, reply_len, &h, ev->data, ev->data_len);
	if (s != NATS_OK) {
		natsMsg_Destroy(m);
		evd_pub_fail(r, i, 500, false, "cannot build the NATS message: %s",
			     natsStatus_GetText(s));
		return -ENOMEM;
	}
	/*
	 * A core publish with our inbox as the reply subject is all js_PublishMsgAsync does on
	 * the wire; JetStream answers there. natsConnection_PublishMsg copies the message into
	 * nats.c's write buffer (nats_io.c writes it at the end of this loop iteration), so the
	 * natsMsg goes at once.
	 */
	s = natsConnection_PublishMsg(nc, m);
	evd_nats_msg_free(m);
	if (s != NATS_OK) {
		evd_pub_fail(r, i, 503, true, "cannot publish to JetStream: %s", natsStatus_GetText(s));
		return -EIO;
	}
	size_t bytes = ev->data_len + 12;
	for (size_t k = 0; k < h.n; k++)
		bytes += strlen(h.key[k]) + strlen(h.value[k]) + 4;
	map_put(&p->map, id, subject, r, (uint32_t)i, (uint32_t)bytes);
	r->pending++;
	p->in_flight++;
	p->bytes_in_flight += bytes;
	p->unflushed += bytes;
	if (p->unflushed >= EVD_PUB_FLUSH_BYTES) {
		p->unflushed = 0;
		evd_nats_flush(n);
	}
	return 0;
}

/*
 * Answers every publish still waiting for its ack with 503 + Retry-After (text). The map is
 * swapped out first: answering a request may start the next pipelined one, which must find an
 * empty map (and is refused: the backend is not ready). An ack that still comes finds no entry.
 */
static void fail_pending(struct evd_publish *p, const char *text)
{
	struct evd_pub_map old = p->map;
	p->map.slots = NULL;
	p->map.cap = p->map.n = 0;
	for (size_t i = 0; i < old.cap; i++) {
		struct evd_pub_slot *s = &old.slots[i];
		if (!s->id)
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
	/* Its subscription died with the connection (it ends by itself, nats_sub.h). */
	p->acks->live = false;
	if (p->map.n)
		evd_log_warn("publish",
			     "answering %zu publishes 503: the NATS connection was closed before "
			     "JetStream acknowledged them",
			     p->map.n);
	fail_pending(p, "the NATS connection was closed before JetStream acknowledged the event "
			"(it may be stored; a retry is safe)");
}

/* a is freed when both its sweep timer and its subscription are gone. */
static void on_sweep_closed(uv_handle_t *h)
{
	struct evd_pub_acks *a = h->data;
	a->orphan = true;
	if (!a->sub)
		free(a);
}

void evd_pub_js_shutdown(struct evd_publish *p)
{
	struct evd_pub_acks *a = p->acks;
	if (!a)
		return;
	fail_pending(p, "eventingd is shutting down");
	p->acks = NULL;
	a->p = NULL;
	/* Normally evd_nats_close has ended the subscription already (it closes those still
	 * open); otherwise its on_closed frees a. */
	if (a->sub)
		evd_nats_sub_close(a->sub);
	uv_close((uv_handle_t *)&a->sweep, on_sweep_closed);
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
