/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats.c's socket on our libuv loop (nats_internal.h: evd_nats_io_*), an event-loop adapter of
 * our own in place of nats.c's adapters/libuv.h.
 *
 * nats.c's contract for an external event loop (natsOptions_SetEventLoop, nats.c 3.4.1 conn.c):
 * it calls attach(&userData, loop, nc, socket) after each (re)connect, read(userData, add) and
 * write(userData, add) to start or stop polling, and detach(userData) once when the connection is
 * closed, each with the connection's lock held and from whatever thread does the work (our
 * bridge worker for the connect, nats.c's reconnect thread, its ping timer thread, the loop
 * itself while natsConnection_ProcessReadEvent runs); it never reads or writes the socket
 * itself once attached: natsConnection_ProcessReadEvent reads up to the I/O buffer size and
 * parses it, natsConnection_ProcessWriteEvent writes what the socket takes of the buffered
 * protocol. Both are non-blocking on a plain TCP socket (comsock.c: EWOULDBLOCK with an event
 * loop returns 0 bytes); with TLS they may wait inside SSL_read/SSL_write without a deadline, so
 * nats_conn.c attaches only plain connections (see there).
 *
 * Why not adapters/libuv.h: its first attach must run on the loop thread (natsConnection_Connect
 * blocks, so it runs on our worker), it mallocs an event per call from another thread, reads its
 * queue head without the lock, and polls the socket nats.c closes on its own threads, so a
 * reused descriptor number could leave a stale libuv watcher on someone else's socket.
 *
 * Here: every call records the wanted state (attach generation, read, write, detached) under the
 * context's lock; on the loop thread it is applied at once, from other threads the connection's
 * one bridge item is posted (no allocation) and the loop applies it. We poll a dup() of nats.c's
 * socket, closed only by us on the loop after uv_close, so the descriptor we watch cannot be
 * reused while libuv knows it. Writes are coalesced per loop iteration: write(add) from the loop
 * only sets a flag; a prepare and a check handle call natsConnection_ProcessWriteEvent once per
 * iteration (prepare: before the loop blocks; check: right after the I/O callbacks that
 * published), and only when the socket did not take everything do we poll for writability.
 * After every read event, after_read (nats_conn.c) lets the loop subscriptions take what the
 * parser queued.
 *
 * A server that stops reading (SIGSTOP, a stuck disk, a partition without RST) never blocks
 * the loop: the socket is non-blocking and what it does not take stays in nats.c's buffer. But
 * nats.c would notice only by its pings (tens of seconds) while that buffer grows, so a socket
 * that takes nothing for WRITE_STALL_MS is shut down (on our dup: the same socket); nats.c then
 * reads EOF, drops the connection and reconnects, and publishers answer 503 at once. This
 * replaces, for the loop, the 200 ms write deadline nats.c's blocking writes have with TLS.
 *
 * Lifetime: an io lives from nats.c's first attach of a connection until its detach has been
 * applied on the loop; `live` counts them so that nats_conn.c destroys a natsConnection only
 * after no poll callback can reach it any more (evd_nats_io_wait_detached, on the worker).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nats/nats_internal.h"
#include "util/util_log.h"
#include "util/util_mem.h"

#define WRITE_STALL_MS 1000 /* a full socket that takes nothing this long: drop the connection */
#define STALL_CHECK_MS 250

struct io_poll {
	uv_poll_t h;
	int fd; /* our dup, closed in the close callback */
};

struct nats_io {
	struct evd_bridge_item item; /* first: the bridge hands it back */
	struct evd_nats_io_ctx *ctx;
	natsConnection *nc;
	struct nats_io *next_flush; /* in ctx->flush while a write is wanted */
	struct nats_io *next_io;    /* in ctx->ios once the loop polls it */

	/* Wanted state, under ctx->lock. */
	unsigned gen;    /* attach count */
	int fd_new;      /* the dup of the newest attach, until the loop takes it; -1 */
	bool rd, wr, detached, posted;

	/* Loop only. */
	unsigned gen_applied;
	struct io_poll *poll;
	int events;     /* what poll is started with */
	bool in_cb;     /* inside our poll callback: the io must not be freed */
	bool queued;    /* on ctx->flush */
	bool listed;    /* on ctx->ios */
	uint64_t full_since; /* uv_now when the socket was found full; 0: it takes what we write */
};

static bool on_loop(const struct evd_nats_io_ctx *ctx)
{
	uv_thread_t self = uv_thread_self();

	return uv_thread_equal(&self, &ctx->loop_thread);
}

static void on_poll_closed(uv_handle_t *h)
{
	struct io_poll *p = (struct io_poll *)h;

	close(p->fd);
	free(p);
}

static void close_poll(struct nats_io *io)
{
	if (!io->poll)
		return;
	uv_close((uv_handle_t *)&io->poll->h, on_poll_closed);
	io->poll = NULL;
	io->events = 0;
}

static void apply(struct nats_io *io);
static void on_stall(uv_timer_t *t);

/*
 * Whether nats.c still has something to write. natsConnection_ProcessWriteEvent must not run
 * with an empty buffer: a send of 0 bytes reads as "connection closed" (comsock.c
 * natsSock_Write) and nats.c would drop the connection. write(add) comes only with data
 * buffered and write(remove) right after the buffer went out, so `wr` says it.
 */
static bool write_wanted(struct nats_io *io)
{
	bool wr;

	uv_mutex_lock(&io->ctx->lock);
	wr = io->wr && !io->detached;
	uv_mutex_unlock(&io->ctx->lock);
	return wr;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct nats_io *io = h->data;
	struct evd_nats_io_ctx *ctx = io->ctx;

	io->in_cb = true;
	/* An error: let nats.c find it on a read (it then reconnects), as adapters/libuv.h does. */
	if (status < 0 || (events & (UV_READABLE | UV_DISCONNECT))) {
		natsConnection_ProcessReadEvent(io->nc);
		ctx->after_read(ctx->data);
	}
	if (status == 0 && (events & UV_WRITABLE) && io->poll && write_wanted(io)) {
		natsConnection_ProcessWriteEvent(io->nc);
		/* The socket took more: the server reads. Still full afterwards: count anew. */
		io->full_since = io->full_since ? uv_now(ctx->loop) : 0;
	}
	io->in_cb = false;
	/* A detach nats.c made from inside the calls above was deferred to here. */
	uv_mutex_lock(&ctx->lock);
	bool detached = io->detached;
	uv_mutex_unlock(&ctx->lock);
	if (detached)
		apply(io);
}

/* Loop: makes the poll handle match the wanted state; frees io once detached. */
static void apply(struct nats_io *io)
{
	struct evd_nats_io_ctx *ctx = io->ctx;
	unsigned gen;
	int fd_new, events;
	bool rd, wr, detached;

	uv_mutex_lock(&ctx->lock);
	gen = io->gen;
	fd_new = io->fd_new;
	io->fd_new = -1;
	rd = io->rd;
	wr = io->wr;
	detached = io->detached;
	if (detached && (io->posted || io->in_cb)) {
		/* The queued item or the running callback calls apply again. */
		io->fd_new = fd_new;
		uv_mutex_unlock(&ctx->lock);
		return;
	}
	uv_mutex_unlock(&ctx->lock);

	if (detached) {
		if (fd_new >= 0)
			close(fd_new);
		close_poll(io);
		if (io->queued) {
			/* Unlink from the flush list. */
			for (struct nats_io **pp = &ctx->flush; *pp; pp = &(*pp)->next_flush)
				if (*pp == io) {
					*pp = io->next_flush;
					break;
				}
		}
		if (io->listed)
			for (struct nats_io **pp = &ctx->ios; *pp; pp = &(*pp)->next_io)
				if (*pp == io) {
					*pp = io->next_io;
					break;
				}
		free(io);
		uv_mutex_lock(&ctx->lock);
		ctx->live--;
		uv_cond_broadcast(&ctx->cond);
		uv_mutex_unlock(&ctx->lock);
		return;
	}
	if (gen != io->gen_applied && fd_new >= 0) {
		int err;

		close_poll(io);
		io->gen_applied = gen;
		io->poll = evd_xcalloc(1, sizeof(*io->poll));
		io->poll->fd = fd_new;
		if ((err = uv_poll_init(ctx->loop, &io->poll->h, fd_new)) < 0) {
			/* Nothing reads this connection now; nats.c's pings find it dead and reconnect. */
			evd_log_error("nats", "cannot poll the NATS socket: %s", uv_strerror(err));
			close(fd_new);
			free(io->poll);
			io->poll = NULL;
			return;
		}
		io->poll->h.data = io;
		io->full_since = 0;
		if (!io->listed) {
			io->listed = true;
			io->next_io = ctx->ios;
			ctx->ios = io;
		}
	} else if (fd_new >= 0) {
		close(fd_new); /* cannot happen: a new descriptor comes with a new generation */
	}
	if (!io->poll)
		return;
	/*
	 * A wanted write is first tried from the prepare/check handles (one write per loop
	 * iteration, no epoll change); writability is polled only when the socket was full.
	 */
	if (wr && !io->queued) {
		io->queued = true;
		io->next_flush = ctx->flush;
		ctx->flush = io;
	}
	events = (rd ? UV_READABLE : 0) | (wr && io->events & UV_WRITABLE ? UV_WRITABLE : 0);
	if (!(events & UV_WRITABLE))
		io->full_since = 0;
	if (events == io->events)
		return;
	io->events = events;
	if (events)
		uv_poll_start(&io->poll->h, events, on_poll);
	else
		uv_poll_stop(&io->poll->h);
}

static void on_item(struct evd_bridge_item *item)
{
	struct nats_io *io = (struct nats_io *)item;
	struct evd_nats_io_ctx *ctx = io->ctx;

	uv_mutex_lock(&ctx->lock);
	io->posted = false;
	uv_mutex_unlock(&ctx->lock);
	apply(io); /* may free io (detached) */
	/* Work from another thread (a management request, a PING) goes out at once. */
	evd_nats_io_flush(ctx);
}

/* With ctx->lock held: apply now (loop) or have the loop apply it. */
static void kick_locked(struct nats_io *io, bool *apply_now)
{
	*apply_now = on_loop(io->ctx);
	if (!*apply_now && !io->posted) {
		io->posted = true;
		evd_bridge_post(io->ctx->bridge, &io->item);
	}
}

static natsStatus io_attach(void **user, void *loop, natsConnection *nc, natsSock sock)
{
	struct evd_nats_io_ctx *ctx = loop;
	struct nats_io *io = *user;
	bool now;
	int fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);

	if (fd < 0)
		return NATS_SYS_ERROR;
	if (!io) {
		io = evd_xcalloc(1, sizeof(*io));
		io->item.on_loop = on_item;
		io->ctx = ctx;
		io->nc = nc;
		io->fd_new = -1;
		uv_mutex_lock(&ctx->lock);
		ctx->live++;
		uv_mutex_unlock(&ctx->lock);
	}
	uv_mutex_lock(&ctx->lock);
	if (io->fd_new >= 0)
		close(io->fd_new); /* an earlier attach the loop never took */
	io->fd_new = fd;
	io->gen++;
	io->rd = true;
	io->wr = false;
	kick_locked(io, &now);
	uv_mutex_unlock(&ctx->lock);
	*user = io;
	if (now)
		apply(io);
	return NATS_OK;
}

static natsStatus io_set(void *user, bool write, bool add)
{
	struct nats_io *io = user;
	bool now;

	uv_mutex_lock(&io->ctx->lock);
	if (write)
		io->wr = add;
	else
		io->rd = add;
	kick_locked(io, &now);
	uv_mutex_unlock(&io->ctx->lock);
	if (now)
		apply(io);
	return NATS_OK;
}

static natsStatus io_read(void *user, bool add)
{
	return io_set(user, false, add);
}

static natsStatus io_write(void *user, bool add)
{
	return io_set(user, true, add);
}

static natsStatus io_detach(void *user)
{
	struct nats_io *io = user;
	bool now;

	uv_mutex_lock(&io->ctx->lock);
	io->detached = true;
	kick_locked(io, &now);
	uv_mutex_unlock(&io->ctx->lock);
	if (now)
		apply(io);
	return NATS_OK;
}

void evd_nats_io_flush(struct evd_nats_io_ctx *ctx)
{
	struct nats_io *list = ctx->flush;

	ctx->flush = NULL;
	while (list) {
		struct nats_io *io = list;
		bool wr;

		list = io->next_flush;
		io->next_flush = NULL;
		io->queued = false;
		if (!io->poll || !write_wanted(io))
			continue;
		/* Writes what the socket takes; when all went, nats.c calls write(remove). A write
		 * error makes nats.c close or detach from inside: in_cb defers the free. */
		io->in_cb = true;
		natsConnection_ProcessWriteEvent(io->nc);
		io->in_cb = false;
		uv_mutex_lock(&ctx->lock);
		wr = io->wr && !io->detached;
		bool detached = io->detached;
		uv_mutex_unlock(&ctx->lock);
		if (detached) {
			apply(io);
			continue;
		}
		if (wr && io->poll && !(io->events & UV_WRITABLE)) {
			/* The socket is full: wait until it takes more, and watch how long. */
			io->events |= UV_WRITABLE;
			uv_poll_start(&io->poll->h, io->events, on_poll);
			io->full_since = uv_now(ctx->loop);
			if (!uv_is_active((uv_handle_t *)&ctx->stall))
				uv_timer_start(&ctx->stall, on_stall, STALL_CHECK_MS, STALL_CHECK_MS);
		}
	}
}

static void on_stall(uv_timer_t *t)
{
	struct evd_nats_io_ctx *ctx = t->data;
	uint64_t now = uv_now(ctx->loop);
	bool waiting = false;

	for (struct nats_io *io = ctx->ios; io; io = io->next_io) {
		if (!io->full_since || !io->poll)
			continue;
		if (now - io->full_since < WRITE_STALL_MS) {
			waiting = true;
			continue;
		}
		evd_log_warn("nats", "the NATS server took nothing we wrote for %llu ms: dropping the "
			     "connection (nats.c reconnects)", (unsigned long long)(now - io->full_since));
		io->full_since = 0;
		/* Our dup shares the socket: nats.c's next read sees the end and reconnects. */
		shutdown(io->poll->fd, SHUT_RDWR);
	}
	if (!waiting)
		uv_timer_stop(&ctx->stall);
}

static void on_prepare(uv_prepare_t *h)
{
	evd_nats_io_flush(h->data);
}

static void on_check(uv_check_t *h)
{
	evd_nats_io_flush(h->data);
}

int evd_nats_io_init(struct evd_nats_io_ctx *ctx, uv_loop_t *loop, struct evd_bridge *bridge,
		     void (*after_read)(void *data), void *data)
{
	int err;

	ctx->loop = loop;
	ctx->loop_thread = uv_thread_self();
	ctx->bridge = bridge;
	ctx->after_read = after_read;
	ctx->data = data;
	ctx->flush = NULL;
	ctx->live = 0;
	if ((err = uv_mutex_init(&ctx->lock)) < 0)
		return err;
	if ((err = uv_cond_init(&ctx->cond)) < 0) {
		uv_mutex_destroy(&ctx->lock);
		return err;
	}
	ctx->ios = NULL;
	uv_prepare_init(loop, &ctx->prepare);
	uv_check_init(loop, &ctx->check);
	uv_timer_init(loop, &ctx->stall);
	ctx->prepare.data = ctx->check.data = ctx->stall.data = ctx;
	uv_prepare_start(&ctx->prepare, on_prepare);
	uv_check_start(&ctx->check, on_check);
	/* They must not keep the loop alive on their own. */
	uv_unref((uv_handle_t *)&ctx->prepare);
	uv_unref((uv_handle_t *)&ctx->check);
	uv_unref((uv_handle_t *)&ctx->stall);
	return 0;
}

natsStatus evd_nats_io_options(struct evd_nats_io_ctx *ctx, natsOptions *o)
{
	return natsOptions_SetEventLoop(o, ctx, io_attach, io_read, io_write, io_detach);
}

void evd_nats_io_wait_detached(struct evd_nats_io_ctx *ctx)
{
	uv_mutex_lock(&ctx->lock);
	while (ctx->live > 0)
		uv_cond_wait(&ctx->cond, &ctx->lock);
	uv_mutex_unlock(&ctx->lock);
}

void evd_nats_io_close(struct evd_nats_io_ctx *ctx, uv_close_cb on_closed, void *data)
{
	ctx->prepare.data = ctx->check.data = ctx->stall.data = data;
	uv_close((uv_handle_t *)&ctx->prepare, on_closed);
	uv_close((uv_handle_t *)&ctx->check, on_closed);
	uv_close((uv_handle_t *)&ctx->stall, on_closed);
}

void evd_nats_io_destroy(struct evd_nats_io_ctx *ctx)
{
	uv_mutex_destroy(&ctx->lock);
	uv_cond_destroy(&ctx->cond);
}
