# SPDX-License-Identifier: Apache-2.0
"""Just enough of the NATS client protocol over a socket (python3 standard library only) for the
dispatcher's tests and benchmark: PUB/HPUB straight into `kyma.>` (bypassing eventingd), and
JetStream API requests (consumer and stream info)."""
import hashlib
import json
import socket


def consumer_name(ns, name, subject):
    """Kyma's consumer name: first 32 hex digits of sha256("<ns>/<name>/<subject>")."""
    return hashlib.sha256(f"{ns}/{name}/{subject}".encode()).hexdigest()[:32]


class NatsClient:
    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.f = self.sock.makefile("rb")
        line = self.f.readline()
        assert line.startswith(b"INFO"), line
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                          b'"no_responders":true,"protocol":1}\r\nSUB _INBOX.evddisp.* 1\r\n')
        self.ping()
        self.n = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _read_until(self, want_inbox=None):
        """Reads protocol lines until PONG (want_inbox None) or a message on want_inbox;
        returns (header bytes or None, payload bytes) for a message."""
        while True:
            line = self.f.readline()
            if not line:
                raise AssertionError("NATS connection closed")
            op = line.split(b" ", 1)[0].strip()
            if op == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif op == b"PONG":
                if want_inbox is None:
                    return None
            elif op == b"MSG":
                parts = line.split()
                payload = self.f.read(int(parts[-1]) + 2)[:-2]
                if want_inbox and parts[1].decode() == want_inbox:
                    return None, payload
            elif op == b"HMSG":
                parts = line.split()
                hlen, total = int(parts[-2]), int(parts[-1])
                raw = self.f.read(total + 2)[:-2]
                if want_inbox and parts[1].decode() == want_inbox:
                    return raw[:hlen], raw[hlen:]
            elif op == b"-ERR":
                raise AssertionError(line)

    def ping(self):
        self.sock.sendall(b"PING\r\n")
        self._read_until(None)

    def publish(self, subject, data=b"", headers=None, reply=None, flush=True):
        """PUB, or HPUB when headers (a list of (name, value) or a dict) are given."""
        r = f" {reply}" if reply else ""
        if headers is None:
            self.sock.sendall(f"PUB {subject}{r} {len(data)}\r\n".encode() + data + b"\r\n")
        else:
            items = headers.items() if isinstance(headers, dict) else headers
            hdr = b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in items) + b"\r\n"
            self.sock.sendall(f"HPUB {subject}{r} {len(hdr)} {len(hdr) + len(data)}\r\n".encode() +
                              hdr + data + b"\r\n")
        if flush:
            self.ping()

    def request(self, subject, payload=None):
        self.n += 1
        inbox = f"_INBOX.evddisp.{self.n}"
        data = payload if isinstance(payload, bytes) else (json.dumps(payload).encode() if payload is not None else b"")
        self.sock.sendall(f"PUB {subject} {inbox} {len(data)}\r\n".encode() + data + b"\r\n")
        hdr, body = self._read_until(inbox)
        if hdr is not None and hdr.startswith(b"NATS/1.0 503"):
            raise AssertionError(f"no responders for {subject}")
        return json.loads(body) if body else {}

    def js_publish(self, subject, data=b"", headers=None):
        """A JetStream publish: waits for the stream's ack; returns it (a dict)."""
        self.n += 1
        inbox = f"_INBOX.evddisp.{self.n}"
        self.publish(subject, data, headers or [], reply=inbox, flush=False)
        hdr, body = self._read_until(inbox)
        if hdr is not None and hdr.startswith(b"NATS/1.0 503"):
            raise AssertionError(f"no stream for {subject}")
        return json.loads(body)

    def consumer(self, name, stream="sap"):
        r = self.request(f"$JS.API.CONSUMER.INFO.{stream}.{name}")
        return None if "error" in r else r

    def consumers(self, stream="sap"):
        out, offset = {}, 0
        while True:
            r = self.request(f"$JS.API.CONSUMER.LIST.{stream}", {"offset": offset})
            if "error" in r:
                return {}
            got = r.get("consumers") or []
            for c in got:
                out[c["name"]] = c
            offset += len(got)
            if not got or offset >= r["total"]:
                return out

    def stream(self, stream="sap"):
        r = self.request(f"$JS.API.STREAM.INFO.{stream}")
        return None if "error" in r else r
