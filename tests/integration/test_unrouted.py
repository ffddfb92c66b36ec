#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Events nobody wants (issue 7): an event answered 2xx whose subject no active subscription
wants is counted in eventingd_publish_unrouted_total{path}, in GET /v1/backend
("publish":{"unrouted_total":N}) and in `eventingd status`, and logged at debug level, while
interest retention drops it. And the README's examples reach the sample subscription: its
Publishing curl line and the tour's `eventingd publish` line, run as written against a daemon
with etc/subscriptions.d/order-created.yaml, store an event that waits in a consumer."""
import json
import os
import re
import shlex
import socket

from evd_harness import (Eventingd, NatsServer, eventingd_cli, free_port, http_request,
                         run_tests, track, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("EVD_SOURCE_ROOT", os.path.join(HERE, "..", ".."))
SAMPLE = os.path.join(SOURCE_ROOT, "etc", "subscriptions.d", "order-created.yaml")


def stream_messages(port, stream="sap"):
    """The stream's message count, asked of JetStream itself (no cached figure)."""
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"INFO")
        s.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n'
                  b"SUB _INBOX.unrouted 1\r\n"
                  b"PUB $JS.API.STREAM.INFO.%s _INBOX.unrouted 0\r\n\r\n" % stream.encode())
        while True:
            line = f.readline()
            assert line, "NATS connection closed"
            if line.startswith(b"PING"):
                s.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG"):
                info = json.loads(f.read(int(line.split()[-1]) + 2)[:-2])
                assert "error" not in info, info
                return info["state"]["messages"]
            elif line.startswith(b"-ERR"):
                raise AssertionError(line)


def unrouted_metric(evd, path):
    _, _, body = http_request("GET", evd.admin + "/metrics")
    m = re.search(r'^eventingd_publish_unrouted_total\{path="%s"\} (\S+)$' % re.escape(path),
                  body.decode(), re.M)
    return float(m.group(1)) if m else 0.0


def unrouted_total(evd):
    return evd.backend()["publish"]["unrouted_total"]


def sub_ready(evd, ns, name):
    status, _, body = http_request("GET", f"{evd.admin}/v1/subscriptions/{ns}/{name}")
    if status != 200:
        return False
    doc = json.loads(body)
    return doc.get("ready") is True or (doc.get("status") or {}).get("ready") is True


def readme_command(prefix):
    """The README's shell command that starts with prefix (continuation lines joined), as argv."""
    lines = open(os.path.join(SOURCE_ROOT, "README.md")).read().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(prefix):
            text = line
            while text.rstrip().endswith("\\"):
                i += 1
                text = text.rstrip()[:-1] + " " + lines[i]
            return shlex.split(text, comments=True)
    raise AssertionError(f"README.md has no line starting with {prefix!r}")


def curl_request(argv):
    """-H and -d of a curl command line."""
    headers, data, i = {}, None, 1
    while i < len(argv):
        if argv[i] == "-H":
            k, _, v = argv[i + 1].partition(":")
            headers[k.strip()] = v.strip()
            i += 2
        elif argv[i] in ("-d", "--data"):
            data = argv[i + 1].encode()
            i += 2
        else:
            i += 1
    return headers, data


def sample_text():
    text = open(SAMPLE).read()
    assert "sink: http://127.0.0.1:8081/" in text, text
    return text.replace("sink: http://127.0.0.1:8081/", f"sink: http://127.0.0.1:{free_port()}/")


def start(tmp):
    nats = track(NatsServer(tmp)).start()
    # Interest retention, the default: what nobody wants is dropped at once.
    evd = track(Eventingd(tmp, nats_url=nats.url))
    # The sample as it is, but for its sink: a port nothing listens on, so the dispatcher
    # delivers nothing (8081 may be another test's or a tour's display) and events stay stored.
    with open(os.path.join(evd.subs_dir, os.path.basename(SAMPLE)), "w") as f:
        f.write(sample_text())
    evd.start()
    evd.wait_ready()
    wait_for(lambda: sub_ready(evd, "default", "order-created"), 30,
             what="the sample subscription ready (its consumers exist)")
    return nats, evd


def test_readme_examples_reach_the_sample_subscription(tmp):
    nats, evd = start(tmp)
    # The Publishing section's curl example, as written, against this daemon's port.
    argv = readme_command("curl -si http://127.0.0.1:8080/publish")
    headers, data = curl_request(argv)
    assert headers.get("ce-source") and headers.get("ce-type"), argv
    status, _, body = http_request("POST", evd.publish + "/publish", body=data, headers=headers)
    assert status == 204, (status, body)
    # Kept for the sample subscription's consumer: stored, not counted as unrouted.
    wait_for(lambda: stream_messages(nats.port) == 1, 10, what="the event kept in the stream")
    assert unrouted_total(evd) == 0, evd.backend()
    # The tour's publish line, as written but for the daemon's URL.
    argv = readme_command("build/eventingd publish --type")
    rc, out, err = eventingd_cli(*argv[1:], "--url", evd.publish + "/publish")
    assert rc == 0 and out.startswith("204"), (argv, rc, out, err)
    wait_for(lambda: stream_messages(nats.port) == 2, 10, what="the tour's event kept")
    assert unrouted_total(evd) == 0, evd.backend()
    assert unrouted_metric(evd, "/publish") == 0
    assert evd.stop() == 0


def binary(type_, id_, source="commerce"):
    return {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-type": type_,
            "ce-source": source, "ce-id": id_}


def post(evd, path, body, headers):
    status, _, resp = http_request("POST", evd.publish + path, body=body, headers=headers)
    return status, resp


def test_unrouted_counted_logged_and_shown(tmp):
    nats, evd = start(tmp)
    # Wanted (order.created.v1 from commerce): not counted, kept.
    assert post(evd, "/publish", b"{}", binary("order.created.v1", "w1"))[0] == 204
    # Nobody wants order.cancelled.v1: 204, counted, logged, dropped by interest retention.
    assert post(evd, "/publish", b"{}", binary("order.cancelled.v1", "u1"))[0] == 204
    assert unrouted_total(evd) == 1, evd.backend()
    assert unrouted_metric(evd, "/publish") == 1
    wait_for(lambda: 'event "u1" of type "order.cancelled.v1" from source "commerce" stored on '
                     'kyma.commerce.order.cancelled.v1, but no subscription wants that subject'
             in evd.stderr(), 10, what="the debug line")
    assert stream_messages(nats.port) == 1
    # Another source with a wanted type is another subject: unrouted.
    assert post(evd, "/commerce/v2/events", b"{}", binary("order.created.v1", "u2", source="crm"))[0] == 204
    assert unrouted_metric(evd, "/{application}/v2/events") == 1
    # A batch: each event counts; one line names the first and how many more.
    batch = [{"specversion": "1.0", "id": f"b{i}", "source": "commerce", "type": t}
             for i, t in enumerate(("order.updated.v1", "order.lost.v1", "order.found.v1"))]
    status, resp = post(evd, "/publish", json.dumps(batch).encode(),
                        {"Content-Type": "application/cloudevents-batch+json"})
    assert status == 204, (status, resp)
    assert unrouted_metric(evd, "/publish") == 3
    wait_for(lambda: 'event "b1" of type "order.lost.v1"' in evd.stderr() and
             "(and 1 more events of this batch)" in evd.stderr(), 10, what="the batch's line")
    # Legacy events: one event on two subjects; wanted when its standard subject is.
    legacy = {"event-type": "order.created", "event-type-version": "v1",
              "event-time": "2020-09-28T14:47:16.491Z", "data": {"n": 1}}
    status, resp = post(evd, "/commerce/v1/events", json.dumps(legacy).encode(),
                        {"Content-Type": "application/json"})
    assert status == 200, (status, resp)
    legacy["event-type"] = "order.forgotten"
    status, resp = post(evd, "/commerce/v1/events", json.dumps(legacy).encode(),
                        {"Content-Type": "application/json"})
    assert status == 200, (status, resp)
    assert unrouted_metric(evd, "/{application}/v1/events") == 1
    # Refused requests store nothing and count nothing.
    bad = binary("order.cancelled.v1", "")
    assert post(evd, "/publish", b"{}", bad)[0] == 400
    assert unrouted_total(evd) == 5, evd.backend()
    # `eventingd status` shows the count.
    rc, out, err = eventingd_cli("status", "--admin", evd.admin)
    assert rc == 0, (rc, out, err)
    assert re.search(r"^\s*unrouted\s+5\b", out, re.M), out

    # A subscription added live makes the subject wanted: no longer counted, kept.
    with open(os.path.join(evd.subs_dir, "cancelled.yaml"), "w") as f:
        f.write(sample_text().replace("name: order-created", "name: cancelled")
                .replace("order.created.v1", "order.cancelled.v1"))
    wait_for(lambda: sub_ready(evd, "default", "cancelled"), 30, what="the new subscription")
    before = stream_messages(nats.port)
    assert post(evd, "/publish", b"{}", binary("order.cancelled.v1", "w2"))[0] == 204
    assert unrouted_total(evd) == 5, evd.backend()
    wait_for(lambda: stream_messages(nats.port) == before + 1, 10, what="the event kept")
    assert evd.stop() == 0


if __name__ == "__main__":
    run_tests(globals())
