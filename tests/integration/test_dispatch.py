#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The push dispatcher end to end (DESIGN.md §5-§7, issue 8): real nats-server, real eventingd,
real HTTP sinks on loopback (evd_sink.Sink), subscriptions as Kyma manifests in the daemon's
subscriptions.d. What a sink receives (binary and structured mode, byte for byte), the type Kyma's
sinks see, tracing headers, every outcome (2xx, retry, Retry-After, 4xx, 3xx, maxDeliver), the
limits (maxInFlightMessages across types, +WPI for held messages), and that nothing answered 2xx at
publish is lost through sink outages, reloads and restarts of eventingd and nats-server.

Every wait is a wait for a condition, scaled by EVD_TEST_TIME_SCALE (evd_harness.scaled)."""
import base64
import json
import os
import re
import signal
import threading
import time
import urllib.parse

from evd_harness import (TIME_SCALE, Eventingd, NatsServer, http_request, run_tests, scaled, track,
                         wait_for)
from evd_nats import NatsClient, consumer_name
from evd_sink import Reply, Sink

OK = (200, 201, 202, 204)

# Short timings so retries and redeliveries happen within a test; dispatch.timeout < ack_wait.
BASE = {
    "dispatch": {"ack_wait": "6s", "timeout": "4s", "drain_timeout": "3s",
                 "backoff": {"initial": "100ms", "max": "1s", "factor": 2}},
    "subscriptions": {"delete_grace": "1s"},
}


def merged(*configs):
    out = {}
    for c in configs:
        for k, v in (c or {}).items():
            if isinstance(v, dict) and isinstance(out.get(k), dict):
                out[k] = merged(out[k], v)
            else:
                out[k] = json.loads(json.dumps(v))
    return out


class Env:
    """One nats-server (external, unless embedded), one eventingd, one NATS client."""

    def __init__(self, tmp, config=None, embedded=False, start=True):
        self.tmp = tmp
        self.nats = None if embedded else track(NatsServer(tmp)).start()
        self.evd = track(Eventingd(tmp, nats_url="embedded" if embedded else self.nats.url,
                                   config=merged(BASE, config)))
        self._nc = None
        if start:
            self.start()

    def start(self):
        self.evd.start()
        self.evd.wait_ready(scaled(30))
        return self

    @property
    def nc(self):
        if self._nc is None:
            port = self.nats.port if self.nats else int(self.evd.backend()["embedded"]["url"].rsplit(":", 1)[1])
            self._nc = track(NatsClient(port))
        return self._nc

    def reset_nc(self):
        if self._nc:
            self._nc.close()
        self._nc = None


def manifest(name, sink, types=("order.created.v1",), source="commerce", ns=None, matching=None,
             config=None):
    lines = ["apiVersion: eventing.kyma-project.io/v1alpha2", "kind: Subscription", "metadata:",
             f"  name: {name}"]
    if ns:
        lines.append(f"  namespace: {ns}")
    lines += ["spec:", f"  source: {source}", "  types:"]
    lines += [f"    - {json.dumps(t)}" for t in types]
    lines.append(f"  sink: {json.dumps(sink)}")
    if matching:
        lines.append(f"  typeMatching: {matching}")
    if config:
        lines.append("  config:")
        lines += [f"    {k}: {json.dumps(str(v))}" for k, v in config.items()]
    return "\n".join(lines) + "\n"


def write(evd, filename, text):
    # Write then rename, as editors and config managers do.
    path = os.path.join(evd.subs_dir, filename)
    tmp = os.path.join(evd.subs_dir, "." + filename + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)
    return path


def item(evd, ns, name):
    status, _, body = http_request("GET", f"{evd.admin}/v1/subscriptions/{ns}/{name}")
    if status == 404:
        return None
    assert status == 200, (status, body)
    return json.loads(body)


def status_of(it):
    """The status object of an item: Kyma's shape (item.status) or the flat one before it."""
    if it is None:
        return None
    st = it.get("status")
    return st if isinstance(st, dict) else it


def sink_of(it):
    spec = it.get("spec")
    return spec["sink"] if isinstance(spec, dict) and "sink" in spec else it.get("sink")


def wait_ready(evd, ns, name, timeout=20):
    return wait_for(lambda: (status_of(item(evd, ns, name)) or {}).get("ready") is True,
                    scaled(timeout), interval=0.1, what=f"{ns}/{name} ready")


def subscribe(env, name, sink, filename=None, **kw):
    write(env.evd, filename or f"{name}.yaml", manifest(name, sink, **kw))
    wait_ready(env.evd, kw.get("ns") or "default", name)


def delivery(evd, ns, name):
    st = status_of(item(evd, ns, name)) or {}
    return st.get("delivery")


def wait_delivery(evd, ns, name, cond, timeout=10, what="delivery figures"):
    return wait_for(lambda: (lambda d: d if d is not None and cond(d) else None)(delivery(evd, ns, name)),
                    scaled(timeout), interval=0.1, what=f"{ns}/{name} {what}")


def ce_headers(id_, type_="order.created.v1", source="commerce", ct="application/json", extra=None):
    h = {"ce-specversion": "1.0", "ce-id": id_, "ce-source": source, "ce-type": type_}
    if ct:
        h["Content-Type"] = ct
    h.update(extra or {})
    return h


def publish(evd, id_, data=b'{"n":1}', timeout=10, **kw):
    """POST /publish in binary mode; returns the status."""
    status, _, body = http_request("POST", evd.publish + "/publish", body=data,
                                   headers=ce_headers(id_, **kw), timeout=timeout)
    return status


def publish_ok(evd, id_, data=b'{"n":1}', **kw):
    status = publish(evd, id_, data, **kw)
    assert status == 204, (id_, status)


def metrics(evd):
    status, _, body = http_request("GET", evd.admin + "/metrics")
    assert status == 200, status
    return body.decode()


LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_sum(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(LABEL.findall(m.group(2) or ""))
        if all(have.get(k) == str(v) for k, v in labels.items()):
            total += float(m.group(3))
            seen = True
    return total if seen else None


def settled(env, cname):
    """The consumer has nothing pending and nothing awaiting an ack."""
    c = env.nc.consumer(cname)
    return c is not None and c["num_pending"] == 0 and c["num_ack_pending"] == 0 and c


class Publisher(threading.Thread):
    """Publishes up to n events at about `rate` per second in the background (until stop()),
    remembering which were answered 2xx (stored: these must all be delivered), which were not (an
    outage), and when each request was sent."""

    def __init__(self, evd, n, rate, prefix, **kw):
        super().__init__(daemon=True)
        self.evd, self.n, self.rate, self.prefix, self.kw = evd, n, rate, prefix, kw
        self.ok, self.failed = [], []
        self.sent_at = {}  # id -> time.monotonic() just before its request was sent
        self.count = 0
        self._halt = threading.Event()

    def run(self):
        t0 = time.monotonic()
        for i in range(self.n):
            if self._halt.is_set():
                break
            id_ = f"{self.prefix}{i}"
            self.sent_at[id_] = time.monotonic()
            try:
                s = publish(self.evd, id_, data=json.dumps({"i": i}).encode(), timeout=5, **self.kw)
            except Exception:  # noqa: BLE001 - refused, reset, timed out: not stored
                s = None
            if s == 204:
                self.ok.append(id_)
            else:
                self.failed.append((id_, s))
            self.count = i + 1
            pause = t0 + (i + 1) / self.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)

    def wait_count(self, n, timeout):
        wait_for(lambda: self.count >= n, timeout, what=f"{n} publishes")

    def wait_ok(self, n, timeout):
        wait_for(lambda: len(self.ok) >= n, timeout, what=f"{n} publishes answered 204")

    def finish(self, timeout):
        self._halt.set()
        self.join(timeout)
        assert not self.is_alive(), "publisher did not finish"
        return self.ok


# ---- what a sink receives ------------------------------------------------------------------

def test_binary_every_attribute_byte_exact(tmp):
    env = Env(tmp)
    sink = track(Sink(default=Reply(200)))
    url = sink.url + "/orders?tenant=a%20b"
    subscribe(env, "orders", url)
    cname = consumer_name("default", "orders", "kyma.commerce.order.created.v1")

    big = b'{"n":12345678901234567890, "f": 1.50e3}'
    publish_ok(env.evd, "a%20b%25c", big, extra={
        "ce-time": "2026-12-01T10:00:00.5Z", "ce-subject": "caf%C3%A9%20%2F%20x",
        "ce-dataschema": "http://example.com/schema", "ce-myext": "x%20y",
        "ce-eventtypeversion": "v1"})
    octets = bytes(range(256)) * 4
    publish_ok(env.evd, "raw-1", octets, ct="application/octet-stream")
    large = os.urandom(60000)  # below publish.max_request_size (64 KiB): many socket writes
    publish_ok(env.evd, "large-1", large, ct="application/octet-stream")

    reqs = sink.wait_requests(3, scaled(15), path="/orders")
    by_id = {r.header("ce-id"): r for r in reqs}
    assert set(by_id) == {"a%20b%25c", "raw-1", "large-1"}, reqs
    assert by_id["large-1"].body == large, "large data changed on the way"
    r = by_id["a%20b%25c"]
    assert r.method == "POST" and r.target == "/orders?tenant=a%20b", (r.method, r.target)
    assert r.version == "HTTP/1.1", r.version
    assert r.body == big, r.body
    # Stored ce-* headers passed through byte for byte (they are percent-encoded in the stream).
    assert r.header("ce-id") == "a%20b%25c" and r.header("ce-myext") == "x%20y", r.headers
    ce = r.ce()
    assert ce["specversion"] == "1.0" and ce["id"] == "a b%c" and ce["source"] == "commerce", ce
    assert ce["type"] == "order.created.v1" and ce["originaltype"] == "order.created.v1", ce
    assert ce["time"] == "2026-12-01T10:00:00.5Z", ce
    assert ce["subject"] == "café / x" and ce["myext"] == "x y", ce
    assert ce["dataschema"] == "http://example.com/schema" and ce["eventtypeversion"] == "v1", ce
    # datacontenttype travels as Content-Type (HTTP binding 3.1.1), not as a ce- header.
    assert r.header("Content-Type") == "application/json", r.headers
    assert "datacontenttype" not in ce, r.headers
    for req in reqs:
        names = [n.lower() for n in req.names()]
        assert "nats-msg-id" not in names, req.headers
        assert "transfer-encoding" not in names and not req.chunked, req.headers
        assert "expect" not in names, req.headers
        assert req.header("Content-Length") == str(len(req.body)), req.headers
        assert len(req.header_all("Content-Length")) == 1 and len(req.header_all("Host")) == 1, req.headers
        assert req.header("Host") == f"127.0.0.1:{sink.port}", req.headers
    raw = by_id["raw-1"]
    assert raw.body == octets, "octet-stream data changed on the way"
    assert raw.header("Content-Type") == "application/octet-stream", raw.headers

    # Acked: the consumer is settled, and nothing is delivered twice.
    wait_for(lambda: settled(env, cname), scaled(10), what="consumer settled")
    assert len(sink.received("/orders")) == 3, sink.received("/orders")

    d = wait_delivery(env.evd, "default", "orders", lambda d: d["delivered"] == 3)
    assert set(d) >= {"delivered", "failed", "retries", "inFlight", "lastSuccess", "lastFailure",
                      "lastFailureReason"}, d
    assert d["failed"] == 0 and d["retries"] == 0 and d["inFlight"] == 0, d
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", d["lastSuccess"]), d
    assert d["lastFailure"] is None and d["lastFailureReason"] is None, d

    text = metrics(env.evd)
    n = metric_sum(text, "eventing_ec_nats_delivery_per_subscription_total", subscription_name="orders",
                   subscription_namespace="default", event_type="order.created.v1", response_code="200",
                   consumer_name=cname, sink=url)
    assert n == 3, [l for l in text.splitlines() if "delivery_per_subscription" in l]
    n = metric_sum(text, "eventing_ec_nats_subscriber_dispatch_duration_seconds_count",
                   subscription_name="orders", response_code="200")
    assert n == 3, [l for l in text.splitlines() if "dispatch_duration" in l][:20]
    les = set()
    for line in text.splitlines():
        if line.startswith("eventing_ec_nats_subscriber_dispatch_duration_seconds_bucket{"):
            les.add(float(dict(LABEL.findall(line))["le"].replace("+Inf", "inf")))
    want = {round(0.002 * 2 ** k, 6) for k in range(10)} | {float("inf")}
    assert {round(x, 6) for x in les} == want, f"Kyma's buckets 0.002 * 2^n, n = 0..9: {sorted(les)}"
    assert env.evd.stop() == 0


def test_the_type_kyma_sinks_see_and_tracing_headers(tmp):
    env = Env(tmp)
    sink = track(Sink())
    # standard: Kyma's cleaner drops the '*' from the subject, the sink sees the type as published.
    subscribe(env, "std", sink.url + "/std", types=["order.payment*success.v1"])
    # prefixed (exact): the sink sees the cleaned type and no originaltype.
    subscribe(env, "pfx", sink.url + "/pfx", types=["sap.kyma.custom.testapp.order.created.v1"],
              matching="exact")
    tracing = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
               "tracestate": "congo=t61rcWkgMzE", "X-B3-TraceId": "80f198ee56343ba864fe8b2a57d3eff7",
               "X-B3-ParentSpanId": "05e3ac9a4f6e3b90", "X-B3-SpanId": "e457b5a2e4d86bd1",
               "X-B3-Sampled": "1", "X-B3-Flags": "0"}
    publish_ok(env.evd, "s1", type_="order.payment*success.v1", extra=tracing)
    publish_ok(env.evd, "p1", type_="sap.kyma.custom.te--s__t!!a@@p##p.order.created.v1", source="legacy")

    std = sink.wait_requests(1, scaled(15), path="/std")[0]
    ce = std.ce()
    assert ce["type"] == "order.payment*success.v1", std.headers
    assert ce["originaltype"] == "order.payment*success.v1", std.headers
    for name, value in tracing.items():
        assert std.header(name) == value, (name, std.headers)
    # As Kyma: the tracing extensions travel as these headers only, not also as ce- attributes.
    assert not {"traceparent", "tracestate", "b3traceid", "b3spanid"} & set(ce), std.headers
    pfx = sink.wait_requests(1, scaled(15), path="/pfx")[0]
    ce = pfx.ce()
    assert ce["type"] == "sap.kyma.custom.testapp.order.created.v1", pfx.headers
    assert "originaltype" not in ce, pfx.headers
    for name in tracing:
        assert pfx.header(name) is None, ("no tracing header when the event has none", pfx.headers)
    assert env.evd.stop() == 0


def test_large_and_chunked_answers_are_read_and_the_connection_reused(tmp):
    env = Env(tmp)
    big = track(Sink(default=Reply(200, body=b"y" * (2 << 20))))
    # Its own origin, so its requests cannot borrow the other sink's pooled connections.
    chunked = track(Sink(default=Reply(200, headers={"Transfer-Encoding": "chunked"},
                                       body=b"5\r\nhello\r\n0\r\n\r\n", raw_body=True)))
    subscribe(env, "big", big.url + "/big", config={"maxInFlightMessages": 1})
    subscribe(env, "chunked", chunked.url + "/chunked", config={"maxInFlightMessages": 1})
    ids = [f"b-{i}" for i in range(5)]
    for id_ in ids:
        publish_ok(env.evd, id_)
    big.wait_ids(ids, scaled(20), path="/big")
    chunked.wait_ids(ids, scaled(20), path="/chunked")
    for name in ("big", "chunked"):
        wait_for(lambda: settled(env, consumer_name("default", name, "kyma.commerce.order.created.v1")),
                 scaled(10), what=f"{name} settled")
        d = wait_delivery(env.evd, "default", name, lambda d: d["delivered"] == 5)
        assert d["failed"] == 0 and d["retries"] == 0, d
    assert sorted(big.ids("/big")) == ids and sorted(chunked.ids("/chunked")) == ids, "duplicates"
    # A chunked answer, read to its end, leaves the connection reusable: one request at a time
    # (maxInFlightMessages 1), all on one kept-alive connection.
    assert chunked.connections == 1, (chunked.connections, chunked.received("/chunked"))
    assert env.evd.stop() == 0


def test_sigterm_finishes_in_flight_and_naks_the_rest(tmp):
    env = Env(tmp, config={"dispatch": {"ack_wait": "30s", "timeout": "20s", "drain_timeout": "5s"}})
    sink = track(Sink(default=Reply(200, delay=1.0)))
    # Two slots for three types: JetStream hands eventingd two per type (MaxAckPending), two are
    # sent, four are held.
    subscribe(env, "term", sink.url + "/term", types=TYPES3, config={"maxInFlightMessages": 2})
    ids = [f"t-{t}-{i}" for t in TYPES3 for i in range(4)]
    for id_ in ids:
        publish_ok(env.evd, id_, type_=id_.split("-")[1])
    sink.wait_requests(2, scaled(10), path="/term")
    cnames = [consumer_name("default", "term", f"kyma.commerce.{t}") for t in TYPES3]
    wait_for(lambda: sum(env.nc.consumer(c)["num_ack_pending"] for c in cnames) == 6, scaled(10),
             what="six handed to eventingd: two sent, four held")
    t0 = time.monotonic()
    assert env.evd.stop(scaled(30)) == 0
    stopped = time.monotonic() - t0
    # The attempts in progress were answered (not cut off) and acked.
    first = sink.received("/term")
    assert first and all(r.status == 200 for r in first), first
    assert stopped < 5 + scaled(3), f"SIGTERM took {stopped:.1f}s with drain_timeout 5s"
    sink.default = Reply(200)
    env.start()
    t1 = time.monotonic()
    # The held ones were NAKed at shutdown: redelivered at once, not after ack_wait (30 s).
    sink.wait_ids(ids, scaled(15), path="/term")
    assert time.monotonic() - t1 < scaled(15)
    got = sink.ids("/term")
    assert sorted(got) == sorted(ids), f"delivered twice: {sorted(i for i in set(got) if got.count(i) > 1)}"
    assert env.evd.stop() == 0


def test_sigterm_past_drain_timeout_requeues_the_attempts(tmp):
    env = Env(tmp, config={"dispatch": {"ack_wait": "30s", "timeout": "20s", "drain_timeout": "1s"}})
    sink = track(Sink())
    sink.script("/cut", Reply(200, delay=4), Reply(200, delay=4), default=Reply(200))
    subscribe(env, "cut", sink.url + "/cut", config={"maxInFlightMessages": 2})
    ids = [f"c-{i}" for i in range(4)]
    for id_ in ids:
        publish_ok(env.evd, id_)
    sink.wait_requests(2, scaled(10), path="/cut")
    t0 = time.monotonic()
    assert env.evd.stop(scaled(30)) == 0
    assert time.monotonic() - t0 < 1 + scaled(3), "SIGTERM waited past dispatch.drain_timeout"
    env.start()
    # The two attempts cut off at the drain deadline were not acked: they come back at once (a NAK),
    # not after ack_wait (30 s), and are answered this time.
    t1 = time.monotonic()
    sink.wait_ids(ids, scaled(15), path="/cut")
    assert time.monotonic() - t1 < scaled(15)
    assert env.evd.stop() == 0


def test_eventingd_display_prints_what_is_delivered(tmp):
    # The README's sandbox tour: publish -> delivered -> printed by `eventingd display`.
    from test_cli import Display
    env = Env(tmp)
    d = track(Display(tmp))
    subscribe(env, "show", d.url + "/")
    subscribe(env, "show-structured", d.url + "/s", config={"contentMode": "STRUCTURED"})
    publish_ok(env.evd, "D-1", b'{"id": 12345678901234567890}', extra={"ce-tenant": "acme%20corp"})
    evs = d.wait_events(2)
    binary = [e for e in evs if "binary mode, POST / from 127.0.0.1:" in e]
    structured = [e for e in evs if "structured mode, POST /s from 127.0.0.1:" in e]
    assert len(binary) == 1 and len(structured) == 1, evs
    for ev in binary + structured:
        lines = ev.splitlines()
        for line in ("  type: order.created.v1", "  source: commerce", "  id: D-1", "  tenant: acme corp",
                     "  originaltype: order.created.v1", '    "id": 12345678901234567890'):
            assert line in lines, (line, ev)
    assert d.stop() == 0
    assert env.evd.stop() == 0


def structured_body(r):
    ct = r.header("Content-Type") or ""
    assert ct.split(";")[0].strip() == "application/cloudevents+json", r.headers
    assert r.header("Content-Length") == str(len(r.body)) and not r.chunked, r.headers
    return json.loads(r.body)


def test_structured_mode_data_byte_exact(tmp):
    env = Env(tmp)
    sink = track(Sink())
    subscribe(env, "st", sink.url + "/st", config={"contentMode": "STRUCTURED"})
    data = b'{ "n": 12345678901234567890, "f": 1.50e3,  "s":"\\u00e9" }'
    publish_ok(env.evd, "j%201", data, extra={"ce-myext": "x%20y", "ce-time": "2026-12-01T10:00:00Z"})
    octets = bytes(range(256))
    publish_ok(env.evd, "o1", octets, ct="application/octet-stream")
    publish_ok(env.evd, "t1", "héllo \"x\"\n".encode(), ct="text/plain; charset=utf-8")

    reqs = {json.loads(r.body)["id"]: r for r in sink.wait_requests(3, scaled(15), path="/st")}
    r = reqs["j 1"]
    ev = structured_body(r)
    assert ev["specversion"] == "1.0" and ev["source"] == "commerce" and ev["type"] == "order.created.v1", ev
    assert ev["originaltype"] == "order.created.v1" and ev["myext"] == "x y", ev
    assert ev["time"] == "2026-12-01T10:00:00Z" and ev["datacontenttype"] == "application/json", ev
    # data is the stored bytes, not re-printed through a JSON library.
    m = re.search(rb'"data"\s*:\s*', r.body)
    assert m and r.body[m.end():m.end() + len(data)] == data, r.body
    assert not any(k.lower().startswith("ce-") for k in r.names()), r.headers

    ev = structured_body(reqs["o1"])
    assert base64.b64decode(ev["data_base64"]) == octets and "data" not in ev, ev
    ev = structured_body(reqs["t1"])
    assert ev["data"] == "héllo \"x\"\n" and ev["datacontenttype"] == "text/plain; charset=utf-8", ev
    assert env.evd.stop() == 0


# ---- outcomes ------------------------------------------------------------------------------

def test_retry_then_success_and_retry_after(tmp):
    env = Env(tmp, config={"dispatch": {"backoff": {"max": "5s"}}})
    sink = track(Sink())
    sink.script("/r", Reply(500), Reply(503, retry_after=2), Reply(429), Reply(408), Reply(502, close=True),
                default=Reply(200))
    subscribe(env, "r", sink.url + "/r")
    cname = consumer_name("default", "r", "kyma.commerce.order.created.v1")
    publish_ok(env.evd, "retry-1")
    reqs = sink.wait_requests(6, scaled(30), path="/r")
    assert {r.header("ce-id") for r in reqs} == {"retry-1"}, reqs
    # Retry-After: 2 is a floor: the third attempt not before 2 s after the second was answered.
    gap = reqs[2].arrived - reqs[1].answered
    assert gap >= 1.95, f"third attempt {gap:.2f}s after a 503 with Retry-After: 2"
    wait_for(lambda: settled(env, cname), scaled(10), what="consumer settled")
    sink.quiet(scaled(1), path="/r")
    assert [r.status for r in sink.received("/r")] == [500, 503, 429, 408, None, 200]
    d = wait_delivery(env.evd, "default", "r", lambda d: d["delivered"] == 1)
    # The close without an answer may be resent at once on a fresh connection (it cannot be told
    # from a keep-alive connection the sink closed), so it need not count as an attempt.
    assert d["retries"] >= 4 and d["failed"] == 0, d
    text = metrics(env.evd)
    lines = [l for l in text.splitlines() if "per_subscription" in l]
    for code in ("503", "429", "408", "200"):
        assert metric_sum(text, "eventing_ec_nats_delivery_per_subscription_total", subscription_name="r",
                          response_code=code) == 1, (code, lines)
    # Kyma counts an attempt without a response as 500: the close may be one of them.
    assert metric_sum(text, "eventing_ec_nats_delivery_per_subscription_total", subscription_name="r",
                      response_code="500") in (1, 2), lines
    assert env.evd.stop() == 0


def test_retry_after_capped_by_retry_max_delay(tmp):
    env = Env(tmp)
    sink = track(Sink())
    sink.script("/cap", Reply(503, retry_after=3600), default=Reply(204))
    subscribe(env, "cap", sink.url + "/cap", config={"retryBackoff": "100ms", "retryMaxDelay": "1s"})
    publish_ok(env.evd, "cap-1")
    reqs = sink.wait_requests(2, scaled(15), path="/cap", what="the retry within retryMaxDelay, not in an hour")
    assert reqs[1].arrived - reqs[0].answered >= 0.5, "Retry-After is a floor (capped at 1 s), not ignored"
    assert env.evd.stop() == 0


def test_timeout_is_retried(tmp):
    env = Env(tmp, config={"dispatch": {"ack_wait": "4s", "timeout": "1s"}})
    sink = track(Sink())
    sink.script("/slow", Reply(200, delay=2.5), default=Reply(200))
    subscribe(env, "to", sink.url + "/slow")
    publish_ok(env.evd, "to-1")
    reqs = sink.wait_requests(2, scaled(15), path="/slow")
    # The first attempt was given up after dispatch.timeout, before the sink answered it.
    assert reqs[1].arrived - reqs[0].arrived >= 0.9, reqs
    d = wait_delivery(env.evd, "default", "to", lambda d: d["delivered"] == 1)
    assert d["retries"] >= 1 and d["failed"] == 0, d
    assert env.evd.stop() == 0


def test_4xx_and_3xx_are_permanent_at_once(tmp):
    env = Env(tmp)
    sink = track(Sink())
    sink.script("/bad", default=Reply(400, body=b"no"))
    sink.script("/gone", default=Reply(410))
    sink.script("/moved", default=Reply(301, headers={"Location": sink.url + "/else"}))
    sink.script("/else", default=Reply(200))
    subscribe(env, "bad", sink.url + "/bad")
    subscribe(env, "gone", sink.url + "/gone")
    subscribe(env, "moved", sink.url + "/moved")
    publish_ok(env.evd, "p-1")
    for path in ("/bad", "/gone", "/moved"):
        sink.wait_requests(1, scaled(15), path=path)
    for name in ("bad", "gone", "moved"):
        wait_for(lambda: settled(env, consumer_name("default", name, "kyma.commerce.order.created.v1")),
                 scaled(10), what=f"{name}'s message terminated")
        d = wait_delivery(env.evd, "default", name, lambda d: d["failed"] == 1)
        assert d["delivered"] == 0 and d["lastFailure"] and d["lastFailureReason"], d
    sink.quiet(scaled(2))
    for path in ("/bad", "/gone", "/moved"):
        assert len(sink.received(path)) == 1, (path, sink.received(path))
    assert sink.received("/else") == [], "a redirect was followed"
    text = metrics(env.evd)
    assert metric_sum(text, "eventing_ec_nats_delivery_per_subscription_total", subscription_name="bad",
                      response_code="400") == 1
    assert env.evd.stop() == 0


def test_exactly_max_deliver_attempts(tmp):
    env = Env(tmp)
    sink = track(Sink(default=Reply(500)))
    subscribe(env, "md", sink.url + "/md", config={"maxDeliver": "3", "retryBackoff": "100ms",
                                                    "retryMaxDelay": "300ms"})
    cname = consumer_name("default", "md", "kyma.commerce.order.created.v1")
    publish_ok(env.evd, "md-1")
    sink.wait_requests(3, scaled(15), path="/md")
    wait_for(lambda: settled(env, cname), scaled(10), what="terminated after 3 attempts")
    d = wait_delivery(env.evd, "default", "md", lambda d: d["failed"] == 1)
    sink.quiet(scaled(2), path="/md")
    assert len(sink.received("/md")) == 3, sink.received("/md")
    assert d["delivered"] == 0 and d["retries"] == 2, d
    assert d["lastFailureReason"] and d["lastFailure"], d
    assert env.evd.stop() == 0


# ---- limits --------------------------------------------------------------------------------

TYPES3 = ["order.created.v1", "order.paid.v1", "order.shipped.v1"]


def test_max_in_flight_exact_across_types(tmp):
    env = Env(tmp)
    sink = track(Sink(default=Reply(204, delay=0.4)))
    subscribe(env, "mif", sink.url + "/mif", types=TYPES3, config={"maxInFlightMessages": 5})
    ids = []
    for t in TYPES3:
        for i in range(10):
            ids.append(f"{t}-{i}")
            publish_ok(env.evd, ids[-1], type_=t)
    sink.wait_ids(ids, scaled(60), path="/mif")
    # Each consumer may hand out 5 (MaxAckPending), 15 in all: the dispatcher holds the rest.
    assert sink.max_concurrent("/mif") == 5, f"max concurrency at the sink {sink.max_concurrent('/mif')}, limit 5"
    for t in TYPES3:
        wait_for(lambda: settled(env, consumer_name("default", "mif", f"kyma.commerce.{t}")), scaled(10))
    assert sorted(sink.ids("/mif")) == sorted(ids), "duplicates"
    assert env.evd.stop() == 0


def test_slow_sink_held_messages_get_wpi_and_no_duplicate(tmp):
    # ack_wait 2 s; the sink takes 0.6 x ack_wait (> ack_wait/2); one slot for two types: each
    # message waits for the slot while the other type's is sent, so it lives ~1.2 x ack_wait, past
    # ack_wait, and only +WPI keeps JetStream from redelivering it.
    ack_wait = int(2000 * TIME_SCALE)  # slower builds get a proportionally slower sink
    env = Env(tmp, config={"dispatch": {"ack_wait": f"{ack_wait}ms", "timeout": f"{ack_wait - 100}ms"}})
    sink = track(Sink(default=Reply(204, delay=0.6 * ack_wait / 1000)))
    types = TYPES3[:2]
    subscribe(env, "slow", sink.url + "/slow", types=types, config={"maxInFlightMessages": 1})
    ids = []
    for i in range(3):
        for t in types:
            ids.append(f"{t}-{i}")
            publish_ok(env.evd, ids[-1], type_=t)
    sink.wait_ids(ids, scaled(40), path="/slow")
    for t in types:
        cname = consumer_name("default", "slow", f"kyma.commerce.{t}")
        c = wait_for(lambda: settled(env, cname), scaled(10), what="consumer settled")
        # consumer_seq counts every delivery, redeliveries included.
        assert c["delivered"]["consumer_seq"] == 3, (t, c["delivered"], "JetStream redelivered")
    sink.quiet(scaled(3), path="/slow")
    assert sorted(sink.ids("/slow")) == sorted(ids), f"duplicate deliveries: {sink.ids('/slow')}"
    assert sink.max_concurrent("/slow") == 1
    assert env.evd.stop() == 0


# ---- availability --------------------------------------------------------------------------

def test_sink_down_then_back(tmp):
    env = Env(tmp)
    sink = track(Sink())
    port = sink.port
    subscribe(env, "db", sink.url + "/db", config={"maxInFlightMessages": 5})
    publish_ok(env.evd, "before")
    sink.wait_ids(["before"], scaled(10))
    sink.close()
    ids = [f"down-{i}" for i in range(20)]
    for id_ in ids:
        publish_ok(env.evd, id_)
    # Attempts fail (connection refused) and are retried.
    wait_delivery(env.evd, "default", "db", lambda d: d["retries"] >= 5, timeout=20, what="retries while down")
    sink2 = track(Sink(port=port))
    sink2.wait_ids(ids, scaled(30), path="/db")
    wait_for(lambda: settled(env, consumer_name("default", "db", "kyma.commerce.order.created.v1")), scaled(10))
    d = delivery(env.evd, "default", "db")
    assert d["delivered"] == 21 and d["inFlight"] == 0, d
    assert env.evd.stop() == 0


def stream_through(env, sink, path, disrupt, n=100, rate=60, prefix="m-"):
    """Publishes at `rate`/s: n events answered 204, then disrupt() (which returns when the
    component is back), then until n more are answered 204; checks that every event answered 204
    reached the sink."""
    pub = Publisher(env.evd, 100000, rate, prefix)
    pub.start()
    pub.wait_ok(n, scaled(30))
    disrupt()
    pub.wait_ok(len(pub.ok) + n, scaled(60))
    ok = pub.finish(scaled(30))
    sink.wait_ids(ok, scaled(60), path=path)
    mine = [i for i in sink.ids(path, OK) if i.startswith(prefix)]
    print(f"  {len(ok)} stored, {len(pub.failed)} refused during the outage, {len(set(mine))} delivered, "
          f"{len(mine) - len(set(mine))} of them twice")
    return ok


def test_eventingd_restart_mid_stream_loses_nothing(tmp):
    env = Env(tmp)
    sink = track(Sink(default=Reply(204, delay=0.02)))
    subscribe(env, "rs", sink.url + "/rs", config={"maxInFlightMessages": 20})

    def restart(sig):
        def do():
            if sig == signal.SIGTERM:
                assert env.evd.stop(scaled(30)) == 0
            else:
                env.evd.kill()
            env.evd.start()
            env.evd.wait_ready(scaled(30))
        return do
    stream_through(env, sink, "/rs", restart(signal.SIGTERM), prefix="term-")
    stream_through(env, sink, "/rs", restart(signal.SIGKILL), prefix="kill-")
    assert env.evd.stop() == 0


def test_eventingd_frozen_past_ack_wait_loses_nothing(tmp):
    # SIGSTOP for longer than ack_wait: JetStream redelivers what eventingd held and had in flight
    # while it cannot answer; after SIGCONT old and new copies of the same stream sequences meet
    # in the dispatcher. Nothing may be lost or left unsettled.
    env = Env(tmp, config={"dispatch": {"ack_wait": "2s", "timeout": "1500ms"}})
    sink = track(Sink(default=Reply(204, delay=0.05)))
    subscribe(env, "fz", sink.url + "/fz", types=TYPES3[:2], config={"maxInFlightMessages": 5})

    def freeze():
        env.evd.signal(signal.SIGSTOP)
        time.sleep(3.5)
        env.evd.signal(signal.SIGCONT)
    pub = Publisher(env.evd, 100000, 60, "fz-", type_=TYPES3[0])
    pub.start()
    pub.wait_ok(60, scaled(30))
    freeze()
    pub.wait_ok(len(pub.ok) + 60, scaled(60))
    ok = pub.finish(scaled(30))
    sink.wait_ids(ok, scaled(60), path="/fz")
    wait_for(lambda: settled(env, consumer_name("default", "fz", f"kyma.commerce.{TYPES3[0]}")), scaled(30),
             what="consumer settled after the freeze")
    got = sink.ids("/fz", OK)
    print(f"  {len(ok)} stored, {len(set(got))} delivered, {len(got) - len(set(got))} twice")
    assert env.evd.stop() == 0


def test_external_nats_server_kill9_mid_stream_loses_nothing(tmp):
    env = Env(tmp)
    sink = track(Sink())
    subscribe(env, "nk", sink.url + "/nk", config={"maxInFlightMessages": 20})

    def kill9():
        env.reset_nc()
        env.nats.stop(signal.SIGKILL)
        time.sleep(0.5)
        env.nats.start()
    stream_through(env, sink, "/nk", kill9)
    wait_for(lambda: settled(env, consumer_name("default", "nk", "kyma.commerce.order.created.v1")), scaled(20))
    assert env.evd.stop() == 0


def test_embedded_nats_server_kill9_mid_stream_loses_nothing(tmp):
    env = Env(tmp, embedded=True)
    sink = track(Sink())
    subscribe(env, "ek", sink.url + "/ek", config={"maxInFlightMessages": 20})
    child = env.evd.backend()["embedded"]["pid"]
    assert child > 0

    def kill9():
        os.kill(child, signal.SIGKILL)
    stream_through(env, sink, "/ek", kill9)
    assert env.evd.backend()["embedded"]["restarts"] >= 1
    assert env.evd.stop() == 0


def test_sink_changed_under_load(tmp):
    env = Env(tmp)
    a, b = track(Sink()), track(Sink())
    subscribe(env, "mv", a.url + "/a", config={"maxInFlightMessages": 10})
    pub = Publisher(env.evd, 100000, 50, "mv-")
    pub.start()
    pub.wait_ok(50, scaled(30))
    write(env.evd, "mv.yaml", manifest("mv", b.url + "/b", config={"maxInFlightMessages": 10}))
    wait_for(lambda: sink_of(item(env.evd, "default", "mv")) == b.url + "/b", scaled(10), interval=0.02,
             what="the new sink applied")
    applied = time.monotonic()
    pub.wait_ok(len(pub.ok) + 50, scaled(30))
    # SIGHUP back to the first sink's origin (a rescan that finds the file changed).
    write(env.evd, "mv.yaml", manifest("mv", a.url + "/a2", config={"maxInFlightMessages": 10}))
    env.evd.signal(signal.SIGHUP)
    wait_for(lambda: sink_of(item(env.evd, "default", "mv")) == a.url + "/a2", scaled(10), interval=0.02)
    applied2 = time.monotonic()
    pub.wait_ok(len(pub.ok) + 50, scaled(30))
    ok = pub.finish(scaled(30))
    assert not pub.failed, pub.failed[:5]
    got = set()

    def all_in():
        got.update(a.ids("/a", OK), b.ids("/b", OK), a.ids("/a2", OK))
        return set(ok) <= got
    wait_for(all_in, scaled(30), what="every event at one of the sinks")
    # Sent after the change was visible in the status: never delivered to the old sink.
    late = [i for i in ok if applied < pub.sent_at[i] < applied2]
    late2 = [i for i in ok if pub.sent_at[i] > applied2]
    assert len(late) >= 40 and len(late2) >= 40, (len(late), len(late2))
    assert not set(late) & set(a.ids("/a")), "events published after the change went to the old sink"
    assert set(late) <= set(b.ids("/b")) | set(a.ids("/a2")), "events published after the change missing"
    assert not set(late2) & (set(a.ids("/a")) | set(b.ids("/b"))), "after the second change: an old sink"
    print(f"  {len(set(a.ids('/a')))} to the first sink, {len(set(b.ids('/b')))} to the second, "
          f"{len(set(a.ids('/a2')))} to the third")
    assert env.evd.stop() == 0


def test_removed_subscription_stops_deliveries(tmp):
    env = Env(tmp)
    sink = track(Sink())
    subscribe(env, "keep", sink.url + "/keep")
    subscribe(env, "drop", sink.url + "/drop")
    for i in range(3):
        publish_ok(env.evd, f"one-{i}")
    sink.wait_ids([f"one-{i}" for i in range(3)], scaled(10), path="/drop")
    os.unlink(os.path.join(env.evd.subs_dir, "drop.yaml"))
    wait_for(lambda: item(env.evd, "default", "drop") is None, scaled(10), what="drop removed")
    later = [f"two-{i}" for i in range(5)]
    for id_ in later:
        publish_ok(env.evd, id_)
    sink.wait_ids(later, scaled(10), path="/keep")
    sink.quiet(scaled(2), path="/drop")
    assert not set(later) & set(sink.ids("/drop")), "a removed subscription still delivers"
    assert env.evd.stop() == 0


def test_non_cloudevent_is_permanent_and_blocks_nothing(tmp):
    env = Env(tmp)
    sink = track(Sink())
    # One slot: a message that is never settled would stop everything behind it.
    subscribe(env, "nc", sink.url + "/nc", config={"maxInFlightMessages": 1})
    cname = consumer_name("default", "nc", "kyma.commerce.order.created.v1")
    subject = "kyma.commerce.order.created.v1"
    ack = env.nc.js_publish(subject, b"not a cloud event")
    assert ack.get("stream") == "sap", ack
    ack = env.nc.js_publish(subject, b"{}", {"ce-id": "x", "ce-source": "commerce"})  # no specversion, type
    assert ack.get("stream") == "sap", ack
    ids = [f"ok-{i}" for i in range(3)]
    for id_ in ids:
        publish_ok(env.evd, id_)
    sink.wait_ids(ids, scaled(15), path="/nc")
    wait_for(lambda: settled(env, cname), scaled(10), what="the non-CloudEvents terminated")
    d = wait_delivery(env.evd, "default", "nc", lambda d: d["failed"] == 2 and d["delivered"] == 3)
    assert d["lastFailureReason"], d
    assert all(r.header("ce-id") in ids for r in sink.received("/nc")), sink.received("/nc")
    assert env.evd.stop() == 0


def test_thousand_subscriptions_deliver_at_once(tmp):
    env = Env(tmp, config={"log": {"level": "info"}})
    sink = track(Sink())
    for i in range(100):
        docs = [manifest(f"s{i:03d}-{j}", f"{sink.url}/s{i:03d}-{j}") for j in range(10)]
        write(env.evd, f"f{i:03d}.yaml", "---\n".join(docs))

    def all_ready():
        status, _, body = http_request("GET", env.evd.admin + "/v1/subscriptions")
        s = json.loads(body)["summary"]
        return s["subscriptions"] == 1000 and s["ready"] == 1000
    wait_for(all_ready, scaled(90), interval=0.2, what="1,000 subscriptions ready")
    t0 = time.monotonic()
    ids = [f"k-{i}" for i in range(3)]
    for id_ in ids:
        publish_ok(env.evd, id_)
    sink.wait_requests(3000, scaled(120), pred=lambda r: r.status in OK, what="3,000 deliveries")
    took = time.monotonic() - t0
    paths = {}
    for r in sink.received():
        if r.status in OK:
            paths.setdefault(r.path, set()).add(r.header("ce-id"))
    assert len(paths) == 1000, len(paths)
    assert all(v == set(ids) for v in paths.values()), [p for p, v in paths.items() if v != set(ids)][:5]
    print(f"  3 events x 1,000 subscriptions delivered in {took:.2f}s; "
          f"{sink.connections} connections, max {sink.max_concurrent()} requests at once")
    assert env.evd.stop(scaled(60)) == 0


if __name__ == "__main__":
    run_tests(globals())
