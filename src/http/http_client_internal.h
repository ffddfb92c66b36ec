/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private structures shared by http_client.c (the API, URLs, origins, the pool and its FIFO of
 * waiting requests, completions) and http_client_conn.c (one connection: resolve, connect,
 * write, read, timers, and the transport below it). Not for other areas.
 *
 * Ownership: the client owns its origins; an origin owns nothing but its key and is freed when
 * no connection object and no waiting request refers to it. A connection object lives from
 * evd_http_cconn_new until its last handle is closed and no resolution is in flight; while it
 * closes it is no longer counted against the origin's cap. A request is referred to (not owned)
 * by at most one of: its origin's FIFO, a connection, the client's completion list. Loop thread
 * only.
 */
#ifndef EVD_HTTP_CLIENT_INTERNAL_H
#define EVD_HTTP_CLIENT_INTERNAL_H

#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "http/http_client.h"
#include "http/http_response.h"
#include "util/util_buf.h"

#define EVD_HTTP_CLIENT_BUCKETS 256
/* Shared read buffer per client (the loop reads one connection at a time). */
#define EVD_HTTP_CLIENT_READ_BUF (64 * 1024)

/* Request state, in the low bits of priv_[3]. */
enum evd_http_client_req_state {
	EVD_HCR_NONE = 0, /* not ours (never sent, or on_done has run) */
	EVD_HCR_WAITING,  /* in its origin's FIFO */
	EVD_HCR_ACTIVE,   /* on a connection */
	EVD_HCR_FAILED,   /* on the completion list, to fail from the loop */
};

/* Where a failure happened: the first words of err_text. */
enum evd_http_client_phase {
	EVD_HCP_CANCELED = 0,
	EVD_HCP_RESOLVE,
	EVD_HCP_CONNECT,
	EVD_HCP_SEND,
	EVD_HCP_RECEIVE,
	EVD_HCP_TIMEOUT,
};

/* The request's private words: which origin, which connection (or, once failed, a static
 * detail string), where its path starts in url, and state | retried | phase | -err. */
#define HCR_ORIGIN(r) ((struct evd_http_origin *)(r)->priv_[0])
#define HCR_CONN(r) ((struct evd_http_client_conn *)(r)->priv_[1])
#define HCR_PATH(r) ((const char *)(r)->priv_[2])
#define HCR_FLAGS(r) ((uintptr_t)(r)->priv_[3])
#define HCR_STATE(r) ((enum evd_http_client_req_state)(HCR_FLAGS(r) & 0xf))
#define HCR_RETRIED 0x10u

static inline void hcr_set_state(struct evd_http_client_request *r,
				 enum evd_http_client_req_state s)
{
	r->priv_[3] = (void *)((HCR_FLAGS(r) & ~(uintptr_t)0xf) | (uintptr_t)s);
}

struct evd_http_client_conn;

/*
 * The transport under a connection: plain TCP today; a TLS layer implements the same four
 * operations over the TCP ones. Each reports back through the evd_http_cconn_on_* functions
 * below, never from inside the call.
 */
struct evd_http_transport {
	const char *scheme;
	int (*connect)(struct evd_http_client_conn *conn, const struct sockaddr *sa);
	/* Writes all bufs (which it may change): 1 when they are written already (no on_written
	 * follows), 0 when on_written follows (the memory stays valid until then or close), or
	 * a negative error. */
	int (*write)(struct evd_http_client_conn *conn, uv_buf_t *bufs, unsigned nbufs);
	/* Bytes of the current write not yet handed to the kernel (or the TLS layer's socket):
	 * 0 means the request is out even if on_written has not run yet. */
	size_t (*write_queued)(struct evd_http_client_conn *conn);
	int (*read_start)(struct evd_http_client_conn *conn);
	/* Idempotent; on_closed follows once. Pending writes end with UV_ECANCELED before. */
	void (*close)(struct evd_http_client_conn *conn);
};

extern const struct evd_http_transport evd_http_transport_tcp;

struct evd_http_origin {
	struct evd_http_origin *hnext; /* hash chain */
	struct evd_http_origin *dnext; /* the client's list of origins to dispatch */
	bool dirty;                    /* on that list */
	char *key;                     /* "http://host:port", host lower-cased */
	char *host;                    /* for getaddrinfo, without brackets */
	char *authority;               /* the Host header: host, or host:port when not 80 */
	char port_str[8];
	const struct evd_http_transport *transport;
	bool numeric;
	struct sockaddr_storage addr; /* when numeric */
	unsigned nconns;              /* connections counted against the cap */
	unsigned nobjs;               /* connection objects not yet freed */
	struct evd_http_client_conn *idle; /* idle connections, most recent first */
	struct evd_http_client_request *wait_head, **wait_tail;
	size_t nwait;
};

enum evd_http_cconn_state {
	EVD_HCC_RESOLVING,
	EVD_HCC_CONNECTING,
	EVD_HCC_ACTIVE,
	EVD_HCC_IDLE,    /* on the origin's idle list */
	EVD_HCC_PARKED,  /* kept alive, on no list while on_done runs */
	EVD_HCC_CLOSING,
};

struct evd_http_client_conn {
	struct evd_http_client *client;
	struct evd_http_origin *origin;
	struct evd_http_client_conn *iprev, *inext; /* the origin's idle list */
	struct evd_http_client_conn *aprev, *anext; /* the client's list of every object */
	enum evd_http_cconn_state state;
	uv_tcp_t tcp;
	uv_timer_t timer; /* the attempt's deadline while active, the idle timeout while idle */
	uv_getaddrinfo_t gai;
	uv_connect_t connect;
	uv_write_t write;
	struct addrinfo *ai, *ai_next; /* resolved addresses, and the next to try */
	unsigned pending; /* handles open + resolution in flight: freed at 0 once closing */
	bool counted;     /* counted in origin->nconns */
	bool reused;      /* has carried a response before */
	bool writing;     /* a write is in flight (its callback has not run) */
	bool release_on_written; /* kept alive, back to the pool once the write callback ran */
	bool read_started;
	struct evd_http_client_request *req;
	uint64_t start_ns; /* the request's assignment (kept across the stale-connection retry) */
	uint64_t deadline; /* uv_now() at which the attempt times out, 0 for none */
	struct evd_buf head; /* the request head, built once per request; kept for reuse */
	struct evd_http_response resp;
};

struct evd_http_client {
	uv_loop_t *loop;
	struct evd_http_client_config cfg;
	uv_idle_t kick; /* dispatches origins and fails requests from the loop, not from calls */
	struct evd_http_origin *buckets[EVD_HTTP_CLIENT_BUCKETS];
	struct evd_http_origin *dirty_head;
	struct evd_http_client_request *failed_head, **failed_tail;
	struct evd_http_client_conn *conns; /* every connection object not yet freed */
	size_t nobjs;
	bool closing;
	void (*on_closed)(void *data);
	void *closed_data;
	char errbuf[512]; /* err_text during on_done */
	char readbuf[EVD_HTTP_CLIENT_READ_BUF];
};

/* http_client.c */
void evd_http_client_kick(struct evd_http_client *c);
/* The origin may be able to serve a waiting request now: dispatch it from the loop. */
void evd_http_client_mark_dirty(struct evd_http_client *c, struct evd_http_origin *o);
/* Moves req (detached from any connection) to the completion list: on_done runs from the loop
 * with err, err_text "<phase> <url>: <detail>" (detail must be static). */
void evd_http_client_fail_later(struct evd_http_client *c, struct evd_http_client_request *req,
				int err, enum evd_http_client_phase phase, const char *detail);
/* A connection that finished a request and may carry another: next waiter, idle, or close. */
void evd_http_client_conn_free_slot(struct evd_http_client_conn *conn);
/* Called by the connection code when a connection object is freed. */
void evd_http_client_conn_gone(struct evd_http_client *c, struct evd_http_origin *o);
/* Completes req successfully or with an HTTP-level result, from a loop callback. */
void evd_http_client_complete(struct evd_http_client *c, struct evd_http_client_request *req,
			      struct evd_http_client_result *res);

/* http_client_conn.c */
/* A new connection for req (which it takes at once); ai: addresses still to try (taken), or
 * NULL to resolve or use the origin's numeric address. */
void evd_http_cconn_new(struct evd_http_client *c, struct evd_http_origin *o,
		       struct evd_http_client_request *req, uint64_t start_ns,
		       struct addrinfo *ai, struct addrinfo *ai_next, uint64_t deadline);
/* Puts req on an open connection and writes it. */
void evd_http_cconn_assign(struct evd_http_client_conn *conn, struct evd_http_client_request *req);
/* Closes (idempotent); a request still on it is detached and returned. */
struct evd_http_client_request *evd_http_cconn_close(struct evd_http_client_conn *conn);
/* Idle: starts the idle timer and keeps reading, so a close by the peer is seen at once. */
void evd_http_cconn_idle(struct evd_http_client_conn *conn);

/* Transport callbacks. */
void evd_http_cconn_on_connect(struct evd_http_client_conn *conn, int status);
void evd_http_cconn_on_written(struct evd_http_client_conn *conn, int status);
void evd_http_cconn_on_read(struct evd_http_client_conn *conn, ssize_t nread, const char *data);
void evd_http_cconn_on_closed(struct evd_http_client_conn *conn);

#endif
