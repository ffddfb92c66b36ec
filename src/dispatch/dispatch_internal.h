/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dispatcher's private state (dispatch.c, dispatch_deliver.c) and its pure parts
 * (dispatch_policy.c, dispatch_request.c: no I/O, any thread, unit-tested). Loop thread only for
 * the state.
 */
#ifndef EVD_DISPATCH_INTERNAL_H
#define EVD_DISPATCH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#include "dispatch/dispatch.h"
#include "event/event_ce.h"
#include "http/http_client.h"
#include "nats/nats_sub.h"
#include "util/util_buf.h"
#include "util/util_header.h"

/* ---- dispatch_policy.c ---------------------------------------------------------------------- */

enum evd_dispatch_verdict {
	EVD_DV_ACK,       /* 2xx: delivered */
	EVD_DV_RETRY,     /* 408, 429, 5xx, timeout, connection error: again after a delay */
	EVD_DV_PERMANENT, /* 3xx, other 4xx: never again */
	EVD_DV_REQUEUE,   /* cancelled by us (shutdown): back to JetStream at once, not an attempt */
};

/*
 * Classifies one attempt's result (status 0 when no response: err is then a libuv error). The
 * reason ("HTTP 503", "connection refused (ECONNREFUSED)", "timeout") goes to reason; *code is
 * the response_code label (Kyma's: the status, or 500 without one).
 */
enum evd_dispatch_verdict evd_dispatch_classify(int status, int err, const char *err_text,
						char *reason, size_t reason_len, int *code);

struct evd_dispatch_backoff {
	int64_t initial_ms; /* delay after the first failed attempt */
	int64_t max_ms;     /* never longer (Retry-After included) */
	double factor;      /* growth per attempt */
};

/*
 * Delay before the retry that follows failed attempt number attempt (1-based):
 * initial * factor^(attempt-1), plus jitter of up to 25 % (rnd in [0,1)), capped by max;
 * Retry-After (retry_after_ms >= 0) is a floor, capped by max too. At least 1 ms.
 */
int64_t evd_dispatch_backoff_ms(const struct evd_dispatch_backoff *b, unsigned attempt,
				int64_t retry_after_ms, double rnd);

/*
 * A JetStream ack reply subject: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.
 * <pending> (v1) or $JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.
 * <pending>[.<token>] (v2), as nats.c's natsMsg_GetMetaData reads it, without its allocations.
 * Returns 0, or -EINVAL when reply is no such subject.
 */
struct evd_dispatch_meta {
	uint64_t stream_seq;
	uint64_t delivered; /* 1 on the first delivery */
	int64_t timestamp_ns;
};
int evd_dispatch_parse_reply(const char *reply, struct evd_dispatch_meta *out);

/* ---- dispatch_track.c ---------------------------------------------------------------------- */

struct dmsg;

/*
 * Attempts of one stream sequence of a consumer, kept while the message is ours (live) or backs
 * off in JetStream, so a redelivery is recognised (live: the same message again) and a retry
 * knows how many attempts came before.
 */
struct dtrack {
	uint64_t seq; /* 0: empty slot (stream sequences start at 1) */
	uint32_t attempts;
	uint64_t touched; /* uv_now() of the last sighting */
	struct dmsg *live;
};

/* Open addressing on the sequence, backward-shift deletion (no tombstones). Zero-initialised. */
struct evd_dispatch_track {
	struct dtrack *slots;
	size_t n, cap;
};

struct dtrack *evd_dispatch_track_find(struct evd_dispatch_track *t, uint64_t seq);
/* Inserts v (v->seq must not be present and not 0); returns the stored entry, valid until the
 * next put, del or gc. */
struct dtrack *evd_dispatch_track_put(struct evd_dispatch_track *t, const struct dtrack *v);
void evd_dispatch_track_del(struct evd_dispatch_track *t, uint64_t seq);
/* Forgets entries that are not live and were last touched age or more before now. */
void evd_dispatch_track_gc(struct evd_dispatch_track *t, uint64_t now, uint64_t age);
void evd_dispatch_track_free(struct evd_dispatch_track *t);
/* The attempts to credit a sequence seen for the first time with JetStream's delivery count
 * (1 on a first delivery): after a restart every earlier delivery counts as an attempt. */
uint32_t evd_dispatch_prior_attempts(uint64_t delivered);

/* ---- dispatch_request.c -------------------------------------------------------------------- */

/*
 * Binary mode from a stored message's NATS headers (keys/values as nats.c returns them): every
 * ce-* header byte for byte (already percent-encoded as the HTTP binding wants), except
 * ce-datacontenttype, which becomes Content-Type (decoded), and the tracing extensions
 * (evd_ce_tracing), which become their headers (decoded when the result is a plain header
 * value). Other keys (Nats-Msg-Id...) are dropped. Decoded values are written to scratch, which
 * is reset first; out[] (room for n) points into keys, values and scratch. Returns the number of
 * headers.
 */
size_t evd_dispatch_build_binary(const char *const *keys, const char *const *values, size_t n,
				 struct evd_header *out, struct evd_buf *scratch);

/*
 * Structured mode: body (reset first) gets evd_ce_encode_structured without the tracing
 * extensions; out[] gets Content-Type: application/cloudevents+json; charset=utf-8 and the
 * tracing headers. Returns the number of headers.
 */
#define EVD_DISPATCH_STRUCTURED_HEADERS 8 /* Content-Type and the 7 tracing headers */
size_t evd_dispatch_build_structured(const struct evd_cloudevent *ev, struct evd_header *out,
				     struct evd_buf *body);

/* ---- state ------------------------------------------------------------------------------- */

struct dsub;
struct dbinding;

enum dmsg_state { DM_HELD, DM_SENDING };

/* One message lent by nats_sub, held or being sent. Pooled (header arrays and buffers reused). */
struct dmsg {
	struct dmsg *next, *prev;         /* held queue of its dsub, or the sending list */
	struct dmsg *all_next, *all_prev; /* every live message (the +WPI sweep) */
	struct dbinding *b;
	natsMsg *msg;
	struct evd_nats_sub *nsub;
	natsMsg *newer; /* a redelivery that arrived during the attempt: settled instead of msg */
	struct evd_nats_sub *newer_nsub;
	uint64_t seq;
	uint64_t delivered;
	enum dmsg_state state;
	uint64_t progress_at; /* uv_now(): received, or last +WPI */
	unsigned attempt;
	size_t bytes;
	struct evd_subscription *sub; /* reference for the attempt: sink URL, labels */
	const char *type, *id;        /* of the event (in meta), NULL before it was decoded */
	struct evd_http_client_request req;
	/* Kept across reuse: a record is ~0.5 KiB, so 10,000 in flight stay small. */
	struct evd_header *hdr;
	size_t hdr_cap;
	struct evd_buf meta;    /* type and id */
	struct evd_buf scratch; /* decoded header values */
	struct evd_buf body;    /* structured mode */
};

/* One consumer the registry told about. */
struct dbinding {
	struct dbinding *next;
	struct evd_dispatch *d;
	char name[EVD_SUB_CONSUMER_NAME_LEN + 1];
	char subject[sizeof(EVD_REGISTRY_DELIVER_PREFIX) + EVD_SUB_CONSUMER_NAME_LEN];
	struct dsub *ds;
	struct evd_subscription *sub; /* reference: the definition in effect */
	size_t type;
	bool present, deliverable;
	struct evd_nats_sub *nsub; /* the current subscription, or NULL */
	int nsubs_open;            /* current and closing */
	size_t live;               /* messages of this binding lent to us */
	struct evd_dispatch_track track;
};

/* One subscription (namespace/name): the limit and the figures across its types. */
struct dsub {
	struct dsub *next;
	char *ns, *name;
	struct evd_subscription *sub; /* reference: the latest definition seen */
	int nbindings;
	struct dmsg *held_head, *held_tail;
	size_t nheld;
	int in_flight;
	uint64_t delivered, failed, retries;
	int64_t last_success_ms, last_failure_ms; /* wall clock, 0: never */
	char *last_failure_reason;
};

struct evd_dispatch {
	uv_loop_t *loop;
	const struct evd_config *cfg;
	struct evd_nats *nats;
	struct evd_metrics *metrics;
	struct evd_http_client *http;

	struct dbinding *bindings;
	struct dsub *subs;
	struct dmsg *all; /* every live message */
	struct dmsg *pool;
	size_t npool;
	struct evd_cloudevent ev; /* decoding scratch: one event at a time, on the loop */
	size_t in_flight, held;
	size_t bytes_in_flight;
	bool budget_blocked;
	bool pumping; /* dd_pump or dd_release_held is walking a queue: finish() does not pump */
	bool nats_ready;

	uv_timer_t wpi_timer;
	uv_timer_t drain_timer;
	uint64_t last_gc;
	int open_handles;
	bool stopping, stop_returned, drained_called, freeing;
	void (*on_stopped)(void *data);
	void *stopped_data;

	struct evd_metric *m_delivery, *m_duration, *m_in_flight, *m_retries, *m_permanent;
};

/* Bytes of bodies being sent at most; past it messages are held (one is always let through). */
#define EVD_DISPATCH_MAX_BYTES_IN_FLIGHT (64u * 1024 * 1024)

/* dispatch_deliver.c */
void dd_on_msgs(struct evd_nats_sub *s, natsMsg **msgs, size_t n, void *data);
void dd_pump(struct evd_dispatch *d, struct dsub *ds);
void dd_pump_all(struct evd_dispatch *d);
/* -NAKs and returns every held message of b (b stops delivering). */
void dd_release_held(struct evd_dispatch *d, struct dbinding *b);
void dd_wpi_sweep(struct evd_dispatch *d);
void dd_track_gc(struct evd_dispatch *d);
void dd_cancel_all(struct evd_dispatch *d);
void dd_free_pool(struct evd_dispatch *d);

/* dispatch.c */
void dd_binding_maybe_free(struct evd_dispatch *d, struct dbinding *b);
void dd_check_stopped(struct evd_dispatch *d);
int64_t dd_wall_ms(void);
void dd_set_in_flight_metric(struct evd_dispatch *d);

#endif
