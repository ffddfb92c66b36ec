# SPDX-License-Identifier: Apache-2.0
"""A scriptable HTTP/1.1 sink for the dispatcher's tests (python3 standard library only).

    sink = track(Sink())                     # a threaded keep-alive server on a free loopback port
    sink.script("/orders", Reply(503, retry_after=2), Reply(500), default=Reply(200))
    ...
    reqs = sink.wait_requests(3, path="/orders", timeout=scaled(10))

Every request is recorded (method, target, path, HTTP version, headers as received -- names with
their case, in their order, repeated ones kept -- body bytes, arrival time, the connection it came
on, whether it was chunked) before it is answered. A path answers from its script: each request
takes the next Reply of the list, and when the list is used up, the path's default (or the sink's
default, 204). A script may also be a function of the request returning a Reply. A Reply can set
the status, `Retry-After`, extra headers, a body, a delay before answering (a slow sink), a hold
until released (a sink that keeps requests open), or close the connection without answering.

The sink counts requests being handled at once (from the end of the request body until the answer
is written or the connection closed), per path and in total, and keeps the maximum seen.
Waits are on a condition variable: a waiter wakes as soon as the request arrives, never samples.
"""
import http.server
import socket
import socketserver
import threading
import time
import urllib.parse


class Reply:
    """How the sink answers one request."""

    def __init__(self, status=204, retry_after=None, delay=0.0, close=False, body=b"", headers=None,
                 hold=False, raw_body=False):
        self.status = status
        self.retry_after = retry_after  # seconds (int) or a literal string (an HTTP date)
        self.delay = delay              # seconds before the answer is written
        self.close = close              # close the connection without answering
        self.body = body
        self.headers = list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
        self.hold = hold                # wait until Sink.release() (or the sink closes)
        self.raw_body = raw_body        # body written as is, no Content-Length (e.g. chunked)

    def __repr__(self):
        return (f"Reply({self.status}, retry_after={self.retry_after}, delay={self.delay}, "
                f"close={self.close}, hold={self.hold})")


class Request:
    """One request as the sink received it."""

    def __init__(self, method, target, version, headers, body, chunked, conn_id, arrived):
        self.method = method
        self.target = target
        self.path = urllib.parse.urlsplit(target).path
        self.version = version
        self.headers = headers        # [(name, value)] exactly as received
        self.body = body
        self.chunked = chunked
        self.conn_id = conn_id        # requests on one keep-alive connection share it
        self.arrived = arrived        # time.monotonic() when the request head was read
        self.answered = None          # time.monotonic() when the answer was written (or closed)
        self.status = None            # what the sink answered (None: closed without answering)

    def header(self, name, default=None):
        """The first header of that name, case-insensitively."""
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return default

    def header_all(self, name):
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    def names(self):
        return [k for k, _ in self.headers]

    def ce(self):
        """ce-* headers, lower-cased names without the prefix, values percent-decoded."""
        return {k[3:].lower(): urllib.parse.unquote(v) for k, v in self.headers
                if k.lower().startswith("ce-")}

    def __repr__(self):
        return f"<{self.method} {self.target} ce-id={self.header('ce-id')!r} status={self.status}>"


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        # A client that gave up (a timeout, eventingd stopped) resets the connection: that is
        # what some tests do on purpose, not worth a traceback.
        import sys
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Sink:
    def __init__(self, port=0, default=None, host="127.0.0.1"):
        self._cv = threading.Condition()
        self._scripts = {}     # path -> [list of Reply, default Reply or None, function or None]
        self.default = default or Reply(204)
        self.requests = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._path_in_flight = {}
        self._path_max = {}
        self._released = threading.Event()
        self._conn_seq = 0
        self._conns = set()
        self.connections = 0   # connections accepted so far
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with sink._cv:
                    sink._conn_seq += 1
                    sink.connections += 1
                    self.conn_id = sink._conn_seq
                    sink._conns.add(self.connection)

            def finish(self):
                with sink._cv:
                    sink._conns.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def log_message(self, *args):
                pass

            def _read_body(self):
                te = (self.headers.get("Transfer-Encoding") or "").lower()
                if "chunked" in te:
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out, True
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return (self.rfile.read(n) if n else b""), False

            def _handle(self):
                arrived = time.monotonic()
                body, chunked = self._read_body()
                req = Request(self.command, self.path, self.request_version, list(self.headers.items()),
                              body, chunked, self.conn_id, arrived)
                with sink._cv:
                    sink.requests.append(req)
                    sink.in_flight += 1
                    sink.max_in_flight = max(sink.max_in_flight, sink.in_flight)
                    n = sink._path_in_flight.get(req.path, 0) + 1
                    sink._path_in_flight[req.path] = n
                    sink._path_max[req.path] = max(sink._path_max.get(req.path, 0), n)
                    reply = sink._next_reply(req)
                    sink._cv.notify_all()
                try:
                    if reply.hold:
                        while not sink._released.wait(0.2):
                            pass
                    if reply.delay:
                        time.sleep(reply.delay)
                    if reply.close:
                        self.close_connection = True
                        try:
                            self.connection.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        return
                    self.send_response_only(reply.status)
                    if reply.retry_after is not None:
                        self.send_header("Retry-After", str(reply.retry_after))
                    for k, v in reply.headers:
                        self.send_header(k, v)
                    if not reply.raw_body:
                        self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    self.wfile.flush()
                    req.status = reply.status
                finally:
                    with sink._cv:
                        req.answered = time.monotonic()
                        sink.in_flight -= 1
                        sink._path_in_flight[req.path] -= 1
                        sink._cv.notify_all()

            do_POST = do_PUT = do_GET = do_DELETE = do_PATCH = do_HEAD = _handle

        self._server = _Server((host, port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        self._closed = False

    # ---- scripting ------------------------------------------------------------------------

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def script(self, path, *replies, default=None, fn=None):
        """Requests to `path` take `replies` in order, then `default` (the sink's default when
        None). With fn, fn(request) -> Reply decides instead (after the list is used up)."""
        with self._cv:
            self._scripts[path] = [list(replies), default, fn]

    def _next_reply(self, req):
        s = self._scripts.get(req.path)
        if not s:
            return self.default
        replies, default, fn = s
        if replies:
            return replies.pop(0)
        if fn:
            return fn(req)
        return default or self.default

    def release(self):
        """Answers every held request (and every later one that asks to be held)."""
        self._released.set()

    # ---- what arrived -----------------------------------------------------------------------

    def received(self, path=None, pred=None):
        with self._cv:
            return [r for r in self.requests if (path is None or r.path == path) and (pred is None or pred(r))]

    def max_concurrent(self, path=None):
        with self._cv:
            return self.max_in_flight if path is None else self._path_max.get(path, 0)

    def concurrent(self, path=None):
        with self._cv:
            return self.in_flight if path is None else self._path_in_flight.get(path, 0)

    def ids(self, path=None, answered=None):
        """ce-id of every request (to path), optionally only those answered with a status in
        `answered` (a container of ints)."""
        return [urllib.parse.unquote(r.header("ce-id") or "") for r in self.received(path)
                if answered is None or r.status in answered]

    def wait(self, cond, timeout, what="condition"):
        """Waits until cond() (called under the sink's lock) is true; returns its value."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                v = cond()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"sink: timed out after {timeout:.1f}s waiting for {what} "
                                         f"(got {len(self.requests)} requests: {self.requests[-10:]})")
                self._cv.wait(min(left, 0.5))

    def wait_requests(self, n, timeout, path=None, pred=None, what=None):
        """Waits until at least n requests (to path, matching pred) arrived; returns them all."""
        def cond():
            rs = [r for r in self.requests if (path is None or r.path == path) and (pred is None or pred(r))]
            return rs if len(rs) >= n else None
        return self.wait(cond, timeout, what or f"{n} requests" + (f" to {path}" if path else ""))

    def wait_ids(self, ids, timeout, path=None, answered=(200, 201, 202, 204)):
        """Waits until every ce-id in ids was answered with a 2xx (to path); returns the ids seen."""
        want = set(ids)

        def cond():
            got = {urllib.parse.unquote(r.header("ce-id") or "") for r in self.requests
                   if (path is None or r.path == path) and r.status in answered}
            return got if want <= got else None
        try:
            return self.wait(cond, timeout, f"{len(want)} ids")
        except AssertionError:
            got = set(self.ids(path, answered))
            missing = sorted(want - got)
            raise AssertionError(f"sink: {len(missing)} of {len(want)} ids never delivered after "
                                 f"{timeout:.1f}s, e.g. {missing[:10]}") from None

    def wait_idle(self, timeout):
        """Waits until no request is being handled."""
        return self.wait(lambda: self.in_flight == 0 or None, timeout, "no request in flight") is None

    def quiet(self, seconds, path=None):
        """Asserts that no further request (to path) arrives within `seconds` -- for checks that
        something does NOT happen (a retry that must not come). Returns the requests so far."""
        before = len(self.received(path))
        time.sleep(seconds)
        after = self.received(path)
        assert len(after) == before, f"sink: unexpected requests: {after[before:]}"
        return after

    # ---- lifetime ---------------------------------------------------------------------------

    def drop_connections(self):
        """Closes every open client connection (keep-alive ones included)."""
        with self._cv:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        """Stops listening and drops open connections (the port is free afterwards)."""
        if self._closed:
            return
        self._closed = True
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self.drop_connections()
