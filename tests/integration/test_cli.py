#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`eventingd publish` and `eventingd display` against each other: display prints what publish
sends in binary and structured mode (and batches sent by hand), publish's exit statuses (0, 1 on
an HTTP error, 64 usage, 69 unreachable), and display stops cleanly on SIGTERM/SIGINT."""
import json
import os
import re
import signal
import subprocess

from evd_harness import (EVENTINGD, SANITIZER_MARKS, eventingd_cli, free_port, http_request,
                         run_tests, scaled, track, wait_for)


def no_sanitizer_report(text, who):
    for mark in SANITIZER_MARKS:
        assert mark not in text, f"sanitizer report in {who}'s stderr:\n{text}"


def publish(*args, **kw):
    rc, out, err = eventingd_cli("publish", *args, **kw)
    no_sanitizer_report(err, "eventingd publish")
    return rc, out, err


class Display:
    """`eventingd display` on a port the kernel picks; its address is read from its stderr."""

    def __init__(self, tmp, listen="127.0.0.1:0"):
        self.out_path = os.path.join(tmp, "display.out")
        self.err_path = os.path.join(tmp, "display.err")
        self.proc = subprocess.Popen([EVENTINGD, "display", "--listen", listen],
                                     stdout=open(self.out_path, "wb"),
                                     stderr=open(self.err_path, "wb"))
        m = wait_for(lambda: self.alive() and re.search(r"sent to (http://[^/\s]+)/", self.stderr()),
                     what="display's address")
        self.url = m.group(1)
        self.port = int(self.url.rsplit(":", 1)[1])

    def alive(self):
        assert self.proc.poll() is None, f"display exited {self.proc.returncode}: {self.stderr()}"
        return True

    def stdout(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def events(self):
        """The printed events, one string each."""
        return [e for e in self.stdout().split("\n\n") if e.strip()]

    def wait_events(self, n):
        return wait_for(lambda: len(self.events()) >= n and self.events(),
                        what=f"{n} event(s) printed by display (got {self.stdout()!r})")

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        rc = self.proc.wait(scaled(10))
        no_sanitizer_report(self.stderr(), "eventingd display")
        return rc

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_binary_mode(tmp):
    d = track(Display(tmp))
    data = '{"order": 12345678901234567890, "items": ["a", "b"]}'
    rc, out, err = publish("--url", d.url + "/", "--type", "order.created.v1",
                           "--source", "/shop app", "--id", "A-1", "--data", data,
                           "--extension", "tenant=acme corp", "--extension", "abc=1")
    assert rc == 0, (rc, out, err)
    assert out.splitlines()[0] == "204 No Content", out
    ev = d.wait_events(1)[0]
    assert "binary mode, POST / from 127.0.0.1:" in ev, ev
    for line in ("  type: order.created.v1", "  source: /shop app", "  id: A-1",
                 "  datacontenttype: application/json", "  tenant: acme corp",
                 '    "order": 12345678901234567890,'):
        assert line in ev.splitlines(), (line, ev)
    # Extensions are sorted by name.
    assert ev.index("  abc: 1") < ev.index("  tenant: acme corp"), ev
    assert d.stop() == 0


def test_structured_mode(tmp):
    d = track(Display(tmp))
    rc, out, err = publish("--url", d.url + "/sink/path", "--structured", "--type", "t.v1",
                           "--source", "src", "--data", "hello \"world\"", "-e", "traceid=xyz")
    assert rc == 0, (rc, out, err)
    assert out.startswith("204 No Content"), out
    ev = d.wait_events(1)[0]
    assert "structured mode, POST /sink/path" in ev, ev
    lines = ev.splitlines()
    for line in ("  type: t.v1", "  source: src", "  datacontenttype: text/plain",
                 "  traceid: xyz", '  hello "world"'):
        assert line in lines, (line, ev)
    # A generated id is a UUIDv4.
    ids = [l for l in lines if l.startswith("  id: ")]
    assert len(ids) == 1 and re.fullmatch(r"  id: [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", ids[0]), ev

    # JSON data from a file, structured: inserted byte for byte (the big number survives).
    path = os.path.join(tmp, "data.json")
    with open(path, "w") as f:
        f.write('{"n": 98765432109876543210}\n')
    rc, out, err = publish("--url", d.url + "/", "--structured", "--type", "t.v2",
                           "--source", "src", "--data", "@" + path, "--id", "file-1")
    assert rc == 0, (rc, out, err)
    ev = d.wait_events(2)[1]
    assert "  id: file-1" in ev and '    "n": 98765432109876543210' in ev, ev

    # Data from stdin, binary mode.
    rc, out, err = publish("--url", d.url + "/", "--type", "t.v3", "--source", "src",
                           "--data", "@-", "--id", "stdin-1", input="[1, 2]")
    assert rc == 0, (rc, out, err)
    ev = d.wait_events(3)[2]
    assert "  id: stdin-1" in ev and "    1,\n    2\n  ]" in ev, ev
    assert d.stop(signal.SIGINT) == 0


def test_structured_bad_json(tmp):
    d = track(Display(tmp))
    # Declared JSON but not JSON: refused before anything is sent.
    rc, out, err = publish("--url", d.url + "/", "--structured", "--type", "t", "--source", "s",
                           "--data", "{not json", "--content-type", "application/json")
    assert rc == 64, (rc, out, err)
    assert "not valid JSON" in err, err
    # Without --content-type, data that opens an object or an array must be JSON: refused as
    # a usage error in either mode, from the command line and from a file (issue 7).
    path = os.path.join(tmp, "broken.json")
    with open(path, "w") as f:
        f.write('{"id":\n')
    for extra in ((), ("--structured",)):
        for data in ('{"id":', "@" + path):
            rc, out, err = publish("--url", d.url + "/", *extra, "--type", "t", "--source", "s",
                                   "--data", data)
            assert rc == 64, (extra, data, rc, out, err)
            assert "not valid JSON" in err and "usage: eventingd publish" in err, err
            assert out == "", out
    # An explicit non-JSON --content-type sends the same text as it is.
    rc, out, err = publish("--url", d.url + "/", "--structured", "--type", "t", "--source", "s",
                           "--data", "{not json", "--id", "txt", "--content-type", "text/plain")
    assert rc == 0, (rc, out, err)
    ev = d.wait_events(1)[0]
    assert "  datacontenttype: text/plain" in ev and "  {not json" in ev.splitlines(), ev
    rc, out, err = publish("--url", d.url + "/", "--type", "t", "--source", "s",
                           "--data", "@" + path, "--id", "txt-file", "--content-type", "text/plain")
    assert rc == 0, (rc, out, err)
    ev = d.wait_events(2)[1]
    assert "  id: txt-file" in ev and '  {"id":' in ev.splitlines(), ev
    # Nothing refused reached the sink.
    assert len(d.events()) == 2
    assert d.stop() == 0


def test_display_batch_and_malformed(tmp):
    d = track(Display(tmp))
    batch = json.dumps([
        {"specversion": "1.0", "id": "b1", "source": "s", "type": "t.one", "data": {"k": 1}},
        {"specversion": "1.0", "id": "b2", "source": "s", "type": "t.two", "zz": "ext"},
    ])
    status, _, body = http_request("POST", d.url + "/", body=batch,
                                   headers={"Content-Type": "application/cloudevents-batch+json"})
    assert status == 204, (status, body)
    evs = d.wait_events(2)
    assert "batched mode" in evs[0] and "  id: b1" in evs[0] and '    "k": 1' in evs[0], evs
    assert "  id: b2" in evs[1] and "  zz: ext" in evs[1], evs

    status, _, body = http_request("POST", d.url + "/", body=b"{}",
                                   headers={"Content-Type": "application/cloudevents+json"})
    assert status == 400 and body.strip(), (status, body)
    status, _, body = http_request("POST", d.url + "/", body=b"hello")
    assert status == 400 and b"ce-specversion" in body, (status, body)
    status, _, body = http_request("POST", d.url + "/", body=b"x",
                                   headers={"Content-Type": "application/cloudevents+xml"})
    assert status == 415, (status, body)
    status, _, _ = http_request("GET", d.url + "/")
    assert status == 405
    assert len(d.events()) == 2
    assert "400" in d.stderr()

    # An event the sink refuses: publish exits 1 with the reason on stderr.
    rc, out, err = publish("--url", d.url + "/", "--type", "", "--source", "s")
    assert rc == 1, (rc, out, err)
    assert "400 Bad Request" in err and "type" in err, err
    assert d.stop() == 0


def test_default_url_from_config(tmp):
    d = track(Display(tmp))
    cfg = os.path.join(tmp, "evd.yaml")
    with open(cfg, "w") as f:
        # A wildcard listener is reached on 127.0.0.1.
        f.write(f'publish:\n  listen: "0.0.0.0:{d.port}"\n')
    rc, out, err = publish("-c", cfg, "--type", "t", "--source", "s", "--id", "cfg-1")
    assert rc == 0, (rc, out, err)
    ev = d.wait_events(1)[0]
    assert "POST /publish from" in ev and "  id: cfg-1" in ev, ev
    # A broken configuration is a configuration error.
    with open(cfg, "w") as f:
        f.write("publish:\n  listn: x\n")
    rc, out, err = publish("-c", cfg, "--type", "t", "--source", "s")
    assert rc == 78, (rc, out, err)
    assert d.stop() == 0


def test_unreachable(tmp):
    port = free_port()
    rc, out, err = publish("--url", f"http://127.0.0.1:{port}/publish", "--type", "t",
                           "--source", "s")
    assert rc == 69, (rc, out, err)
    assert f"127.0.0.1:{port}" in err, err


def test_usage_errors(tmp):
    url = "http://127.0.0.1:9/"
    cases = [
        ("publish", "--source", "s", "--url", url),                       # no --type
        ("publish", "--type", "t", "--url", url),                         # no --source
        ("publish", "--type", "t", "--source", "s", "--bogus"),
        ("publish", "--type", "t", "--source", "s", "extra"),
        ("publish", "--type", "t", "--source", "s", "--type"),            # missing argument
        ("publish", "--type", "t", "--source", "s", "-e", "noequals"),
        ("publish", "--type", "t", "--source", "s", "-e", "Bad_Name=1"),
        ("publish", "--type", "t", "--source", "s", "-e", "id=1"),
        ("publish", "--type", "t", "--source", "s", "-e", "a=1", "-e", "a=2"),
        ("publish", "--type", "t", "--source", "s", "--url", "https://127.0.0.1:9/"),
        ("display", "--bogus"),
        ("display", "extra"),
        ("display", "--listen", "not-an-address"),
    ]
    for args in cases:
        rc, out, err = eventingd_cli(*args, timeout=10)
        assert rc == 64, (args, rc, out, err)
        assert err.strip(), args
        no_sanitizer_report(err, " ".join(args))
    rc, out, err = eventingd_cli("publish", "--type", "t", "--source", "s",
                                 "--data", "@" + os.path.join(tmp, "missing"), "--url", url)
    assert rc == 66 and "missing" in err, (rc, out, err)


def test_display_port_in_use(tmp):
    d = track(Display(tmp))
    rc, out, err = eventingd_cli("display", "--listen", f"127.0.0.1:{d.port}", timeout=10)
    assert rc == 69, (rc, out, err)
    assert d.stop() == 0


if __name__ == "__main__":
    run_tests(globals())
