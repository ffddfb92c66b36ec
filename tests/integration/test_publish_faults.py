#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The publish path when the NATS server misbehaves (DESIGN.md §1: no blocking nats.c call on the
loop): a server that stops answering (SIGSTOP) in the middle of a burst of large publishes, and a
server that closes the connection for good (an authorization error after a password change).
Every publish request must get an answer, the admin listener must keep answering, and the daemon
must become ready again once the server is back."""
import http.client
import os
import signal
import subprocess
import threading
import time

from evd_harness import (NATS_SERVER, Eventingd, NatsServer, Skip, http_request, run_tests, scaled,
                         track, wait_for)

BIG = b'"' + b"x" * (60 * 1024) + b'"'


def headers(id_):
    return {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-type": "order.created.v1",
            "ce-source": "shop", "ce-id": id_}


class Burst:
    """Threads that POST /publish over keep-alive connections until stopped; every answer (or
    the lack of one) is recorded."""

    def __init__(self, evd, conns, body, timeout=30):
        self.evd, self.body, self.timeout = evd, body, timeout
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.statuses = {}
        self.errors = []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(conns)]

    def run(self, i):
        conn = None
        k = 0
        while not self.stop_flag.is_set():
            k += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.evd.publish_port, timeout=self.timeout)
                conn.request("POST", "/publish", body=self.body, headers=headers(f"t{i}-{k}"))
                r = conn.getresponse()
                r.read()
                with self.lock:
                    self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
                if r.status == 503:
                    time.sleep(0.05)
            except Exception as e:  # noqa: BLE001 - a request without an answer is the failure
                with self.lock:
                    self.errors.append(f"{type(e).__name__}: {e}")
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(self.timeout + 5)


def watch_healthz(evd, seconds, limit=1.0):
    """Polls /healthz for seconds; returns the slowest answer (s) and the failures. The limit is
    nominal (scaled by TIME_SCALE: a sanitizer build answers proportionally slower)."""
    limit = scaled(limit)
    worst, bad = 0.0, []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            status = http_request("GET", evd.admin + "/healthz", timeout=limit + 2)[0]
            if status != 200:
                bad.append(status)
        except Exception as e:  # noqa: BLE001
            bad.append(repr(e))
        dt = time.monotonic() - t0
        worst = max(worst, dt)
        if dt > limit:
            bad.append(f"/healthz took {dt:.2f}s")
        time.sleep(0.1)
    return worst, bad


def test_stopped_server_does_not_freeze_the_loop(tmp):
    nats = track(NatsServer(tmp).start())
    evd = track(Eventingd(tmp, nats_url=nats.url, config={"stream": {"retention": "limits"}}))
    evd.start()
    evd.wait_ready()
    burst = Burst(evd, 160, BIG).start()
    stopped = False
    try:
        wait_for(lambda: burst.statuses.get(204, 0) > 50, 20, what="publishes going through")
        os.kill(nats.proc.pid, signal.SIGSTOP)
        stopped = True
        worst, bad = watch_healthz(evd, 10)
        assert not bad, f"/healthz while the server is stopped: {bad[:5]} (worst {worst:.2f}s)"
        assert http_request("GET", evd.admin + "/readyz", timeout=1)[0] in (200, 503)
    finally:
        if stopped:
            os.kill(nats.proc.pid, signal.SIGCONT)
        burst.stop()
    assert not burst.errors, f"requests without an answer: {len(burst.errors)}: {burst.errors[:3]}"
    assert set(burst.statuses) <= {204, 503}, burst.statuses
    assert burst.statuses.get(503, 0) > 0, burst.statuses
    evd.wait_ready(30)
    assert http_request("POST", evd.publish + "/publish", body=b"{}", headers=headers("after"))[0] == 204
    assert evd.stop() == 0


def auth_server(tmp, port, password):
    conf = os.path.join(tmp, "auth.conf")
    with open(conf, "w") as f:
        f.write(f'authorization {{ user: a, password: "{password}" }}\n')
    srv = NatsServer(tmp, port=port)
    srv.proc = subprocess.Popen([NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", srv.store,
                                 "-c", conf], stdout=open(srv.log, "ab"), stderr=subprocess.STDOUT)
    import socket
    wait_for(lambda: socket.create_connection(("127.0.0.1", port), 0.2).close() or True, what="nats-server")
    return srv


def test_closed_connection_answers_everything_and_reconnects(tmp):
    if not NATS_SERVER:
        raise Skip("nats-server not installed")
    port = NatsServer(tmp).port
    nats = track(auth_server(tmp, port, "b"))
    evd = track(Eventingd(tmp, nats_url=f"nats://127.0.0.1:{port}",
                          config={"stream": {"retention": "limits"}, "nats": {"user": "a", "password": "b"}}))
    evd.start()
    evd.wait_ready()
    burst = Burst(evd, 16, BIG).start()
    try:
        wait_for(lambda: burst.statuses.get(204, 0) > 20, 20, what="publishes going through")
        # The password changes: nats.c's reconnect meets an authorization violation and closes.
        nats.stop(signal.SIGKILL)
        nats = track(auth_server(tmp, port, "other"))
        wait_for(lambda: http_request("GET", evd.admin + "/readyz", timeout=2)[0] == 503, 15, what="readyz 503")
        wait_for(lambda: "refused us" in evd.stderr(), 15, what="nats.c closing the connection")
        # A connection from scratch meets the wrong password too: still not ready, still answering.
        wait_for(lambda: evd.stderr().count("connecting to NATS:") + evd.stderr().count("refused us") >= 2,
                 20, what="a failed reconnect from scratch")
        assert http_request("GET", evd.admin + "/readyz", timeout=2)[0] == 503
    finally:
        burst.stop()
    assert not burst.errors, f"requests without an answer: {len(burst.errors)}: {burst.errors[:3]}"
    assert set(burst.statuses) <= {204, 503}, burst.statuses
    assert "authorization" in evd.stderr().lower(), evd.stderr()[-2000:]
    # The right password again: the daemon reconnects from scratch.
    nats.stop(signal.SIGKILL)
    nats = track(auth_server(tmp, port, "b"))
    evd.wait_ready(40)
    assert http_request("POST", evd.publish + "/publish", body=b"{}", headers=headers("after"))[0] == 204
    assert evd.stop() == 0


def test_access_log_close_does_not_block_the_loop(tmp):
    # The access log is a FIFO read slowly: what is waiting at SIGHUP (the old log is closed, up
    # to 2 MiB) must be written off the loop, not with a blocking write() on it.
    nats = track(NatsServer(tmp).start())
    fifo = os.path.join(tmp, "access.fifo")
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    evd = track(Eventingd(tmp, nats_url=nats.url, config={"publish": {"access_log": fifo}}))
    evd.start()
    evd.wait_ready()

    def many(i):
        conn = http.client.HTTPConnection("127.0.0.1", evd.publish_port, timeout=10)
        for k in range(600):
            conn.request("GET", f"/no/such/route/{i}/{k}/" + "x" * 100)
            r = conn.getresponse()
            r.read()
            assert r.status == 404
        conn.close()

    threads = [threading.Thread(target=many, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.3)  # the last lines reach the waiting buffer
    evd.signal(signal.SIGHUP)
    drained = [0]
    stop = threading.Event()

    def slow_reader():
        while not stop.is_set():
            try:
                drained[0] += len(os.read(rfd, 16384))
            except BlockingIOError:
                pass
            time.sleep(0.05)

    reader = threading.Thread(target=slow_reader, daemon=True)
    reader.start()
    try:
        worst, bad = watch_healthz(evd, 4)
        assert not bad, f"/healthz while the old access log drains: {bad[:5]} (worst {worst:.2f}s)"
    finally:
        stop.set()
        reader.join()
    # What was waiting gets written in the end (or, past the 1 MiB bound, is counted as dropped).
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < scaled(1.0):
        try:
            chunk = os.read(rfd, 1 << 20)
        except BlockingIOError:
            chunk = b""
        if chunk:
            drained[0] += len(chunk)
            idle_since = time.monotonic()
        else:
            time.sleep(0.05)
    os.close(rfd)
    assert drained[0] >= 20 * 600 * 100 or "lines dropped" in evd.stderr(), drained[0]
    assert evd.stop() == 0


if __name__ == "__main__":
    run_tests(globals())
