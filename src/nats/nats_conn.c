/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NATS connection: connect, ensure the stream, track the state, report it (nats_conn.h).
 *
 * Three kinds of thread touch a struct evd_nats:
 *   - the loop: everything not listed below;
 *   - the bridge worker: the work items (connect, ensure, info, close). nc and js are written by
 *     the connect work and read by later work on the same thread; the loop reads them only after
 *     the connect work came back through the bridge (its mutex orders the accesses);
 *   - nats.c's callback thread: the connection callbacks, which touch only the ev_* fields
 *     under ev_lock and post ev_item (at most once until the loop has taken it).
 * Work items own copies of what they read (the stream spec), so the loop may change its own
 * copy while one runs.
 *
 * Lifetime: nats.c may call our callbacks until its closed callback has run. The close work
 * stops posting (ev_stop), drains/closes the connection and waits for the closed callback
 * before it destroys the connection; only then does the loop free the evd_nats. nats_Close() is
 * the daemon's, at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "evd_build_config.h"
#include "nats/nats_conn.h"
#include "nats/nats_internal.h"
#include "util/util_buf.h"
#include "util/util_log.h"
#include "util/util_mem.h"

#define CONNECT_RETRY_MS 5000 /* connect failed before nats.c took over (bad creds file...) */
/* nats.c closed the connection for good: new connections from scratch, 2 s doubling to 30 s. */
#define REOPEN_FIRST_MS 2000
#define REOPEN_MAX_MS 30000
#define ENSURE_RETRY_MS 3000  /* stream could not be ensured (JetStream off, timeout...) */
#define INFO_EVERY_MS 5000    /* stream info refresh while READY */
#define DRAIN_TIMEOUT_MS 5000
/*
 * TLS connections only (the loop model of nats_io.c never writes inline: the socket is
 * non-blocking and the loop writes what it takes). The history of why:
 * No nats.c call may block the loop (DESIGN.md §1), yet js_PublishMsgAsync runs there and, in
 * libnats 3.4, writes a message that does not fit its write buffer inline on the caller's thread
 * while holding the connection's lock. With the default (no write deadline, blocking socket) a
 * server that stops reading (SIGSTOP, a stuck disk, a VM pause, a partition without RST) froze
 * the loop for as long as it stayed stopped: the ping timer could not even take the lock to
 * notice. WRITE_DEADLINE_MS makes the socket non-blocking and turns such a stall into a write
 * error within that time; nats.c then treats the connection as broken (disconnect, reconnect;
 * publishes meanwhile go to its reconnect buffer, not the socket), our publishes fail with 503
 * and the loop goes on: one stall costs the loop at most this long, once.
 *
 * Why not a publisher thread fed by a queue instead: it would add a hand-off per message, and a
 * thread stuck in that write would still hold nc's lock, so stalls would still need this
 * deadline to be detected; requests queued behind it would need deadlines of their own.
 *
 * IO_BUF_SIZE stays nats.c's default, measured (tests/bench, 64 connections, 512-byte events,
 * 7 interleaved runs each): 32 KiB 43.5k req/s, 1 MiB 37.7k req/s (the flusher thread then
 * batches more and acks come later), no deadline 44.9k req/s. Inline writes of a small buffer
 * into a socket with room are cheap; the deadline, not the buffer, is what bounds a stall.
 */
#define WRITE_DEADLINE_MS 200
#define IO_BUF_SIZE (32 * 1024)

enum ev_kind { EV_NONE, EV_CONNECT, EV_DISCONNECT };

struct server_info {
	char id[64];
	char url[256];
	char name[128];
	char version[32];
};

/*
 * A bridge item that knows its evd_nats. The item is the first member, so the item pointer the
 * bridge hands back is a pointer to the nats_work (C11 6.7.2.1p15); this avoids container_of's
 * char-pointer arithmetic, which clang's -Wcast-align rejects.
 */
struct nats_work {
	struct evd_bridge_item item;
	struct evd_nats *n;
};

static struct evd_nats *owner(struct evd_bridge_item *item)
{
	return ((struct nats_work *)item)->n;
}

struct evd_nats {
	uv_loop_t *loop;
	struct evd_bridge *bridge;
	evd_nats_state_cb on_state;
	void *data;
	enum evd_nats_state state;
	bool started, connect_done, closing;

	/* Copied from the config at creation (restart keys). */
	char *url_shown; /* url without credentials, for logs and JSON */
	char *url, *creds, *token, *user, *password, *tls_ca, *tls_cert, *tls_key;
	/* url split at its commas, user-info percent-decoded: natsOptions_SetServers' list */
	char **servers;
	int nservers;
	struct evd_nats_stream_spec spec; /* reloadable; loop-owned */

	/* Written by the connect work (worker), see the top of the file. */
	natsConnection *nc;
	jsCtx *js;

	struct {
		struct nats_work w;
		natsStatus status;
		int err;
		bool background; /* RetryOnFailedConnect: nats.c keeps trying after a failure */
		char error[256]; /* nats.c's text for a failed attempt ("Authorization Violation") */
	} connect;
	struct {
		struct nats_work w;
		struct evd_nats_stream_spec spec;
		jsStreamInfo *si;
		struct server_info server;
		int err;
	} ensure;
	struct {
		struct nats_work w;
		char *stream;
		jsStreamInfo *si;
		struct server_info server;
		natsStatus status;
		jsErrCode jerr;
	} info;
	struct {
		struct nats_work w;
	} close;
	struct {
		struct nats_work w;
		char error[256]; /* nats.c's last error of the closed connection */
		char async_error[256]; /* the error handler's last report before the close */
		natsStatus status;
	} reopen;
	uint64_t reopen_ms; /* the next delay of a connect from scratch; 0: none since the last success */
	bool ensure_busy, ensure_again, info_busy;
	void (*on_closed)(void *data);
	void *closed_data;
	/* Loop: the subscriptions on nc (nats_sub.c), a circular list with this sentinel. The
	 * close work waits until it is empty (close_when_no_subs). */
	struct evd_nats_sublink subs;
	bool close_waits_for_subs;
	/* nats.c's socket on the loop (nats_io.c); false with TLS (see loop_io_possible). */
	bool loop_io;
	struct evd_nats_io_ctx io;

	uv_timer_t retry_timer, info_timer;
	int open_handles;

	/* Snapshot for evd_nats_backend_json (loop). */
	jsStreamInfo *si;
	int64_t si_ms; /* wall clock when si arrived: "refreshed_at" in the backend JSON */
	struct server_info server;
	char *last_error;

	/* Shared with nats.c's threads. */
	uv_mutex_t ev_lock;
	uv_cond_t ev_cond;
	struct nats_work ev;
	bool ev_posted, ev_stop, ev_closed, ev_saw_connect, ev_saw_disconnect, closed_fired;
	natsConnection *ev_nc; /* the connection whose callbacks count (see on_nc_closed) */
	enum ev_kind ev_last;
	char ev_error[256];
};

static void request_ensure(struct evd_nats *n);
static void on_retry_timer(uv_timer_t *t);
static void on_info_timer(uv_timer_t *t);
static void close_and_wait(struct evd_nats *n);
static void reopen(struct evd_nats *n, const char *async_error);

#if EVD_NATS_MSG_FREE
void natsMsg_free(void *object); /* nats.c 3.4.1 msg.h: headers, then the one allocation */
#endif

void evd_nats_msg_free(natsMsg *m)
{
#if EVD_NATS_MSG_FREE
	natsMsg_free(m);
#else
	natsMsg_Destroy(m);
#endif
}

int evd_nats_status_to_err(natsStatus s, const char *what)
{
	natsStatus last = NATS_OK;
	const char *text;

	if (s == NATS_OK)
		return 0;
	text = nats_GetLastError(&last);
	evd_log_error("nats", "%s: %s%s%s", what, natsStatus_GetText(s),
		      text && *text && last == s ? ": " : "", text && *text && last == s ? text : "");
	switch (s) {
	case NATS_TIMEOUT:
		return -ETIMEDOUT;
	case NATS_NO_MEMORY:
		return -ENOMEM;
	case NATS_NOT_FOUND:
		return -ENOENT;
	case NATS_INVALID_ARG:
	case NATS_INVALID_SUBJECT:
	case NATS_INVALID_TIMEOUT:
		return -EINVAL;
	case NATS_ILLEGAL_STATE:
		return -EALREADY;
	case NATS_CONNECTION_CLOSED:
	case NATS_CONNECTION_DISCONNECTED:
	case NATS_NOT_YET_CONNECTED:
	case NATS_NO_SERVER:
	case NATS_STALE_CONNECTION:
		return -ENOTCONN;
	case NATS_NO_RESPONDERS:
		return -EHOSTUNREACH;
	case NATS_MAX_PAYLOAD:
		return -EMSGSIZE;
	case NATS_NOT_PERMITTED:
	case NATS_CONNECTION_AUTH_FAILED:
		return -EPERM;
	case NATS_SSL_ERROR:
		return -EPROTO;
	case NATS_SYS_ERROR:
	case NATS_IO_ERROR:
	default:
		return -EIO;
	}
}

const char *evd_nats_state_name(enum evd_nats_state s)
{
	switch (s) {
	case EVD_NATS_CONNECTING:
		return "connecting";
	case EVD_NATS_DISCONNECTED:
		return "disconnected";
	case EVD_NATS_CONNECTED:
		return "connected";
	case EVD_NATS_READY:
		return "ready";
	case EVD_NATS_CLOSED:
		return "closed";
	}
	return "unknown";
}

static void set_state(struct evd_nats *n, enum evd_nats_state s)
{
	if (n->state == s)
		return;
	evd_log_info("nats", "%s -> %s", evd_nats_state_name(n->state), evd_nats_state_name(s));
	n->state = s;
	if (s != EVD_NATS_READY)
		uv_timer_stop(&n->info_timer);
	if (n->on_state)
		n->on_state(n, s, n->data);
}

static void set_last_error(struct evd_nats *n, const char *text)
{
	free(n->last_error);
	n->last_error = text ? evd_xstrdup(text) : NULL;
}

/* ---- nats.c callbacks (nats.c's threads): record and post, nothing else ---- */

static void ev_record(struct evd_nats *n, enum ev_kind kind, const char *error)
{
	uv_mutex_lock(&n->ev_lock);
	if (kind == EV_CONNECT)
		n->ev_saw_connect = true;
	else if (kind == EV_DISCONNECT)
		n->ev_saw_disconnect = true;
	if (kind != EV_NONE)
		n->ev_last = kind;
	if (error)
		snprintf(n->ev_error, sizeof(n->ev_error), "%s", error);
	if (!n->ev_posted && !n->ev_stop) {
		n->ev_posted = true;
		evd_bridge_post(n->bridge, &n->ev.item);
	}
	uv_mutex_unlock(&n->ev_lock);
}

static void on_nc_connected(natsConnection *nc, void *closure)
{
	ev_record(closure, EV_CONNECT, NULL);
}

static void on_nc_disconnected(natsConnection *nc, void *closure)
{
	ev_record(closure, EV_DISCONNECT, NULL);
}

static void on_nc_closed(natsConnection *nc, void *closure)
{
	struct evd_nats *n = closure;

	uv_mutex_lock(&n->ev_lock);
	/*
	 * Once the connect work knows its connection, only that one's close counts: a connection
	 * of a failed earlier attempt may report its close late. nats.c keeps a connection alive
	 * until its closed callback has run, so its address cannot belong to a newer one meanwhile.
	 */
	if (n->ev_nc && nc != n->ev_nc) {
		uv_mutex_unlock(&n->ev_lock);
		return;
	}
	n->closed_fired = true;
	n->ev_closed = true;
	uv_cond_broadcast(&n->ev_cond);
	if (!n->ev_posted && !n->ev_stop) {
		n->ev_posted = true;
		evd_bridge_post(n->bridge, &n->ev.item);
	}
	uv_mutex_unlock(&n->ev_lock);
}

static void on_nc_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
	ev_record(closure, EV_NONE, natsStatus_GetText(err));
}

/* ---- connection events on the loop ---- */

static void process_events(struct evd_nats *n)
{
	bool saw_disconnect, closed;
	enum ev_kind last;
	char error[sizeof(n->ev_error)];

	if (!n->connect_done || n->closing)
		return; /* kept until the connect work is back (nc known) */
	uv_mutex_lock(&n->ev_lock);
	saw_disconnect = n->ev_saw_disconnect;
	closed = n->ev_closed;
	last = n->ev_last;
	memcpy(error, n->ev_error, sizeof(error));
	n->ev_error[0] = '\0';
	n->ev_saw_connect = n->ev_saw_disconnect = n->ev_closed = false;
	n->ev_last = EV_NONE;
	uv_mutex_unlock(&n->ev_lock);

	if (error[0]) {
		evd_log_warn("nats", "asynchronous error from the connection: %s", error);
		set_last_error(n, error);
	}
	if (closed) {
		reopen(n, error);
		return;
	}
	if (last == EV_CONNECT) {
		/* A disconnect and reconnect may arrive in one go: report both. */
		if (saw_disconnect &&
		    (n->state == EVD_NATS_CONNECTED || n->state == EVD_NATS_READY))
			set_state(n, EVD_NATS_DISCONNECTED);
		if (n->state != EVD_NATS_CONNECTED && n->state != EVD_NATS_READY) {
			set_state(n, EVD_NATS_CONNECTED);
			request_ensure(n);
		} else if (saw_disconnect) {
			request_ensure(n);
		}
	} else if (last == EV_DISCONNECT) {
		if (n->state != EVD_NATS_CONNECTING)
			set_state(n, EVD_NATS_DISCONNECTED);
	}
}

static void on_ev_loop(struct evd_bridge_item *item)
{
	struct evd_nats *n = owner(item);

	uv_mutex_lock(&n->ev_lock);
	n->ev_posted = false;
	uv_mutex_unlock(&n->ev_lock);
	process_events(n);
}

/* ---- server INFO ---- */

/*
 * nats.c 3.4 exposes the server id and URL but not the server's version or name, which the
 * status API shows. A server sends its INFO line in clear text to every new TCP client before
 * anything else (even when it requires TLS, the upgrade comes after INFO), so the worker reads
 * it from a short-lived second socket and closes it without sending CONNECT. Best effort: any
 * failure leaves the fields empty.
 */
static void probe_server_info(struct server_info *si)
{
	char host[256], port[16], buf[8192];
	const char *p = strstr(si->url, "://"), *colon, *end;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
	size_t len = 0;
	int fd = -1;
	cJSON *info = NULL, *v;

	if (strncmp(si->url, "ws", 2) == 0)
		return; /* a websocket port answers HTTP, not INFO */
	p = p ? p + 3 : si->url;
	if (strrchr(p, '@')) /* "***@host:port": the redacted user-info */
		p = strrchr(p, '@') + 1;
	if (*p == '[') {
		end = strchr(p, ']');
		if (!end || end[1] != ':')
			return;
		snprintf(host, sizeof(host), "%.*s", (int)(end - p - 1), p + 1);
		colon = end + 1;
	} else {
		colon = strrchr(p, ':');
		if (!colon)
			return;
		snprintf(host, sizeof(host), "%.*s", (int)(colon - p), p);
	}
	snprintf(port, sizeof(port), "%.*s", (int)strcspn(colon + 1, "/"), colon + 1);
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto out;
	if (connect(fd, res->ai_addr, res->ai_addrlen) < 0 && errno != EINPROGRESS)
		goto out;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, 2000) <= 0)
			goto out;
		r = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (r <= 0)
			goto out;
		len += (size_t)r;
		buf[len] = '\0';
		if (strstr(buf, "\r\n") || len == sizeof(buf) - 1)
			break;
	}
	if (strncmp(buf, "INFO ", 5) != 0)
		goto out;
	info = cJSON_Parse(buf + 5);
	if ((v = cJSON_GetObjectItemCaseSensitive(info, "version")) && cJSON_IsString(v))
		snprintf(si->version, sizeof(si->version), "%s", v->valuestring);
	if ((v = cJSON_GetObjectItemCaseSensitive(info, "server_name")) && cJSON_IsString(v))
		snprintf(si->name, sizeof(si->name), "%s", v->valuestring);
out:
	cJSON_Delete(info);
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
}

/* See nats_conn.h: URLs go to logs and to the status API, credentials must not. */
char *evd_nats_redact_urls(const char *urls)
{
	struct evd_buf b = EVD_BUF_INIT;
	const char *p = urls;

	while (*p) {
		size_t seg = strcspn(p, ","), host;
		const char *scheme = strstr(p, "://");
		const char *start = scheme && (size_t)(scheme - p) < seg ? scheme + 3 : p;
		const char *at = NULL;

		/*
		 * The last '@' of the item ends the user-info, as in nats.c's natsUrl_Create: a
		 * password may hold a raw '/' or '@' (and nats.c's own URLs carry it decoded).
		 */
		host = (size_t)(p + seg - start);
		for (const char *q = start; q < start + host; q++)
			if (*q == '@')
				at = q;
		if (at) {
			evd_buf_append(&b, p, (size_t)(start - p));
			evd_buf_append_str(&b, "***");
			evd_buf_append(&b, at, seg - (size_t)(at - p));
		} else {
			evd_buf_append(&b, p, seg);
		}
		p += seg;
		if (*p == ',')
			evd_buf_append_char(&b, *p++);
	}
	return evd_buf_steal(&b);
}

/* Worker. */
static void read_server(natsConnection *nc, struct server_info *si, bool probe)
{
	memset(si, 0, sizeof(*si));
	if (natsConnection_GetConnectedServerId(nc, si->id, sizeof(si->id)) != NATS_OK)
		si->id[0] = '\0';
	if (natsConnection_GetConnectedUrl(nc, si->url, sizeof(si->url)) != NATS_OK)
		si->url[0] = '\0';
	/*
	 * nats.c's URL carries the user-info decoded ("nats://evd:p@ss:w/rd@host:4222"): the
	 * probe needs the host alone, and the status API must not show the password.
	 */
	if (strchr(si->url, '@')) {
		char *shown = evd_nats_redact_urls(si->url);

		snprintf(si->url, sizeof(si->url), "%s", shown);
		free(shown);
	}
	if (probe && si->url[0])
		probe_server_info(si);
}

/* Keeps name/version from the last probe when the server (id) is the same. */
static void store_server(struct evd_nats *n, const struct server_info *si, bool probed)
{
	if (!si->id[0])
		return; /* not connected at that moment: keep what we knew */
	if (!probed && strcmp(si->id, n->server.id) == 0) {
		snprintf(n->server.url, sizeof(n->server.url), "%s", si->url);
		return;
	}
	n->server = *si;
}

static void store_si(struct evd_nats *n, jsStreamInfo *si)
{
	struct timespec ts;
	jsStreamInfo_Destroy(n->si);
	n->si = si;
	clock_gettime(CLOCK_REALTIME, &ts);
	n->si_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- connect ---- */

#if EVD_NATS_MSG_FILTER
/* nats.c 3.4.1 natsp.h / conn.h: called by the parser (the loop, with nats_io.c) for every
 * message before it is queued; setting *msg to NULL takes it. */
typedef void (*nats_msg_filter)(natsConnection *nc, natsMsg **msg, void *closure);
void natsConn_setFilterWithClosure(natsConnection *nc, nats_msg_filter f, void *closure);

/*
 * Loop (the parser runs there): a "no responders" status would be destroyed by NextMsg
 * without its subject; hand it to the subscription it is for instead. The check is cheap for
 * everything else: natsMsg_IsNoResponders looks at the headers only of a message without data.
 */
static void on_msg_filter(natsConnection *nc, natsMsg **msg, void *closure)
{
	struct evd_nats *n = closure;

	(void)nc;
	if (natsMsg_GetDataLength(*msg) != 0 || !natsMsg_IsNoResponders(*msg))
		return;
	for (struct evd_nats_sublink *l = n->subs.next; l != &n->subs; l = l->next)
		if (evd_nats_sub_take_status(l, *msg)) {
			*msg = NULL;
			return;
		}
}
#endif


static natsStatus build_options(struct evd_nats *n, natsOptions **out)
{
	natsOptions *o = NULL;
	natsStatus s;

	s = natsOptions_Create(&o);
	/*
	 * natsOptions_SetURL takes one URL: given "nats://a:4222,nats://b:4222" it parses the
	 * whole text as one host and never connects. The list goes to SetServers, one URL each;
	 * nats.c then fails over between them (and the servers a cluster announces).
	 */
	if (s == NATS_OK)
		s = natsOptions_SetServers(o, (const char **)n->servers, n->nservers);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, "eventingd");
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 1000);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(o, 10000);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(o, 2);
	if (s == NATS_OK)
		s = natsOptions_SetWriteDeadline(o, WRITE_DEADLINE_MS);
	if (s == NATS_OK)
		s = natsOptions_SetIOBufSize(o, IO_BUF_SIZE);
	if (s == NATS_OK && n->loop_io)
		s = evd_nats_io_options(&n->io, o);
	/* No flusher thread: nats.c only marks the buffer for writing, nats_io.c writes it once
	 * per loop iteration (a write from another thread is posted to the loop). */
	if (s == NATS_OK && n->loop_io)
		s = natsOptions_SetSendAsap(o, true);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(o, n->connect.background, on_nc_connected, n);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, on_nc_disconnected, n);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_nc_connected, n);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(o, on_nc_closed, n);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(o, on_nc_error, n);
	if (s == NATS_OK)
		s = natsOptions_UseGlobalMessageDelivery(o, true);
	if (s == NATS_OK && n->creds)
		s = natsOptions_SetUserCredentialsFromFiles(o, n->creds, NULL);
	if (s == NATS_OK && n->token)
		s = natsOptions_SetToken(o, n->token);
	if (s == NATS_OK && n->user)
		s = natsOptions_SetUserInfo(o, n->user, n->password);
	if (s == NATS_OK && (n->tls_ca || n->tls_cert))
		s = natsOptions_SetSecure(o, true);
	if (s == NATS_OK && n->tls_ca)
		s = natsOptions_LoadCATrustedCertificates(o, n->tls_ca);
	if (s == NATS_OK && n->tls_cert)
		s = natsOptions_LoadCertificatesChain(o, n->tls_cert, n->tls_key ? n->tls_key : n->tls_cert);
	if (s != NATS_OK) {
		natsOptions_Destroy(o);
		return s;
	}
	*out = o;
	return NATS_OK;
}

static bool uses_tls(const struct evd_nats *n)
{
	return n->tls_ca || n->tls_cert || strncasecmp(n->url, "tls://", 6) == 0 ||
	       strcasestr(n->url, ",tls://");
}

static void connect_on_worker(struct evd_bridge_item *item)
{
	struct evd_nats *n = owner(item);
	natsOptions *o = NULL;
	jsOptions jo;
	natsStatus s;

	bool background = n->connect.background;

	n->connect.err = 0;
	n->connect.error[0] = '\0';
	n->connect.background = false;
	/* A failed attempt before this one may have closed a connection of its own. */
	uv_mutex_lock(&n->ev_lock);
	n->closed_fired = n->ev_closed = false;
	n->ev_nc = NULL;
	uv_mutex_unlock(&n->ev_lock);
	s = build_options(n, &o);
	if (s != NATS_OK) {
		n->connect.err = evd_nats_status_to_err(s, "NATS connection options (nats.creds, nats.tls.*)");
		return;
	}
	/*
	 * With RetryOnFailedConnect and a connected callback, nats.c returns
	 * NATS_NOT_YET_CONNECTED with a usable connection when no server answers yet and keeps
	 * trying in the background; the connected callback says when it succeeded.
	 */
	s = natsConnection_Connect(&n->nc, o);
	if (s == NATS_NO_SERVER && background) {
		/*
		 * Nobody answered (refused, unreachable): normal at boot, so nats.c keeps trying in
		 * the background. Anything else came from a server that did answer: an
		 * authorization violation, a TLS handshake or a missing client certificate. The
		 * first attempt runs without RetryOnFailedConnect for that reason: with it,
		 * nats.c 3.4.1's _connect hands such a failure to its reconnect thread, clears
		 * the thread's last error and returns NATS_NOT_YET_CONNECTED, and the reconnect
		 * resets the connection's error before each try, so the server's reason is lost
		 * and a wrong password looks like a missing server.
		 */
		n->nc = NULL;
		s = natsOptions_SetRetryOnFailedConnect(o, true, on_nc_connected, n);
		if (s == NATS_OK)
			s = natsConnection_Connect(&n->nc, o);
	}
	natsOptions_Destroy(o);
	n->connect.status = s;
	if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
		natsStatus last = NATS_OK;
		const char *text = nats_GetLastError(&last);

		text = text && *text && last == s ? text : natsStatus_GetText(s);
		/* nats.c puts its source position first: "(conn.c:1909): Expected ..." */
		if (text[0] == '(' && strstr(text, "): "))
			text = strstr(text, "): ") + 3;
		/*
		 * A server that verifies clients ends a TLS 1.3 connection without a client
		 * certificate right after the handshake, which nats.c reports as an empty answer
		 * to its first PING; nats-server logs "client didn't provide a certificate".
		 */
		snprintf(n->connect.error, sizeof(n->connect.error), "%s%s", text,
			 s == NATS_PROTOCOL_ERROR && strstr(text, "got ''") && uses_tls(n)
				 ? " (the server closed the connection after the TLS handshake: "
				   "does it require a client certificate? set nats.tls.cert and "
				   "nats.tls.key)"
				 : "");
		n->nc = NULL;
		n->connect.err = evd_nats_status_to_err(s, "connecting to NATS");
		return;
	}
	uv_mutex_lock(&n->ev_lock);
	n->ev_nc = n->nc;
	uv_mutex_unlock(&n->ev_lock);
#if EVD_NATS_MSG_FILTER
	/* Before any subscription exists (they are made on the loop after this work returns). */
	if (n->loop_io)
		natsConn_setFilterWithClosure(n->nc, on_msg_filter, n);
#endif
	jsOptions_Init(&jo);
	s = natsConnection_JetStream(&n->js, n->nc, &jo);
	if (s != NATS_OK) {
		n->connect.err = evd_nats_status_to_err(s, "creating the JetStream context");
		close_and_wait(n);
		if (n->loop_io)
			evd_nats_io_wait_detached(&n->io);
		natsConnection_Destroy(n->nc);
		n->nc = NULL;
	}
}

static void connect_on_loop(struct evd_bridge_item *item)
{
	struct evd_nats *n = owner(item);

	if (n->closing)
		return; /* the close work, queued behind us, destroys what we made */
	if (n->connect.err < 0) {
		char text[640];

		uint64_t delay = CONNECT_RETRY_MS;

		if (n->reopen_ms) { /* reconnecting from scratch: keep backing off */
			delay = n->reopen_ms;
			n->reopen_ms = n->reopen_ms * 2 > REOPEN_MAX_MS ? REOPEN_MAX_MS : n->reopen_ms * 2;
		}
		snprintf(text, sizeof(text), "cannot connect to %s: %s%s", n->url_shown,
			 n->connect.error[0] ? n->connect.error : strerror(-n->connect.err),
			 n->connect.err == -EPERM ? " (check nats.user / nats.password, nats.token or nats.creds)"
			 : n->connect.err == -EPROTO ? " (check nats.tls.*: the CA, and a client certificate if the server asks for one)"
			 : "");
		set_last_error(n, text);
		evd_log_error("nats", "%s; retrying in %llu s", text, (unsigned long long)(delay / 1000));
		uv_timer_start(&n->retry_timer, on_retry_timer, delay, 0);
		return;
	}
	n->connect_done = true;
	if (n->connect.status == NATS_OK) {
		n->reopen_ms = 0;
		set_state(n, EVD_NATS_CONNECTED);
		request_ensure(n);
	} else {
		evd_log_info("nats", "no NATS server at %s yet; nats.c keeps trying", n->url_shown);
	}
	process_events(n);
}

static void submit_connect(struct evd_nats *n)
{
	/*
	 * The first connect lets nats.c keep trying in the background (a server not up yet is
	 * normal at boot). A connect from scratch after nats.c gave a connection up fails at once
	 * instead, with the server's reason (an authorization violation would otherwise show only
	 * as "no server available"), and our retry timer backs off.
	 */
	n->connect.background = n->reopen_ms == 0;
	n->connect.w.item.on_worker = connect_on_worker;
	n->connect.w.item.on_loop = connect_on_loop;
	evd_bridge_work(n->bridge, &n->connect.w.item);
}

/* ---- nats.c closed the connection: start again from scratch ---- */

/*
 * nats.c closes a connection for good, MaxReconnect -1 notwithstanding, when the server refuses
 * us during a reconnect (an authorization violation after rotated credentials or a server
 * restarted with another password) and on some protocol errors. Nothing of that connection
 * works any more: its async-reply subscription is gone, so pending publishes would never get
 * their ack or timeout. The loop has already failed them (the state callback with CLOSED);
 * this destroys the jsCtx and the connection on the worker, then connects anew.
 */
static void reopen_on_worker(struct evd_bridge_item *item)
{
	struct evd_nats *n = owner(item);
	const char *text = NULL;

	n->reopen.error[0] = '\0';
	n->reopen.status = NATS_OK;
	if (!n->nc)
		return;
	n->reopen.status = natsConnection_GetLastError(n->nc, &text);
	snprintf(n->reopen.error, sizeof(n->reopen.error), "%s", text ? text : "");
	jsCtx_Destroy(n->js);
	if (n->loop_io)
		evd_nats_io_wait_detached(&n->io);
	natsConnection_Destroy(n->nc);
	n->js = NULL;
	n->nc = NULL;
	uv_mutex_lock(&n->ev_lock);
	n->ev_nc = NULL;
	uv_mutex_unlock(&n->ev_lock);
}

static bool is_auth_error(natsStatus s, const char *text)
{
	return s == NATS_CONNECTION_AUTH_FAILED || s == NATS_NOT_PERMITTED ||
	       strcasestr(text, "authorization") || strcasestr(text, "authentication") ||
	       strcasestr(text, "expired");
}

static void reopen_on_loop(struct evd_bridge_item *item)
{
	struct evd_nats *n = owner(item);
	char text[384];

	if (n->closing)
		return;
	/* After a failed first connect nats.c's own last error is "No server available"; the
	 * server's reason came through the error handler. */
	if (is_auth_error(n->reopen.status, n->reopen.error) ||
	    is_auth_error(NATS_OK, n->reopen.async_error))
		snprintf(text, sizeof(text),
			 "NATS server %s refused us (%s): authorization violation: check nats.user / "
			 "nats.password, nats.token or nats.creds",
			 n->url_shown,
			 is_auth_error(NATS_OK, n->reopen.async_error) ? n->reopen.async_error
			 : n->reopen.error[0]				? n->reopen.error
									: natsStatus_GetText(n->reopen.status));
	else
		snprintf(text, sizeof(text), "nats.c closed the connection to %s (%s)", n->url_shown,
			 n->reopen.error[0] ? n->reopen.error : natsStatus_GetText(n->reopen.status));
	set_last_error(n, text);
	uint64_t delay = n->reopen_ms ? n->reopen_ms : REOPEN_FIRST_MS;
	n->reopen_ms = delay * 2 > REOPEN_MAX_MS ? REOPEN_MAX_MS : delay * 2;
	evd_log_error("nats", "%s; connecting again from scratch in %llu s", text,
		      (unsigned long long)(delay / 1000));
	set_state(n, EVD_NATS_CONNECTING);
	uv_timer_start(&n->retry_timer, on_retry_timer, delay, 0);
}

static void reopen(struct evd_nats *n, const char *async_error)
{
	/*
	 * nats.c has closed every subscription of nc already (_close -> _removeAllSubscriptions):
	 * each ends with on-complete on its own. Tell them before the worker destroys nc, so that
	 * none publishes on it (settle) or unsubscribes through it from now on.
	 */
	for (struct evd_nats_sublink *l = n->subs.next; l != &n->subs; l = l->next)
		evd_nats_sub_conn_lost(l);
	/* Publishes and users of nc/js learn it from the state: nothing uses them from now on. */
	set_state(n, EVD_NATS_CLOSED);
	if (n->closing)
		return;
	uv_timer_stop(&n->retry_timer);
	n->connect_done = false; /* on_retry_timer connects; events wait for that connect */
	snprintf(n->reopen.async_error, sizeof(n->reopen.async_error), "%s", async_error);
	n->reopen.w.item.on_worker = reopen_on_worker;
	n->reopen.w.item.on_loop = reopen_on_loop;
	evd_bridge_work(n->bridge, &n->reopen.w.item);
}

/* ---- ensure the stream ---- */

static void ensure_on_worker(struct evd_bridge_item *item)
{
	struct evd_nats *n = owner(item);

	n->ensure.si = NULL;
	memset(&n->ensure.server, 0, sizeof(n->ensure.server));
	if (!n->js) { /* queued behind a reopen, which destroyed the connection */
		n->ensure.err = -ENOTCONN;
		return;
	}
	n->ensure.err = evd_nats_ensure_stream_conf(n->js, &n->ensure.spec, &n->ensure.si);
	read_server(n->nc, &n->ensure.server, true);
}

static void ensure_on_loop(struct evd_bridge_item *item)
{
	struct evd_nats *n = owner(item);
	int err = n->ensure.err;

	n->ensure_busy = false;
	evd_nats_stream_spec_free(&n->ensure.spec);
	if (n->closing) {
		jsStreamInfo_Destroy(n->ensure.si);
		return;
	}
	store_server(n, &n->ensure.server, true);
	if (err == 0)
		store_si(n, n->ensure.si);
	n->ensure.si = NULL;
	if (n->ensure_again) {
		request_ensure(n);
		return;
	}
	if (n->state != EVD_NATS_CONNECTED && n->state != EVD_NATS_READY)
		return; /* disconnected meanwhile: the reconnect ensures again */
	if (err < 0) {
		char text[256];

		snprintf(text, sizeof(text), "cannot ensure stream \"%s\": %s", n->spec.name,
			 err == -EHOSTUNREACH ? "JetStream is not enabled on the server" : strerror(-err));
		set_last_error(n, text);
		set_state(n, EVD_NATS_CONNECTED);
		uv_timer_start(&n->retry_timer, on_retry_timer, ENSURE_RETRY_MS, 0);
		return;
	}
	n->reopen_ms = 0; /* a server that lets us in again: the next reopen starts fast */
	set_last_error(n, NULL); /* last_error says what keeps us from READY */
	set_state(n, EVD_NATS_READY);
	uv_timer_start(&n->info_timer, on_info_timer, INFO_EVERY_MS, INFO_EVERY_MS);
}

static void request_ensure(struct evd_nats *n)
{
	if (n->closing)
		return;
	if (n->ensure_busy) {
		n->ensure_again = true;
		return;
	}
	n->ensure_busy = true;
	n->ensure_again = false;
	evd_nats_stream_spec_copy(&n->ensure.spec, &n->spec);
	n->ensure.w.item.on_worker = ensure_on_worker;
	n->ensure.w.item.on_loop = ensure_on_loop;
	evd_bridge_work(n->bridge, &n->ensure.w.item);
}

static void on_retry_timer(uv_timer_t *t)
{
	struct evd_nats *n = t->data;

	if (n->closing)
		return;
	if (!n->connect_done)
		submit_connect(n);
	else if (n->state == EVD_NATS_CONNECTED)
		request_ensure(n);
}

/* ---- stream info refresh ---- */

static void info_on_worker(struct evd_bridge_item *item)
{
	struct evd_nats *n = owner(item);

	n->info.si = NULL;
	n->info.jerr = 0;
	memset(&n->info.server, 0, sizeof(n->info.server));
	if (!n->js) {
		n->info.status = NATS_CONNECTION_CLOSED;
		return;
	}
	n->info.status = js_GetStreamInfo(&n->info.si, n->js, n->info.stream, NULL, &n->info.jerr);
	read_server(n->nc, &n->info.server, false);
}

static void info_on_loop(struct evd_bridge_item *item)
{
	struct evd_nats *n = owner(item);

	n->info_busy = false;
	free(n->info.stream);
	n->info.stream = NULL;
	if (n->closing) {
		jsStreamInfo_Destroy(n->info.si);
		return;
	}
	store_server(n, &n->info.server, false);
	if (n->info.status == NATS_OK) {
		store_si(n, n->info.si);
	} else if (n->info.status == NATS_NOT_FOUND || n->info.jerr == JSStreamNotFoundErr) {
		/* Someone deleted the stream: publishes would fail until it is back. */
		evd_log_error("nats", "stream \"%s\" disappeared from the server; re-creating it",
			      n->spec.name);
		store_si(n, NULL);
		if (n->state == EVD_NATS_READY) {
			set_state(n, EVD_NATS_CONNECTED);
			request_ensure(n);
		}
	}
	n->info.si = NULL;
}

void evd_nats_refresh_info(struct evd_nats *n)
{
	if (n->closing || n->info_busy || !n->connect_done)
		return;
	if (n->state != EVD_NATS_READY && n->state != EVD_NATS_CONNECTED)
		return;
	n->info_busy = true;
	n->info.stream = evd_xstrdup(n->spec.name);
	n->info.w.item.on_worker = info_on_worker;
	n->info.w.item.on_loop = info_on_loop;
	evd_bridge_work(n->bridge, &n->info.w.item);
}

static void on_info_timer(uv_timer_t *t)
{
	evd_nats_refresh_info(t->data);
}

/* ---- the loop's I/O (nats_io.c) ---- */

/*
 * Why the loop model (nats_conn.h), measured with tests/bench/publish_bench.py (512-byte
 * events, wrk 2 threads, 5 s runs, --baseline = the build before issue 9) on the 2-core machine
 * while other work loaded it (absolute figures move a lot, compare within a run).
 * Final build, two runs at load average ~7, baseline -> loop model:
 *   64 connections: 29.4k / 26.2k -> 38.1k / 35.0k req/s (1.30 / 1.34x; 0.62 / 0.63 of the
 *                   nginx ceiling); eventingd CPU per event 23.8 / 26.0 -> 11.5 / 11.9 us
 *   16 connections: p50 1.01 / 1.05 -> 0.46 / 0.48 ms; 13.1k / 12.3k -> 29.7k / 28.3k req/s
 * Batches (64 connections, structured events of 512 bytes): baseline 62k / 60k events/s with
 * batches of 10 / 100 and a peak RSS of 70 MiB, the loop model 93k / 138k events/s and 37 MiB.
 * strace -c at 64 connections: the baseline made ~5 futex calls per request, the loop model none
 * (one read and one write per HTTP request, one NATS write per ~34 requests).
 * Earlier runs at load average 10-12, baseline -> loop model:
 *   16 connections: p50 1.01 / 1.06 ms -> 0.51 / 0.54 ms; 13.8k / 11.8k -> 26.0k / 21.2k req/s;
 *                   eventingd CPU per event 50.9 / 39.4 -> 14.5 / 16.9 us
 *   64 connections: 21.3k / 22.4k -> 19.8k / 20.1k req/s (0.90-0.93x); eventingd CPU per event
 *                   28.1 / 27.4 -> 13.2 / 13.8 us, nats-server's 9.5 / 9.3 -> 12.8 / 13.0 us
 *                   (one write per loop iteration: smaller writes than the 1 ms flusher's)
 * The alternatives, in runs of their own: SendAsap alone 19.0k req/s at 64 and p50 0.94 ms at 16
 * (that run's baseline 25.3k, 0.99 ms); nats.c's socket on the loop with acks still through
 * nats.c's delivery thread and the bridge 20.9k, 0.84 ms. Of the loop model's gain, about 8 us
 * per event came from freeing messages on the loop instead of nats.c's GC thread
 * (evd_nats_msg_free: 22.0 -> 13.2 us at 64 connections).
 */

/*
 * nats.c reads and writes a TLS socket with SSL_read/SSL_write, which wait for the socket inside
 * the call (comsock.c natsSock_WaitReady) without any deadline when an event loop is attached:
 * a TLS server that stalls mid-record would freeze the loop. TLS connections (nats.tls.* keys or
 * a tls:// URL) therefore keep nats.c's reader and flusher threads with the write deadline, and
 * their messages cross through the bridge. A server that demands TLS of a nats:// URL makes
 * nats.c upgrade on its own; configure nats.tls.* for such a server.
 */
static bool loop_io_possible(const struct evd_nats *n)
{
	return !n->tls_ca && !n->tls_cert && !strstr(n->url, "tls://");
}

/* Loop, after every read event: the parser may have queued messages for our subscriptions. */
static void after_read(void *data)
{
	struct evd_nats *n = data;

	for (struct evd_nats_sublink *l = n->subs.next, *next; l != &n->subs; l = next) {
		next = l->next;
		evd_nats_sub_drain_link(l);
	}
}


void evd_nats_flush(struct evd_nats *n)
{
	if (n->loop_io)
		evd_nats_io_flush(&n->io);
}

bool evd_nats_loop_io(const struct evd_nats *n)
{
	return n->loop_io;
}

/* ---- public ---- */

static char *dup_or_null(const char *s)
{
	return s ? evd_xstrdup(s) : NULL;
}

/* n->url ("nats://a:4222,nats://u:p%40w@b:4222") -> n->servers, decoded for nats.c. */
static int split_servers(struct evd_nats *n)
{
	const char *p = n->url;

	for (;;) {
		size_t len = strcspn(p, ",");
		char *one = evd_xstrndup(p, len), *decoded = NULL, why[160];
		int rc = evd_config_url_decode(one, &decoded, why, sizeof(why));

		free(one);
		if (rc < 0) {
			evd_log_error("nats", "nats.url: %s", why);
			return rc;
		}
		n->servers = evd_xrealloc(n->servers, (size_t)(n->nservers + 1) * sizeof(*n->servers));
		n->servers[n->nservers++] = decoded;
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

/* The copies of the configuration that evd_nats_new() took. */
static void free_settings(struct evd_nats *n)
{
	evd_nats_stream_spec_free(&n->spec);
	free(n->url);
	free(n->url_shown);
	for (int i = 0; i < n->nservers; i++)
		free(n->servers[i]);
	free(n->servers);
	free(n->creds);
	free(n->token);
	free(n->user);
	free(n->password);
	free(n->tls_ca);
	free(n->tls_cert);
	free(n->tls_key);
}

int evd_nats_new(uv_loop_t *loop, struct evd_bridge *bridge, const struct evd_config *cfg,
		 const char *url, evd_nats_state_cb on_state, void *data, struct evd_nats **out)
{
	struct evd_nats *n = evd_xcalloc(1, sizeof(*n));
	int err;

	n->loop = loop;
	n->bridge = bridge;
	n->on_state = on_state;
	n->data = data;
	n->state = EVD_NATS_CONNECTING;
	n->url = evd_xstrdup(url);
	n->url_shown = evd_nats_redact_urls(url);
	if ((err = split_servers(n)) < 0)
		goto fail_mutex;
	n->creds = dup_or_null(cfg->nats.creds);
	n->token = dup_or_null(cfg->nats.token);
	n->user = dup_or_null(cfg->nats.user);
	n->password = dup_or_null(cfg->nats.password);
	n->tls_ca = dup_or_null(cfg->nats.tls.ca);
	n->tls_cert = dup_or_null(cfg->nats.tls.cert);
	n->tls_key = dup_or_null(cfg->nats.tls.key);
	evd_nats_stream_spec_from_config(&n->spec, cfg);
	n->connect.w.n = n->ensure.w.n = n->info.w.n = n->close.w.n = n->reopen.w.n = n->ev.n = n;
	n->ev.item.on_loop = on_ev_loop;
	n->subs.prev = n->subs.next = &n->subs;

	if ((err = uv_mutex_init(&n->ev_lock)) < 0)
		goto fail_mutex;
	if ((err = uv_cond_init(&n->ev_cond)) < 0)
		goto fail_cond;
	n->loop_io = loop_io_possible(n);
	if (n->loop_io && (err = evd_nats_io_init(&n->io, loop, bridge, after_read, n)) < 0)
		goto fail_io;
	/* Timers are not active until started: they keep no loop alive. */
	uv_timer_init(loop, &n->retry_timer);
	uv_timer_init(loop, &n->info_timer);
	n->retry_timer.data = n->info_timer.data = n;
	n->open_handles = n->loop_io ? 5 : 2;
	*out = n;
	return 0;

fail_io:
	uv_cond_destroy(&n->ev_cond);
fail_cond:
	uv_mutex_destroy(&n->ev_lock);
fail_mutex:
	free_settings(n);
	free(n);
	return err;
}

int evd_nats_start(struct evd_nats *n)
{
	if (n->started || n->closing)
		return -EALREADY;
	n->started = true;
	evd_log_info("nats", "connecting to %s", n->url_shown);
	submit_connect(n);
	return 0;
}

enum evd_nats_state evd_nats_state(const struct evd_nats *n)
{
	return n->state;
}

const char *evd_nats_last_error(const struct evd_nats *n)
{
	return n->last_error;
}

natsConnection *evd_nats_connection(struct evd_nats *n)
{
	return n->state == EVD_NATS_READY || n->state == EVD_NATS_CONNECTED ? n->nc : NULL;
}

jsCtx *evd_nats_js(struct evd_nats *n)
{
	return n->state == EVD_NATS_READY || n->state == EVD_NATS_CONNECTED ? n->js : NULL;
}

void evd_nats_set_config(struct evd_nats *n, const struct evd_config *cfg)
{
	evd_nats_stream_spec_free(&n->spec);
	evd_nats_stream_spec_from_config(&n->spec, cfg);
	if (n->connect_done && (n->state == EVD_NATS_READY || n->state == EVD_NATS_CONNECTED))
		request_ensure(n);
}

static void json_str(cJSON *o, const char *key, const char *v)
{
	if (v && *v)
		cJSON_AddStringToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

void evd_nats_backend_json(const struct evd_nats *n, struct evd_buf *out)
{
	cJSON *root = cJSON_CreateObject(), *server, *stream;
	char *text;

	cJSON_AddStringToObject(root, "state", evd_nats_state_name(n->state));
	cJSON_AddStringToObject(root, "url", n->url_shown);
	server = cJSON_AddObjectToObject(root, "server");
	json_str(server, "id", n->server.id);
	json_str(server, "url", n->server.url);
	json_str(server, "version", n->server.version);
	json_str(server, "name", n->server.name);
	if (n->si && n->si->Config) {
		const jsStreamConfig *c = n->si->Config;
		cJSON *subjects;

		stream = cJSON_AddObjectToObject(root, "stream");
		cJSON_AddStringToObject(stream, "name", c->Name ? c->Name : "");
		subjects = cJSON_AddArrayToObject(stream, "subjects");
		for (int i = 0; i < c->SubjectsLen; i++)
			cJSON_AddItemToArray(subjects, cJSON_CreateString(c->Subjects[i]));
		cJSON_AddStringToObject(stream, "storage", evd_nats_storage_name(c->Storage));
		cJSON_AddStringToObject(stream, "retention", evd_nats_retention_name(c->Retention));
		cJSON_AddStringToObject(stream, "discard", evd_nats_discard_name(c->Discard));
		cJSON_AddNumberToObject(stream, "messages", (double)n->si->State.Msgs);
		cJSON_AddNumberToObject(stream, "bytes", (double)n->si->State.Bytes);
		cJSON_AddNumberToObject(stream, "consumers", (double)n->si->State.Consumers);
		if (c->MaxBytes > 0)
			cJSON_AddNumberToObject(stream, "max_bytes", (double)c->MaxBytes);
		else
			cJSON_AddNullToObject(stream, "max_bytes");
		if (c->MaxAge > 0)
			cJSON_AddNumberToObject(stream, "max_age_ms", (double)(c->MaxAge / 1000000));
		else
			cJSON_AddNullToObject(stream, "max_age_ms");
		cJSON_AddNumberToObject(stream, "replicas", (double)(c->Replicas > 0 ? c->Replicas : 1));
		cJSON_AddNumberToObject(stream, "duplicate_window_ms", (double)(c->Duplicates / 1000000));
		if (c->MaxBytes > 0)
			cJSON_AddNumberToObject(stream, "usage_ratio",
						(double)n->si->State.Bytes / (double)c->MaxBytes);
		else
			cJSON_AddNullToObject(stream, "usage_ratio");
		/* The figures are a snapshot (INFO_EVERY_MS): when it was taken, with milliseconds. */
		char when[40];
		time_t t = (time_t)(n->si_ms / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		size_t len = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(when + len, sizeof(when) - len, ".%03uZ", (unsigned)(n->si_ms % 1000));
		cJSON_AddStringToObject(stream, "refreshed_at", when);
	} else {
		cJSON_AddNullToObject(root, "stream");
	}
	json_str(root, "last_error", n->last_error);
	text = cJSON_PrintUnformatted(root);
	if (text)
		evd_buf_append_str(out, text);
	cJSON_free(text);
	cJSON_Delete(root);
}

/* ---- close ---- */

static void close_on_worker(struct evd_bridge_item *item)
{
	struct evd_nats *n = owner(item);

	uv_mutex_lock(&n->ev_lock);
	n->ev_stop = true;
	uv_mutex_unlock(&n->ev_lock);
	if (!n->nc)
		return;
	close_and_wait(n);
	jsCtx_Destroy(n->js);
	if (n->loop_io)
		evd_nats_io_wait_detached(&n->io);
	natsConnection_Destroy(n->nc);
	n->js = NULL;
	n->nc = NULL;
}

/* Worker: drains or closes nc and returns once nats.c has run our closed callback. */
static void close_and_wait(struct evd_nats *n)
{
	natsStatus s;

	/* Drain fails when not connected (nothing to drain then): close at once. */
	s = natsConnection_DrainTimeout(n->nc, DRAIN_TIMEOUT_MS);
	if (s != NATS_OK)
		natsConnection_Close(n->nc);
	/*
	 * nats.c calls the closed callback last (on its callback thread) and nothing after it;
	 * until then our closure must stay valid. A drain is bounded by its timeout, so this
	 * wait ends; the log line is there in case a nats.c bug says otherwise.
	 */
	uv_mutex_lock(&n->ev_lock);
	while (!n->closed_fired) {
		if (uv_cond_timedwait(&n->ev_cond, &n->ev_lock,
				      (uint64_t)(DRAIN_TIMEOUT_MS + 5000) * 1000000u) == UV_ETIMEDOUT) {
			evd_log_warn("nats", "still waiting for nats.c to report the connection closed");
			natsConnection_Close(n->nc);
		}
	}
	uv_mutex_unlock(&n->ev_lock);
}

static void nats_free(struct evd_nats *n)
{
	void (*on_closed)(void *) = n->on_closed;
	void *closed_data = n->closed_data;

	jsStreamInfo_Destroy(n->si);
	free(n->last_error);
	free_settings(n);
	uv_mutex_destroy(&n->ev_lock);
	uv_cond_destroy(&n->ev_cond);
	if (n->loop_io)
		evd_nats_io_destroy(&n->io);
	free(n);
	if (on_closed)
		on_closed(closed_data);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct evd_nats *n = h->data;

	if (--n->open_handles == 0)
		nats_free(n);
}

static void close_on_loop(struct evd_bridge_item *item)
{
	struct evd_nats *n = owner(item);

	n->state = EVD_NATS_CLOSED;
	evd_log_info("nats", "connection closed");
	uv_close((uv_handle_t *)&n->retry_timer, on_handle_closed);
	uv_close((uv_handle_t *)&n->info_timer, on_handle_closed);
	if (n->loop_io)
		evd_nats_io_close(&n->io, on_handle_closed, n);
}

static void submit_close(struct evd_nats *n)
{
	/* Behind any connect/ensure/info work already queued: FIFO, so they see nc first. */
	n->close.w.item.on_worker = close_on_worker;
	n->close.w.item.on_loop = close_on_loop;
	evd_bridge_work(n->bridge, &n->close.w.item);
}

void evd_nats_close(struct evd_nats *n, void (*on_closed)(void *data), void *data)
{
	n->closing = true;
	n->on_closed = on_closed;
	n->closed_data = data;
	uv_timer_stop(&n->retry_timer);
	uv_timer_stop(&n->info_timer);
	if (n->subs.next != &n->subs) {
		/*
		 * Draining nc would close the subscriptions under their owners (whose messages may
		 * still be lent) and destroying it would leave them a dead connection: the owners
		 * close their subscriptions first. Any still open is closed here, and the close work
		 * starts when the last one has ended (evd_nats_unlink_sub).
		 */
		evd_log_debug("nats", "closing: ending the subscriptions still open first");
		n->close_waits_for_subs = true;
		for (struct evd_nats_sublink *l = n->subs.next, *next; l != &n->subs; l = next) {
			next = l->next;
			evd_nats_sub_close_link(l);
		}
		return;
	}
	submit_close(n);
}

/* ---- subscriptions (nats_internal.h) ---- */

struct evd_bridge *evd_nats_bridge(struct evd_nats *n)
{
	return n->bridge;
}

bool evd_nats_closing(const struct evd_nats *n)
{
	return n->closing;
}

void evd_nats_link_sub(struct evd_nats *n, struct evd_nats_sublink *l)
{
	l->prev = n->subs.prev;
	l->next = &n->subs;
	n->subs.prev->next = l;
	n->subs.prev = l;
}

void evd_nats_unlink_sub(struct evd_nats *n, struct evd_nats_sublink *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->prev = l->next = NULL;
	if (n->close_waits_for_subs && n->subs.next == &n->subs) {
		n->close_waits_for_subs = false;
		submit_close(n);
	}
}
