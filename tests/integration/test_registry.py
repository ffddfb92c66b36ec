#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The subscription registry end to end: files in subscriptions.dir while eventingd runs, the
durable consumers a real nats-server holds for them (inspected with our own small NATS client),
the status API, restarts (re-binding, pruning), 1,000 subscriptions, SIGHUP, `eventingd check`
and `eventingd status`."""
import hashlib
import json
import os
import re
import signal
import socket
import threading
import time

from evd_harness import (Eventingd, NatsServer, eventingd_cli, http_request, run_tests, scaled,
                         track, wait_for)

STREAM = "sap"


class NatsClient:
    """Just enough of the NATS protocol for JetStream API requests (standard library only)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 5)
        self.rfile = self.sock.makefile("rb")
        self.rfile.readline()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                          b'"no_responders":true}\r\nSUB _INBOX.evdtest.* 1\r\nPING\r\n')
        while self.rfile.readline().strip() != b"PONG":
            pass
        self.n = 0

    def close(self):
        self.sock.close()

    def request(self, subject, payload=None, timeout=5):
        self.n += 1
        inbox = f"_INBOX.evdtest.{self.n}"
        data = json.dumps(payload).encode() if payload is not None else b""
        self.sock.sendall(f"PUB {subject} {inbox} {len(data)}\r\n".encode() + data + b"\r\n")
        self.sock.settimeout(timeout)
        while True:
            line = self.rfile.readline()
            if not line:
                raise AssertionError("NATS connection closed")
            parts = line.split()
            if parts[0] == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif parts[0] == b"MSG":
                body = self.rfile.read(int(parts[-1]) + 2)[:-2]
                if parts[1].decode() == inbox:
                    return json.loads(body)
            elif parts[0] == b"HMSG":
                self.rfile.read(int(parts[-1]) + 2)
                if parts[1].decode() == inbox:
                    raise AssertionError(f"no responders for {subject}")
            elif parts[0] == b"-ERR":
                raise AssertionError(line)

    def consumers(self, stream=STREAM):
        out, offset = {}, 0
        while True:
            r = self.request(f"$JS.API.CONSUMER.LIST.{stream}", {"offset": offset})
            if "error" in r:
                return {}
            for c in r.get("consumers") or []:
                out[c["name"]] = c
            offset += len(r.get("consumers") or [])
            if not r.get("consumers") or offset >= r["total"]:
                return out

    def create_consumer(self, name, config, stream=STREAM):
        config = dict(config, durable_name=name)
        r = self.request(f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{name}",
                         {"stream_name": stream, "config": config})
        assert "error" not in r, r
        return r

    def publish(self, subject, data=b"{}"):
        # A CloudEvent in the NATS binding, as eventingd stores it: the dispatcher retries it
        # against the tests' refusing sinks (anything else it would terminate at once).
        self.seq = getattr(self, "seq", 0) + 1
        hdr = (f"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: reg-{self.seq}\r\nce-source: commerce\r\n"
               f"ce-type: order.created.v1\r\n\r\n").encode()
        self.sock.sendall(f"HPUB {subject} {len(hdr)} {len(hdr) + len(data)}\r\n".encode() + hdr + data +
                          b"\r\nPING\r\n")
        while self.rfile.readline().strip() != b"PONG":
            pass

    def stream_exists(self, stream=STREAM):
        return "error" not in self.request(f"$JS.API.STREAM.INFO.{stream}")


def consumer_name(ns, name, subject):
    return hashlib.sha256(f"{ns}/{name}/{subject}".encode()).hexdigest()[:32]


def manifest(name, types=("order.created.v1",), source="commerce", sink="http://127.0.0.1:1/",
             ns=None, mif=None, matching=None):
    lines = ["apiVersion: eventing.kyma-project.io/v1alpha2", "kind: Subscription", "metadata:",
             f"  name: {name}"]
    if ns:
        lines.append(f"  namespace: {ns}")
    lines += ["spec:", f"  source: {source}", "  types:"]
    lines += [f"    - {t}" for t in types]
    lines.append(f"  sink: {sink}")
    if matching:
        lines.append(f"  typeMatching: {matching}")
    if mif is not None:
        lines += ["  config:", f'    maxInFlightMessages: "{mif}"']
    return "\n".join(lines) + "\n"


def write(path, text):
    # Write then rename, as editors and config managers do.
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def subs(evd):
    status, _, body = http_request("GET", evd.admin + "/v1/subscriptions")
    assert status == 200, (status, body)
    return json.loads(body)


def sub(evd, ns, name):
    status, _, body = http_request("GET", f"{evd.admin}/v1/subscriptions/{ns}/{name}")
    if status == 404:
        return None
    assert status == 200, (status, body)
    return json.loads(body)


def ready(evd, ns, name):
    """The item once its status says ready, else None."""
    s = sub(evd, ns, name)
    return s if s and s["status"]["ready"] else None


def start_external(tmp, config=None, name="evd"):
    # Deletions wait subscriptions.delete_grace (10 s by default): 1 s keeps the tests short.
    config = dict(config or {})
    config["subscriptions"] = dict({"delete_grace": "1s"}, **config.get("subscriptions", {}))
    nats = track(NatsServer(tmp)).start()
    evd = track(Eventingd(tmp, nats_url=nats.url, config=config, name=name))
    return nats, evd


def client(nats):
    return track(NatsClient(nats.port))


SUBJECT = "kyma.commerce.order.created.v1"


def test_add_edit_break_fix_delete(tmp):
    nats, evd = start_external(tmp)
    evd.start()
    evd.wait_ready()
    nc = client(nats)
    a = os.path.join(evd.subs_dir, "a.yaml")
    b = os.path.join(evd.subs_dir, "b.yaml")
    write(b, manifest("other", types=["thing.happened.v1"], source="shop"))
    write(a, manifest("orders", ns="team", sink="http://127.0.0.1:1/one"))
    cname = consumer_name("team", "orders", SUBJECT)
    t0 = time.monotonic()
    c = wait_for(lambda: nc.consumers().get(cname), 10, what="consumer of team/orders")
    print(f"  file -> consumer in {time.monotonic() - t0:.2f}s")
    cfg = c["config"]
    assert cfg["durable_name"] == cname, cfg
    assert cfg["description"] == f"team/orders/{SUBJECT}", cfg
    assert cfg["filter_subject"] == SUBJECT, cfg
    assert cfg["max_ack_pending"] == 10, cfg
    assert cfg["deliver_group"] == "eventingd", cfg
    assert cfg["deliver_subject"] == "_EVD.deliver." + cname, cfg
    assert cfg["ack_policy"] == "explicit" and cfg["deliver_policy"] == "new", cfg
    assert cfg["ack_wait"] == 30 * 10**9 and cfg["max_deliver"] == 110, cfg
    assert not cfg.get("flow_control") and not cfg.get("idle_heartbeat"), cfg
    created = c["created"]

    s = wait_for(lambda: ready(evd, "team", "orders"),
                 5, what="team/orders ready")
    cond = s["status"]["conditions"][0]
    assert cond == {**cond, "type": "Subscription spec valid", "status": "True",
                    "reason": "Subscription spec has no validation errors"}, s
    assert s["status"]["conditions"][1]["type"] == "Subscription active", s
    assert s["status"]["conditions"][1]["status"] == "True", s
    assert s["status"]["conditions"][1]["reason"] == "NATS Subscription active", s
    assert s["status"]["types"] == [{"originalType": "order.created.v1", "cleanType": "order.created.v1"}], s
    assert s["status"]["backend"]["types"] == [{"originalType": "order.created.v1", "consumerName": cname}], s
    # Kyma's Subscription resource as kubectl prints it: the spec as written, the file position
    # in annotations (strings, as every annotation).
    assert s["apiVersion"] == "eventing.kyma-project.io/v1alpha2" and s["kind"] == "Subscription", s
    assert s["metadata"]["name"] == "orders" and s["metadata"]["namespace"] == "team", s
    ann = s["metadata"]["annotations"]
    assert ann["eventingd/file"] == a and ann["eventingd/line"] == "1", s
    assert s["spec"] == {"source": "commerce", "types": ["order.created.v1"],
                         "sink": "http://127.0.0.1:1/one"}, s
    assert s["status"]["config"] == {"maxInFlightMessages": 10, "contentMode": "BINARY"}, s
    (con,) = s["status"]["backend"]["consumers"]
    assert con["name"] == cname and con["numPending"] == 0 and con["numAckPending"] == 0, con
    assert con["refreshedAt"] and s["status"]["backend"]["refreshedAt"], s
    lst = subs(evd)
    assert lst["apiVersion"] == "v1" and lst["kind"] == "List", lst
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in lst["items"]] == \
        [("default", "other"), ("team", "orders")], lst
    assert s["status"]["lastError"] is None, s

    # Sink changed: same consumer, new sink in the status.
    write(a, manifest("orders", ns="team", sink="http://127.0.0.1:2/two"))
    wait_for(lambda: sub(evd, "team", "orders")["spec"]["sink"] == "http://127.0.0.1:2/two", 10, what="new sink")
    assert nc.consumers()[cname]["created"] == created

    # maxInFlightMessages changed: updated in place.
    write(a, manifest("orders", ns="team", sink="http://127.0.0.1:2/two", mif=25))
    c = wait_for(lambda: nc.consumers()[cname]["config"]["max_ack_pending"] == 25 and nc.consumers()[cname],
                 3, what="max_ack_pending 25")
    assert c["created"] == created
    assert wait_for(lambda: sub(evd, "team", "orders")["status"]["config"]["maxInFlightMessages"] == 25, 3)

    # Broken YAML: the previous version stays, the error names FILE:LINE:COL, b.yaml unaffected.
    write(a, manifest("orders", ns="team", sink="http://127.0.0.1:3/three") + "  extra: [\n")
    def failed_a():
        for f in subs(evd)["files"]:
            if f["file"].endswith("/a.yaml") and f["failed"]:
                return f
    f = wait_for(failed_a, 10, what="a.yaml failed")
    assert f["previousVersionActive"], f
    assert any(e.startswith(a + ":") and "YAML" in e for e in f["errors"]), f
    s = sub(evd, "team", "orders")
    assert s["spec"]["sink"] == "http://127.0.0.1:2/two" and s["status"]["ready"], s
    assert any("previous version" in w for w in s["status"]["warnings"]), s
    assert sub(evd, "default", "other")["status"]["ready"]
    assert subs(evd)["summary"]["filesFailed"] == 1

    # An invalid type, separately: exact position and field path.
    write(a, manifest("orders", ns="team", types=["order.created.v1", "nodots"]))
    f = wait_for(lambda: (failed_a() or {}).get("errors") and any("nodots" in e or "types[1]" in e
                                                                   for e in failed_a()["errors"]) and failed_a(),
                 3, what="invalid type reported")
    assert f"{a}:10:7: spec.types[1]: " in f["errors"][0] and "must have minimum 2 segments" in f["errors"][0], f
    assert sub(evd, "team", "orders")["spec"]["sink"] == "http://127.0.0.1:2/two"
    status, _, body = http_request("GET", evd.admin + "/metrics")
    assert b"eventingd_subscription_files_failed 1\n" in body, body

    # Fixed: applied (a second type: a second consumer).
    write(a, manifest("orders", ns="team", types=["order.created.v1", "order.paid.v1"], sink="http://127.0.0.1:4/"))
    c2 = consumer_name("team", "orders", "kyma.commerce.order.paid.v1")
    wait_for(lambda: c2 in nc.consumers(), 10, what="second consumer")
    wait_for(lambda: sub(evd, "team", "orders")["status"]["ready"] and subs(evd)["summary"]["filesFailed"] == 0, 3)
    assert nc.consumers()[cname]["created"] == created

    # Type removed: its consumer deleted. File deleted: everything deleted, 404.
    write(a, manifest("orders", ns="team", types=["order.paid.v1"], sink="http://127.0.0.1:4/"))
    wait_for(lambda: cname not in nc.consumers(), 10, what="removed type's consumer deleted")
    os.unlink(a)
    wait_for(lambda: c2 not in nc.consumers(), 10, what="deleted file's consumer deleted")
    wait_for(lambda: sub(evd, "team", "orders") is None, 3)
    status, hdrs, body = http_request("GET", evd.admin + "/v1/subscriptions/team/orders")
    assert status == 404 and hdrs["content-type"].startswith("application/json"), (status, body)
    assert json.loads(body) == {"error": "no subscription team/orders"}, body
    status, _, body = http_request("GET", evd.admin + "/v1/subscriptions/team")
    assert status == 404 and "namespace" in json.loads(body)["error"], (status, body)
    evd.wait_log("deleted consumer " + c2)
    assert consumer_name("default", "other", "kyma.shop.thing.happened.v1") in nc.consumers()
    status, _, body = http_request("GET", evd.admin + "/metrics")
    assert b'eventing_ec_subscription_status{subscription_name="other",subscription_namespace="default"' in body
    assert b'subscription_name="orders"' not in body.split(b"eventing_ec_event_type_subscribed_total")[0]
    assert evd.stop() == 0


def test_duplicate_name_first_wins(tmp):
    nats, evd = start_external(tmp)
    write(os.path.join(evd.subs_dir, "10-first.yaml"), manifest("dup", sink="http://127.0.0.1:1/first"))
    write(os.path.join(evd.subs_dir, "20-second.yaml"), manifest("dup", sink="http://127.0.0.1:1/second"))
    evd.start()
    evd.wait_ready()
    s = wait_for(lambda: sub(evd, "default", "dup"), 5)
    assert s["spec"]["sink"] == "http://127.0.0.1:1/first", s
    assert s["metadata"]["annotations"]["eventingd/file"].endswith("10-first.yaml"), s
    second = [f for f in subs(evd)["files"] if f["file"].endswith("20-second.yaml")][0]
    assert any("also defined in" in e and "10-first.yaml" in e for e in second["errors"]), second
    # The active one keeps winning over a newcomer that sorts first.
    write(os.path.join(evd.subs_dir, "05-zero.yaml"), manifest("dup", sink="http://127.0.0.1:1/zero"))
    zero = wait_for(lambda: [f for f in subs(evd)["files"] if f["file"].endswith("05-zero.yaml")], 3)[0]
    assert any("10-first.yaml" in e and "it was active first" in e for e in zero["errors"]), zero
    assert sub(evd, "default", "dup")["spec"]["sink"] == "http://127.0.0.1:1/first"
    assert evd.stop() == 0


def test_restart_rebinds_and_prunes_orphans_only(tmp):
    nats, evd = start_external(tmp, config={"subscriptions": {"prune_orphans": True}})
    write(os.path.join(evd.subs_dir, "a.yaml"), manifest("keep"))
    evd.start()
    evd.wait_ready()
    nc = client(nats)
    keep = consumer_name("default", "keep", SUBJECT)
    wait_for(lambda: keep in nc.consumers(), 5)
    created = nc.consumers()[keep]["created"]
    assert evd.stop() == 0

    # An orphan of ours (a subscription deleted while eventingd was down) and a foreign consumer.
    orphan_desc = "default/gone/kyma.commerce.order.created.v1"
    orphan = consumer_name("default", "gone", SUBJECT)
    nc.create_consumer(orphan, {"description": orphan_desc, "deliver_subject": "_EVD.deliver." + orphan,
                                "deliver_group": "eventingd", "ack_policy": "explicit",
                                "filter_subject": SUBJECT, "deliver_policy": "new"})
    foreign = consumer_name("default", "foreign", SUBJECT)
    nc.create_consumer(foreign, {"description": "default/foreign/" + SUBJECT, "deliver_subject": "_INBOX.kyma",
                                 "ack_policy": "explicit", "filter_subject": SUBJECT,
                                 "flow_control": True, "idle_heartbeat": 60 * 10**9})
    pull = "somebody-elses-pull"
    nc.create_consumer(pull, {"ack_policy": "explicit", "filter_subject": SUBJECT})
    evd.start()
    evd.wait_ready()
    wait_for(lambda: orphan not in nc.consumers(), 10, what="orphan pruned")
    cs = nc.consumers()
    assert cs[keep]["created"] == created, "re-bound, not re-created"
    assert foreign in cs and pull in cs, cs.keys()
    evd.wait_log("pruned orphan consumer " + orphan)
    assert wait_for(lambda: sub(evd, "default", "keep")["status"]["ready"], 5)

    # A subscription whose consumer exists with Kyma's settings: left alone, reported.
    write(os.path.join(evd.subs_dir, "b.yaml"), manifest("foreign"))

    def conflict():
        # lastError is set while the consumer is still being verified too ("0 of 1 ready"):
        # wait for the verdict, not for the first error text.
        x = (sub(evd, "default", "foreign") or {"status": {}})["status"]
        cs = (x.get("backend") or {}).get("consumers") or [{}]
        return cs[0].get("state") == "conflict" and sub(evd, "default", "foreign")
    s = wait_for(conflict, 5, what="conflict reported")
    assert not s["status"]["ready"], s
    assert s["status"]["conditions"][1]["status"] == "False", s
    assert s["status"]["conditions"][1]["reason"] == "NATS Subscription not active", s
    assert "flow control" in s["status"]["lastError"] and "heartbeat" in s["status"]["lastError"], s
    assert s["status"]["backend"]["consumers"][0]["state"] == "conflict", s
    assert nc.consumers()[foreign]["config"].get("flow_control"), "conflicting consumer untouched"
    assert evd.stop() == 0


def test_nats_outage_and_lost_store(tmp):
    nats, evd = start_external(tmp)
    write(os.path.join(evd.subs_dir, "a.yaml"), manifest("survivor"))
    evd.start()
    evd.wait_ready()
    name = consumer_name("default", "survivor", SUBJECT)
    wait_for(lambda: sub(evd, "default", "survivor")["status"]["ready"], 5)
    port = nats.port
    nats.stop(signal.SIGKILL)
    s = wait_for(lambda: not ready(evd, "default", "survivor") and sub(evd, "default", "survivor"),
                 10, what="not ready while NATS is down")
    assert s["status"]["conditions"][1]["reason"] == "NATS Subscription not active", s
    assert "JetStream is not ready" in s["status"]["lastError"], s
    # A new server on the same port with an empty store: the consumer is re-created.
    fresh = track(NatsServer(tmp, port=port))
    fresh.store = os.path.join(tmp, "fresh-store")
    fresh.start()
    nc = client(fresh)
    wait_for(lambda: name in nc.consumers(), 20, what="consumer re-created after reconnect")
    wait_for(lambda: sub(evd, "default", "survivor")["status"]["ready"], 5)
    # Deleted behind eventingd's back: noticed by the periodic listing and re-created.
    r = nc.request(f"$JS.API.CONSUMER.DELETE.{STREAM}.{name}")
    assert r.get("success"), r
    wait_for(lambda: name in nc.consumers(), 15, what="consumer re-created after deletion")
    evd.wait_log("disappeared from stream")
    assert evd.stop() == 0


def ours(nc, ns, name, subject=SUBJECT):
    """Creates a consumer shaped like eventingd's (left by a previous run or another instance)."""
    cname = consumer_name(ns, name, subject)
    nc.create_consumer(cname, {"description": f"{ns}/{name}/{subject}",
                               "deliver_subject": "_EVD.deliver." + cname,
                               "deliver_group": "eventingd", "ack_policy": "explicit",
                               "filter_subject": subject, "deliver_policy": "new",
                               "max_deliver": 110, "ack_wait": 30 * 10**9})
    return cname


def kept(nc, name):
    """Events a consumer holds: waiting, or delivered and not acknowledged (the dispatcher retries
    what the tests' refusing sinks answer)."""
    c = nc.consumers()[name]
    return c["num_pending"] + c["num_ack_pending"]


def test_half_written_file_loses_nothing(tmp):
    # The grace period grows with TIME_SCALE, so that "not before the grace period" below stays
    # true on a slow (sanitizer) build: the sleeps that probe it are fractions of it.
    grace = max(5, round(scaled(5)))
    nats, evd = start_external(tmp, config={"subscriptions": {"delete_grace": f"{grace}s"}})
    path = os.path.join(evd.subs_dir, "a.yaml")
    good = manifest("half", types=["order.created.v1", "order.paid.v1"])
    write(path, good)
    evd.start()
    evd.wait_ready()
    nc = client(nats)
    wait_for(lambda: sub(evd, "default", "half")["status"]["ready"], 5)
    created = consumer_name("default", "half", SUBJECT)
    paid = consumer_name("default", "half", "kyma.commerce.order.paid.v1")
    before = nc.consumers()
    nc.publish(SUBJECT)
    # Pending, or delivered to the refusing sink and backing off: kept in the consumer either way.
    wait_for(lambda: kept(nc, created) == 1, 5, what="one event pending")

    # Truncate, then write slowly (not atomically), as `kubectl get -o yaml > file` does.
    with open(path, "w"):
        pass
    st = wait_for(lambda: subs(evd)["deleting"] and subs(evd), 3, what="deletions deferred")
    states = {d["consumer"]: d["state"] for d in st["deleting"]}
    assert set(states) == {created, paid}, st["deleting"]
    assert all(v.startswith("deleting in ") and v.endswith(" s") for v in states.values()), states
    assert st["summary"]["consumerDeletesPending"] == 2, st["summary"]
    rc, out, err = eventingd_cli("status", "--admin", evd.admin)
    assert rc == 0 and f"consumer {created} of default/half ({SUBJECT}): deleting in " in out, out
    time.sleep(1)
    with open(path, "w") as f:
        half = len(good) // 2
        f.write(good[:half])
        f.flush()
        time.sleep(0.5)
        f.write(good[half:])
    wait_for(lambda: ready(evd, "default", "half"), 10, what="back")
    evd.wait_log("is wanted again: not deleting it")
    assert subs(evd)["deleting"] == []
    time.sleep(grace + 0.5)  # past the grace period: nothing may have been deleted meanwhile
    after = nc.consumers()
    for name in (created, paid):
        assert after[name]["created"] == before[name]["created"], "kept, not re-created"
    assert kept(nc, created) == 1, "the pending event is still there"
    assert "deleted consumer" not in evd.stderr()
    assert subs(evd)["deleting"] == []

    # Deleted on purpose: the consumers go, after the grace period and not before.
    metrics = lambda: http_request("GET", evd.admin + "/metrics")[2].decode()
    assert 'subscription_name="half"' in metrics()
    os.remove(path)
    wait_for(lambda: len(subs(evd)["deleting"]) == 2, 3, what="deletions queued")
    t0 = time.monotonic()
    time.sleep(grace - 2)
    assert created in nc.consumers() and paid in nc.consumers(), "not hastily"
    wait_for(lambda: created not in nc.consumers() and paid not in nc.consumers(), 10 + grace,
             what="consumers deleted after the grace period")
    assert time.monotonic() - t0 >= grace - 1.5
    # The daemon logs the deletion and drops the series after NATS has answered: a consumer
    # already gone from NATS does not mean the line is written yet (this was sampled, and failed
    # 2 of 16 runs under load).
    evd.wait_log("deleted consumer " + created)
    evd.wait_log("deleted consumer " + paid)
    # Its series go with it (eventing_ec_subscription_status and ..._subscribed_total).
    wait_for(lambda: 'subscription_name="half"' not in metrics(), 10, what="the series removed")
    assert evd.stop() == 0


def test_directory_appearing_later_prunes_nothing_wanted(tmp):
    missing = os.path.join(tmp, "later.d")
    nats, evd = start_external(tmp, config={"subscriptions": {"prune_orphans": True, "dir": missing,
                                                              "delete_grace": "3s"}})
    nc = client(nats)
    # The previous run's consumers (the stream is created by eventingd: start it first).
    evd.start()
    evd.wait_ready()
    wait_for(lambda: nc.stream_exists(), 5)
    assert evd.stop() == 0
    one, two = ours(nc, "default", "one"), ours(nc, "default", "two")
    orphan = ours(nc, "default", "gone")
    before = nc.consumers()
    evd.start()
    evd.wait_ready()
    wait_for(lambda: subs(evd)["directoryError"], 5)
    os.makedirs(missing)
    time.sleep(2.5)  # the missing directory is looked for every 2 s: seen empty
    write(os.path.join(missing, "one.yaml"), manifest("one"))
    time.sleep(0.5)
    write(os.path.join(missing, "two.yaml"), manifest("two"))
    wait_for(lambda: ready(evd, "default", "one") and
             ready(evd, "default", "two"), 10, what="both ready")
    # The orphan goes once the set was stable for 3 s and its own 3 s grace passed.
    wait_for(lambda: orphan not in nc.consumers(), 15, what="orphan pruned")
    after = nc.consumers()
    for name in (one, two):
        assert after[name]["created"] == before[name]["created"], "re-bound, not pruned"
    evd.wait_log("pruned orphan consumer " + orphan)
    assert "pruned orphan consumer " + one not in evd.stderr()
    assert evd.stop() == 0


def test_reload_of_nats_url_keeps_prune_default(tmp):
    nats, evd = start_external(tmp)  # external: prune_orphans defaults to false
    write(os.path.join(evd.subs_dir, "a.yaml"), manifest("mine"))
    evd.start()
    evd.wait_ready()
    nc = client(nats)
    wait_for(lambda: sub(evd, "default", "mine")["status"]["ready"], 5)
    theirs = ours(nc, "default", "another-instance")
    evd.config["nats"]["url"] = "embedded"
    evd.write_config()
    evd.signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in evd.stderr(), 5)
    evd.wait_log("take effect only after a restart: nats.url")
    # A rescan and what a prune would need: a stable set (1 s) and the grace (1 s).
    evd.signal(signal.SIGHUP)
    time.sleep(4)
    assert theirs in nc.consumers(), "another instance's consumer untouched"
    assert "orphan" not in evd.stderr()
    assert evd.stop() == 0


def test_reload_prunes_from_the_new_set_only(tmp):
    # SIGHUP that turns pruning on and switches to a directory that wants an existing consumer:
    # the prune must wait for the new directory's set, not run from the old one.
    nats, evd = start_external(tmp)
    write(os.path.join(evd.subs_dir, "a.yaml"), manifest("old"))
    evd.start()
    evd.wait_ready()
    nc = client(nats)
    wait_for(lambda: sub(evd, "default", "old")["status"]["ready"], 5)
    wanted = ours(nc, "default", "moved")
    created = nc.consumers()[wanted]["created"]
    other = os.path.join(tmp, "other.d")
    os.makedirs(other)
    write(os.path.join(other, "m.yaml"), manifest("moved"))
    evd.config["subscriptions"]["dir"] = other
    evd.config["subscriptions"]["prune_orphans"] = True
    evd.write_config()
    evd.signal(signal.SIGHUP)
    wait_for(lambda: ready(evd, "default", "moved"), 10, what="new directory")
    old = consumer_name("default", "old", SUBJECT)
    wait_for(lambda: old not in nc.consumers(), 10, what="the old directory's consumer deleted")
    assert nc.consumers()[wanted]["created"] == created, "re-bound, never pruned"
    assert "orphan consumer " + wanted not in evd.stderr()
    assert "deleted consumer " + wanted not in evd.stderr()
    assert evd.stop() == 0


def test_reconnect_keeps_the_grace_period(tmp):
    nats, evd = start_external(tmp, config={"subscriptions": {"delete_grace": "8s"}})
    path = os.path.join(evd.subs_dir, "a.yaml")
    write(path, manifest("steady"))
    evd.start()
    evd.wait_ready()
    nc = client(nats)
    name = consumer_name("default", "steady", SUBJECT)
    wait_for(lambda: sub(evd, "default", "steady")["status"]["ready"], 5)
    nc.publish(SUBJECT)
    wait_for(lambda: kept(nc, name) == 1, 5, what="one event pending")
    with open(path, "w"):
        pass  # truncated: a writer is about to fill it
    wait_for(lambda: subs(evd)["deleting"], 3, what="deletion deferred")
    # NATS restarts meanwhile (same port, same store): the reconnect must not cut the grace short.
    port = nats.port
    nats.stop()
    again = track(NatsServer(tmp, port=port))
    again.store = nats.store
    again.start()
    wait_for(lambda: evd.backend()["nats"]["state"] == "ready", 20, what="reconnected")
    write(path, manifest("steady"))
    wait_for(lambda: ready(evd, "default", "steady"), 10, what="back")
    time.sleep(8)
    nc2 = client(again)
    # (a restarted server reports a slightly different creation time: the pending event tells)
    assert kept(nc2, name) == 1, "kept across the reconnect, event and all"
    assert "deleted consumer " + name not in evd.stderr()
    assert evd.stop() == 0


def test_failed_delete_never_hits_a_wanted_consumer(tmp):
    nats, evd = start_external(tmp, config={"subscriptions": {"delete_grace": "0"}})
    path = os.path.join(evd.subs_dir, "a.yaml")
    write(path, manifest("flaky"))
    evd.start()
    evd.wait_ready()
    nc = client(nats)
    name = consumer_name("default", "flaky", SUBJECT)
    wait_for(lambda: sub(evd, "default", "flaky")["status"]["ready"], 5)
    nats.proc.send_signal(signal.SIGSTOP)
    try:
        os.remove(path)
        # The delete may queue behind a request already waiting on the stopped server on the
        # same worker (a counter refresh: up to its 5 s timeout), so allow for that.
        wait_for(lambda: subs(evd)["deleting"] and subs(evd)["deleting"][0]["state"] == "deleting now",
                 15, what="the delete sent")
        write(path, manifest("flaky"))  # back while the delete hangs
        wait_for(lambda: f"consumer {name} (default/flaky/{SUBJECT}): deleting the consumer"
                 in evd.stderr() or "wanted again after its deletion" in evd.stderr(),
                 20, what="the delete timed out")
    finally:
        nats.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: name in nc.consumers() and sub(evd, "default", "flaky")["status"]["ready"], 20,
             what="consumer there and ready")
    # Nothing retries the delete: it stays there (a ready consumer is never deleted).
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        assert name in nc.consumers(), "a wanted consumer was deleted"
        time.sleep(0.2)
    assert sub(evd, "default", "flaky")["status"]["ready"]
    assert subs(evd)["deleting"] == []
    assert evd.stop() == 0


def test_unreadable_file_keeps_previous_version(tmp):
    nats, evd = start_external(tmp, config={"subscriptions": {"prune_orphans": True}})
    path = os.path.join(evd.subs_dir, "b.yaml")
    write(path, manifest("linked"))
    evd.start()
    evd.wait_ready()
    nc = client(nats)
    name = consumer_name("default", "linked", SUBJECT)
    wait_for(lambda: sub(evd, "default", "linked")["status"]["ready"], 5)
    os.remove(path)
    os.symlink(os.path.join(tmp, "nowhere.yaml"), path)
    f = wait_for(lambda: [f for f in subs(evd)["files"] if f["file"] == path and f["failed"]], 10,
                 what="the dangling link reported")[0]
    assert f["errors"] == [f"{path}:1:1: cannot read: No such file or directory"], f
    assert f["previousVersionActive"], f
    time.sleep(3)
    assert sub(evd, "default", "linked")["status"]["ready"]
    assert name in nc.consumers()
    assert subs(evd)["deleting"] == []
    cfg = os.path.join(tmp, "check.yaml")
    with open(cfg, "w") as out:
        out.write(f"subscriptions:\n  dir: {evd.subs_dir}\n")
    rc, out, err = eventingd_cli("check", "-c", cfg)
    assert rc == 78, (rc, out, err)
    assert f"{path}:1:1: cannot read: No such file or directory" in err, err
    assert evd.stop() == 0


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])


def test_thousand_subscriptions(tmp):
    nats, evd = start_external(tmp, config={"log": {"level": "info"}})
    for i in range(100):
        docs = [manifest(f"s{i:03d}-{j}", types=[f"order.created{j}.v1"], source=f"app{i}")
                for j in range(10)]
        write(os.path.join(evd.subs_dir, f"f{i:03d}.yaml"), "---\n".join(docs))
    t0 = time.monotonic()
    evd.start()
    evd.wait_ready()
    t_ready = time.monotonic()

    def all_ready():
        s = subs(evd)["summary"]
        return s["subscriptions"] == 1000 and s["ready"] == 1000 and s
    summary = wait_for(all_ready, 60, interval=0.2, what="1,000 subscriptions ready")
    elapsed = time.monotonic() - t0
    nthreads = threads(evd.proc.pid)
    nc = client(nats)
    assert len(nc.consumers()) == 1000
    print(f"  1,000 subscriptions: all ready {elapsed:.2f}s after start ({time.monotonic() - t_ready:.2f}s "
          f"after JetStream ready; reconcile {summary['lastReconcileMs']} ms); {nthreads} threads")
    assert elapsed < 20, elapsed
    assert nthreads < 30, nthreads

    # Restart: all re-bound from one listing, none re-created.
    before = {n: c["created"] for n, c in nc.consumers().items()}
    assert evd.stop() == 0
    t0 = time.monotonic()
    evd.start()
    wait_for(all_ready, 60, interval=0.2, what="1,000 re-bound")
    print(f"  restart: 1,000 re-bound in {time.monotonic() - t0:.2f}s")
    assert {n: c["created"] for n, c in nc.consumers().items()} == before
    assert evd.stop() == 0


class ListingCutter:
    """A TCP proxy between eventingd and nats-server that drops the connection once, in the
    middle of a consumer listing of more than one page, without passing the request on: at the
    request for the second page of $JS.API.CONSUMER.LIST (what nats.c's js_Consumers sends), or
    at the 150th $JS.API.CONSUMER.INFO after a $JS.API.CONSUMER.NAMES (names, then infos).
    Deterministic: it cuts on what the client sends, not after a delay. Then it passes all."""

    def __init__(self, upstream_port, info_cut=150):
        self.upstream = upstream_port
        self.info_cut = info_cut
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.cut = threading.Event()
        self.infos = None  # INFO requests since the last NAMES request
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def close(self):
        self.lsock.close()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            self.connections += 1
            threading.Thread(target=self._down, args=(u, c), daemon=True).start()
            threading.Thread(target=self._up, args=(c, u), daemon=True).start()

    @staticmethod
    def _down(u, c):
        try:
            while True:
                data = u.recv(65536)
                if not data:
                    break
                c.sendall(data)
        except OSError:
            pass
        for s in (u, c):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _should_cut(self, subject, payload):
        if self.cut.is_set():
            return False
        if subject.startswith("$JS.API.CONSUMER.LIST."):
            return json.loads(payload or b"{}").get("offset", 0) > 0
        if subject.startswith("$JS.API.CONSUMER.NAMES."):
            self.infos = 0
        elif subject.startswith("$JS.API.CONSUMER.INFO.") and self.infos is not None:
            self.infos += 1
            return self.infos >= self.info_cut
        return False

    def _up(self, c, u):
        buf = b""
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                buf += data
                out = b""
                while True:
                    eol = buf.find(b"\r\n")
                    if eol < 0:
                        break
                    line = buf[:eol]
                    end = eol + 2
                    parts = line.split()
                    if parts and parts[0].upper() in (b"PUB", b"HPUB"):
                        end += int(parts[-1]) + 2
                        if len(buf) < end:
                            break
                        payload = buf[eol + 2:end - 2]
                        if parts[0].upper() == b"HPUB":
                            payload = payload[int(parts[-2]):]
                        if self._should_cut(parts[1].decode(), payload):
                            self.cut.set()
                            u.sendall(out)
                            raise OSError("cut")
                    out += buf[:end]
                    buf = buf[end:]
                u.sendall(out)
        except OSError:
            pass
        for s in (c, u):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_listing_cut_after_first_page(tmp):
    """More consumers than one page of $JS.API.CONSUMER.LIST holds (nats-server 2.9: 256) and the
    connection lost after the first page: nats.c 3.4.1's js_Consumers freed the consumer infos
    of the first page as stream infos there and crashed eventingd. Now: a listing error in the
    log, then reconnect and everything re-bound."""
    n = 300
    nats, evd = start_external(tmp)
    for i in range(n // 10):
        docs = [manifest(f"s{i:02d}-{j}", types=[f"order.created{j}.v1"], source=f"app{i}")
                for j in range(10)]
        write(os.path.join(evd.subs_dir, f"f{i:02d}.yaml"), "---\n".join(docs))

    def all_ready():
        s = subs(evd)["summary"]
        return s["subscriptions"] == n and s["ready"] == n and s
    evd.start()
    wait_for(all_ready, scaled(60), interval=0.2, what=f"{n} subscriptions ready")
    nc = client(nats)
    before = {name: c["created"] for name, c in nc.consumers().items()}
    assert len(before) == n, len(before)
    assert evd.stop() == 0

    # Restart through the proxy: after the start-up ensures, the refresh lists all 300.
    proxy = track(ListingCutter(nats.port))
    evd.config["nats"]["url"] = proxy.url
    evd.write_config()
    mark = len(evd.stderr())
    evd.start()
    wait_for(proxy.cut.is_set, scaled(60), what="the listing cut after its first page")
    # Before: SIGSEGV in jsStreamInfo_Destroy <- js_Consumers <- reg_job_worker.
    wait_for(lambda: evd.proc.poll() is not None
             or "listing the stream's consumers" in evd.stderr()[mark:],
             scaled(60), what="the listing error in the log")
    evd.alive()
    wait_for(lambda: evd.alive() and proxy.connections >= 2, scaled(60), what="reconnect")
    wait_for(all_ready, scaled(90), interval=0.2, what=f"{n} re-bound after the cut")
    # Nothing was re-created, and a listing after the reconnect went through (debug log).
    assert {name: c["created"] for name, c in nc.consumers().items()} == before
    wait_for(lambda: evd.alive() and f"listed {n} consumers" in evd.stderr()[mark:], scaled(60),
             what="a complete listing after the reconnect")
    assert evd.stop() == 0


def test_sighup_rescans_and_missing_dir(tmp):
    nats, evd = start_external(tmp)
    missing = os.path.join(tmp, "later.d")
    evd.config["subscriptions"]["dir"] = missing
    evd.write_config()
    evd.start()
    evd.wait_ready()
    st = wait_for(lambda: subs(evd)["directoryError"] and subs(evd), 5)
    assert "later.d" in st["directoryError"] and st["summary"]["subscriptions"] == 0, st
    os.makedirs(missing)
    write(os.path.join(missing, "a.yaml"), manifest("late"))
    # A missing directory is looked for every 2 s, so it is picked up without a signal.
    wait_for(lambda: ready(evd, "default", "late"), 10, what="late subscription")
    assert subs(evd)["directoryError"] is None
    # SIGHUP rescans at once.
    scans = subs(evd)["summary"]["scans"]
    evd.signal(signal.SIGHUP)
    wait_for(lambda: subs(evd)["summary"]["scans"] > scans, 10, what="a rescan after SIGHUP")
    evd.wait_log("rescanning " + missing)
    # The watch now covers the new directory.
    write(os.path.join(missing, "b.yaml"), manifest("later"))
    wait_for(lambda: sub(evd, "default", "later"), 10, what="watched after it appeared")
    # subscriptions.dir is reloadable: switch to another directory on SIGHUP.
    other = os.path.join(tmp, "other.d")
    os.makedirs(other)
    write(os.path.join(other, "c.yaml"), manifest("elsewhere"))
    evd.config["subscriptions"]["dir"] = other
    evd.write_config()
    evd.signal(signal.SIGHUP)
    wait_for(lambda: sub(evd, "default", "elsewhere") and not sub(evd, "default", "late"), 10,
             what="switched directory")
    assert subs(evd)["directory"] == other
    assert evd.stop() == 0


def test_embedded_backend_reconciles_at_start(tmp):
    evd = track(Eventingd(tmp))
    write(os.path.join(evd.subs_dir, "a.yaml"), manifest("embedded"))
    evd.start()
    evd.wait_ready()
    s = wait_for(lambda: ready(evd, "default", "embedded"),
                 10, what="ready with the embedded server")
    assert s["status"]["backend"]["consumers"][0]["exists"], s
    port = int(evd.backend()["embedded"]["url"].rsplit(":", 1)[1])
    nc = client_port(port)
    assert consumer_name("default", "embedded", SUBJECT) in nc.consumers()
    nc.close()
    assert evd.stop() == 0


def test_subscribed_route_answers_from_registry(tmp):
    evd = track(Eventingd(tmp))
    write(os.path.join(evd.subs_dir, "a.yaml"),
          manifest("std", types=("order.created.v1", "order.shipped.v2")) +
          "---\n" + manifest("exact", source="", matching="exact",
                              types=("sap.kyma.custom.commerce.invoice.paid.v1",
                                     "sap.kyma.custom.other.x.v1")) +
          "---\n" + manifest("elsewhere", source="crm", types=("lead.won.v1",)))
    evd.start()
    evd.wait_ready()
    wait_for(lambda: len(subs(evd)["items"]) == 3, 10, what="three subscriptions")
    status, headers, body = http_request("GET", evd.publish + "/commerce/v1/events/subscribed")
    assert status == 200 and headers["content-type"].startswith("application/json"), (status, headers)
    got = json.loads(body)["eventsInfo"]
    assert sorted(got, key=lambda e: e["name"]) == [{"name": "invoice.paid", "version": "v1"},
                                                   {"name": "order.created", "version": "v1"},
                                                   {"name": "order.shipped", "version": "v2"}], body
    status, _, body = http_request("GET", evd.publish + "/nobody/v1/events/subscribed")
    assert status == 200 and json.loads(body) == {"eventsInfo": []}, body
    assert evd.stop() == 0


def client_port(port):
    return NatsClient(port)


def test_check_cli(tmp):
    good = os.path.join(tmp, "good.d")
    bad = os.path.join(tmp, "bad.d")
    os.makedirs(good)
    os.makedirs(bad)
    write(os.path.join(good, "a.yaml"), manifest("a"))
    write(os.path.join(good, "b.yaml"), manifest("b", types=["x.y.v1"]) + "  protocol: NATS\n")
    write(os.path.join(bad, "a.yaml"), manifest("a"))
    write(os.path.join(bad, "b.yaml"), manifest("b", types=["nodots"], mif="ten"))
    write(os.path.join(bad, "c.yaml"), "apiVersion: [\n")
    for d, want in ((good, 0), (bad, 78)):
        cfg = os.path.join(tmp, os.path.basename(d) + ".yaml")
        with open(cfg, "w") as f:
            f.write(f"subscriptions:\n  dir: {d}\n")
        rc, out, err = eventingd_cli("check", "-c", cfg)
        assert rc == want, (d, rc, out, err)
        if want == 0:
            assert f"{d}: 2 subscriptions in 2 files OK (with warnings)" in out, out
            assert f"{d}/b.yaml:10:3: warning: spec.protocol:" in err, err
        else:
            lines = [l for l in err.splitlines() if l.startswith(d)]
            assert f"{d}/b.yaml:8:7: spec.types[0]: must have minimum 2 segments" in lines[0], lines
            assert any(l.startswith(f"{d}/b.yaml:11:26: spec.config.maxInFlightMessages:") and
                       "must be a stringified int value" in l for l in lines), lines
            assert any(l.startswith(f"{d}/c.yaml:2:1:") for l in lines), lines
            assert not any("/a.yaml" in l for l in lines), lines
            assert "3 errors in 2 files" in err, err
    # A missing directory is no error: the daemon waits for it.
    cfg = os.path.join(tmp, "missing.yaml")
    with open(cfg, "w") as f:
        f.write(f"subscriptions:\n  dir: {tmp}/nope.d\n")
    rc, out, err = eventingd_cli("check", "-c", cfg)
    assert rc == 0 and "no such directory" in out, (rc, out, err)


def status_row(out, key):
    """The cells of key's line in `eventingd status`'s table (AS OF is one cell: "4 s ago")."""
    for line in out.splitlines():
        m = re.match(r"^  (\S+)\s+(yes|no)\s+(\d+)\s+(\S+)\s+(-|\d+ (?:s|min|h|d) ago)\s+(\S+)\s+(\S+)\s+(\S*)$",
                     line)
        if m and m.group(1) == key:
            return list(m.groups())
    return None


def test_status_cli(tmp):
    nats, evd = start_external(tmp)
    write(os.path.join(evd.subs_dir, "a.yaml"), manifest("orders", ns="team", types=["a.b.v1", "c.d.v1"],
                                                         sink="http://127.0.0.1:1/x"))
    write(os.path.join(evd.subs_dir, "b.yaml"), "kind: [\n")
    evd.start()
    evd.wait_ready()
    wait_for(lambda: ready(evd, "team", "orders"), 5)
    # The stream figures are refreshed every 5 s, and also as soon as the registry has created
    # consumers: BACKEND does not show 0 consumers next to a ready subscription until the next
    # tick (a wait shorter than the period, so this fails without that refresh).
    wait_for(lambda: evd.backend()["nats"]["stream"]["consumers"] == 2, scaled(4),
             what="the stream's consumer count refreshed after the consumers were created")
    rc, out, err = eventingd_cli("status", "--admin", evd.admin)
    assert rc == 0, (rc, out, err)
    assert "BACKEND" in out and "SUBSCRIPTIONS" in out, out
    assert re.search(r"^  consumers   2$", out, re.M), out
    # The stream figures are a snapshot: their age is shown.
    assert re.search(r"^  as of       \d+ s ago$", out, re.M), out
    header = [l for l in out.splitlines() if "NAMESPACE/NAME" in l][0]
    assert header.split() == ["NAMESPACE/NAME", "READY", "TYPES", "PENDING", "AS", "OF", "DELIVERED",
                              "FAILED", "SINK"], header
    # Nothing published yet: the dispatcher's figures are zeros.
    row = status_row(out, "team/orders")
    assert row and row[1:4] == ["yes", "2", "0"] and row[5:] == ["0", "0", "http://127.0.0.1:1/x"], (row, out)
    assert "b.yaml:2:1:" in out and "not applied" in out, out

    # Three events wait in the consumers (the sink refuses them: they back off): PENDING counts them once
    # the counters are refreshed, with their age next to them.
    for i, typ in enumerate(["a.b.v1", "a.b.v1", "c.d.v1"]):
        status, _, body = http_request("POST", evd.publish + "/publish", body=b"{}", headers={
            "ce-specversion": "1.0", "ce-id": str(i), "ce-source": "commerce", "ce-type": typ,
            "content-type": "application/json"})
        assert status == 204, (status, body)

    def pending_three():
        rc, out, err = eventingd_cli("status", "--admin", evd.admin)
        assert rc == 0, (rc, out, err)
        row = status_row(out, "team/orders")
        return row and row[3] == "3" and row

    row = wait_for(pending_three, scaled(30), interval=0.5, what="PENDING 3")
    assert row[4].endswith(" s ago") and int(row[4].split()[0]) < scaled(30), row
    s = sub(evd, "team", "orders")
    assert sum(c["numPending"] + c["numAckPending"] for c in s["status"]["backend"]["consumers"]) == 3, s

    rc, out, err = eventingd_cli("status", "--admin", evd.admin, "--json")
    assert rc == 0, (rc, out, err)
    doc = json.loads(out)
    assert doc["backend"]["nats"]["state"] == "ready", doc
    assert doc["backend"]["nats"]["stream"]["refreshed_at"].endswith("Z"), doc
    assert doc["subscriptions"]["items"][0]["metadata"]["name"] == "orders", doc
    assert doc["subscriptions"]["summary"]["filesFailed"] == 1, doc
    assert evd.stop() == 0


if __name__ == "__main__":
    run_tests(globals())
