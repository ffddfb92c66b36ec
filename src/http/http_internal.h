/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private structures shared by http_server.c (listener, lifecycle, response formatting) and
 * http_conn.c (reading, parsing, the per-connection response queue). Not for other areas.
 *
 * Ownership: the server owns its listener, stop timer and the list of open connections. A
 * connection owns its tcp handle, idle timer, parser and its requests. A connection is freed only
 * when both handles are closed AND every request handed to the handler has been answered; until
 * then an answered request on a closed connection is simply discarded. Loop thread only.
 */
#ifndef EVD_HTTP_INTERNAL_H
#define EVD_HTTP_INTERNAL_H

#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "http/http_server.h"
#include "util/util_buf.h"

/* Responses sent in one uv_write at most; more simply wait for the next write. */
#define EVD_HTTP_WRITE_BATCH 16
/* A request body buffer up to this capacity is kept for reuse once answered; a larger one is
 * freed at evd_http_respond (http_server.c). */
#define EVD_HTTP_KEEP_BODY 4096
/* Request objects a connection keeps for reuse. */
#define EVD_HTTP_FREELIST 4
/* Shared read buffer per server (the loop reads one connection at a time). */
#define EVD_HTTP_READ_BUF (64 * 1024)
/* After a final response we half-close and drain input this long before closing (lingering
 * close), so a client that is still sending does not get a reset that destroys the response. */
#define EVD_HTTP_LINGER_MS 2000

enum evd_http_req_state {
	EVD_REQ_PARSING = 0, /* headers or body still arriving */
	EVD_REQ_HANDLER,     /* given to the handler, waiting for evd_http_respond() */
	EVD_REQ_READY,       /* response formatted, waiting to be written in order */
	EVD_REQ_WRITING,     /* part of the uv_write in flight */
};

struct evd_http_hdr_off {
	uint32_t name_off, name_len, value_off, value_len;
};

struct evd_http_req {
	struct evd_http_request pub; /* first: the handler's pointer is this object */
	struct evd_http_conn *conn;
	struct evd_http_req *next; /* FIFO on the connection, or the freelist */
	enum evd_http_req_state state;
	bool close_after;     /* the connection closes once this response is written */
	bool in_field;        /* inside a header name (a value span ends it) */
	bool in_trailers;     /* headers done: further header callbacks are chunked trailers */
	bool http10;          /* HTTP/1.0 keep-alive must be confirmed with a header */
	bool head;            /* HEAD: Content-Length but no body */
	uint32_t url_len;
	size_t header_bytes;  /* counted against max_header_size */
	struct evd_buf raw;   /* url '\0' name '\0' value '\0' ... (copied spans) */
	struct evd_buf body;
	struct evd_buf resp;  /* the formatted response */
	struct evd_http_hdr_off *offs;
	struct evd_header *hdrs;
	size_t nhdrs, hdrs_cap;
};

struct evd_http_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t shutdown_req;
	uv_write_t write_req;
	struct evd_http_server *srv; /* NULL once the handles are closed */
	struct evd_http_conn *prev, *next;
	llhttp_t parser;
	char peer[64];
	struct evd_http_req *cur;         /* being parsed, not yet in the queue */
	struct evd_http_req *head, *tail; /* answered in this order */
	uint32_t nqueued;                 /* requests in the queue */
	uint32_t nhandler;                /* of which waiting for the handler */
	struct evd_http_req *freelist;
	uint32_t nfree;
	struct evd_buf pending;           /* input read but not yet parsed (parser paused) */
	uv_buf_t wbufs[EVD_HTTP_WRITE_BATCH];
	uint32_t nwriting;
	int handles_open;
	int err_status;   /* set by a parser callback that refused the request (413, 431) */
	bool writing;
	bool paused;      /* parser paused because max_pipelined requests are queued */
	bool reading;     /* uv_read_start is active */
	bool read_done;   /* no more requests will be parsed (error, close, EOF, stop) */
	bool draining;    /* server stopping: close after the last queued response */
	bool lingering;   /* final response written, write side shut down */
	bool eof;         /* the peer half-closed */
	bool in_parse;    /* inside llhttp_execute: flush once it returns, as one batch */
	bool closing;     /* uv_close called */
	bool closed;      /* both handles closed */
};

struct evd_http_server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_timer_t stop_timer;
	int handles_open;
	char name[32];
	char address[64];
	struct evd_http_limits limits;
	evd_http_handler_cb handler;
	evd_http_reject_cb on_reject;
	void *data;
	llhttp_settings_t settings;
	struct evd_http_conn *conns;
	uint32_t nconns;
	bool stopping;
	void (*on_closed)(void *data);
	void *closed_data;
	time_t date_sec;
	char date[40]; /* "Sat, 28 Nov 2026 04:33:34 GMT" */
	char readbuf[EVD_HTTP_READ_BUF];
};

/* http_conn.c */
void evd_http_conn_accept(struct evd_http_server *srv);
void evd_http_conn_close(struct evd_http_conn *conn);
/* Server is stopping: close now if idle, else after the last queued response. */
void evd_http_conn_drain(struct evd_http_conn *conn);
void evd_http_conn_init_settings(llhttp_settings_t *s);
/* A response became READY: write what is ready at the head of the queue. */
void evd_http_conn_flush(struct evd_http_conn *conn);
/* An answered request on a closed connection: free it, and the connection if it was the last. */
void evd_http_conn_discard(struct evd_http_req *req);

void evd_http_conn_read_start(struct evd_http_conn *conn);
void evd_http_conn_read_stop(struct evd_http_conn *conn);

/* http_parse.c */
void evd_http_req_free(struct evd_http_req *r);
/* Back to the connection's freelist (or freed). */
void evd_http_req_put(struct evd_http_conn *conn, struct evd_http_req *r);
void evd_http_queue_remove(struct evd_http_conn *conn, struct evd_http_req *r);
/* Runs the parser over data (the read buffer, or conn->pending when from_pending). */
void evd_http_conn_execute(struct evd_http_conn *conn, const char *data, size_t len,
			   bool from_pending);
/* Responses went out: resume a parser paused at max_pipelined, then reading. */
void evd_http_conn_parse_pending(struct evd_http_conn *conn);
/* Answers the request being parsed with an error status, in order, and stops reading. */
void evd_http_conn_reject(struct evd_http_conn *conn, int status, const char *reason);

/* http_server.c */
/* Unlinks a closed connection; then, once conn may be gone, evd_http_server_check_stopped(). */
void evd_http_server_conn_gone(struct evd_http_server *srv, struct evd_http_conn *conn);
/* Finishes a stop when nothing is left open: may free srv and call on_closed. */
void evd_http_server_check_stopped(struct evd_http_server *srv);
const char *evd_http_server_date(struct evd_http_server *srv);
/* Formats a response into req->resp without the handler (errors found while parsing). */
void evd_http_format(struct evd_http_req *req, int status, const char *content_type,
		     const char *extra_headers, const void *body, size_t len);

#endif
