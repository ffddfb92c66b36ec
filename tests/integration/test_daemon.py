#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The daemon's life: embedded and external NATS, readiness, signals, reload, sd_notify, and no
nats-server outliving eventingd."""
import os
import signal
import socket
import time

from evd_harness import (Eventingd, NatsServer, NotifySocket, http_request, pid_alive, run_tests,
                         track, wait_for)


def garbage_request(evd):
    """Sends bytes that are not HTTP to the publish listener; returns its answer. The HTTP
    server logs such a refusal ("<peer>: 400 <reason>") at debug level only."""
    with socket.create_connection(("127.0.0.1", evd.publish_port), 10) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        s.settimeout(10)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk


def refusals_logged(evd):
    return sum(1 for line in evd.stderr().splitlines() if ": 400 " in line)


def embedded_pid(evd):
    return evd.backend()["embedded"]["pid"]


def test_embedded_ready_and_sigterm(tmp):
    notify = track(NotifySocket(tmp))
    evd = track(Eventingd(tmp, extra_env={"NOTIFY_SOCKET": notify.path}))
    evd.start()
    notify.wait_for("READY=1")
    evd.wait_ready()
    b = evd.backend()
    assert b["mode"] == "embedded", b
    assert b["nats"]["state"] == "ready", b
    assert b["nats"]["stream"]["name"] == "sap", b
    assert b["nats"]["stream"]["subjects"] == ["kyma.>"], b
    assert b["nats"]["stream"]["retention"] == "interest", b
    assert b["embedded"]["url"].startswith("nats://127.0.0.1:"), b
    child = b["embedded"]["pid"]
    assert child > 0 and pid_alive(child)
    # Both listeners answer the health routes.
    assert http_request("GET", evd.publish + "/healthz")[0] == 200
    assert http_request("GET", evd.publish + "/readyz")[0] == 200
    assert any(m.startswith("STATUS=") for m in notify.poll()), notify.messages
    assert evd.stop() == 0
    notify.wait_for("STOPPING=1")
    assert not pid_alive(child), "nats-server outlived eventingd"


def test_embedded_child_killed_is_restarted_on_same_port(tmp):
    evd = track(Eventingd(tmp))
    evd.start()
    evd.wait_ready()
    b = evd.backend()
    url, child = b["embedded"]["url"], b["embedded"]["pid"]
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: evd.backend()["embedded"]["pid"] not in (0, child), 20, what="a new nats-server")
    evd.wait_ready(30)
    b2 = evd.backend()
    assert b2["embedded"]["url"] == url, (url, b2)
    assert b2["embedded"]["restarts"] >= 1, b2
    assert b2["nats"]["state"] == "ready", b2
    assert evd.stop() == 0


def test_eventingd_killed_takes_child_along_and_restart_works(tmp):
    evd = track(Eventingd(tmp))
    evd.start()
    evd.wait_ready()
    b = evd.backend()
    child, url = b["embedded"]["pid"], b["embedded"]["url"]
    evd.proc.kill()
    evd.proc.wait()
    wait_for(lambda: not pid_alive(child), 5, what="nats-server to die with its parent")
    # A new eventingd on the same state directory reuses the port and the store.
    evd.start()
    evd.wait_ready(40)
    assert evd.backend()["embedded"]["url"] == url
    assert evd.stop() == 0


def test_external_nats_outage(tmp):
    nats = track(NatsServer(tmp)).start()
    evd = track(Eventingd(tmp, nats_url=nats.url))
    evd.start()
    evd.wait_ready()
    b = evd.backend()
    assert b["mode"] == "external" and "embedded" not in b, b
    nats.stop(signal.SIGKILL)
    wait_for(lambda: http_request("GET", evd.admin + "/readyz")[0] == 503, 15, what="readyz 503")
    status, headers, body = http_request("GET", evd.publish + "/readyz")
    assert status == 503 and "retry-after" in headers, (status, headers)
    assert b"not ready" in body
    nats.start()
    evd.wait_ready(30)
    assert evd.stop() == 0


def test_external_nats_not_up_at_start(tmp):
    nats = track(NatsServer(tmp))  # not started yet
    evd = track(Eventingd(tmp, nats_url=nats.url))
    evd.start()
    evd.wait_healthy()
    time.sleep(1)
    assert http_request("GET", evd.admin + "/readyz")[0] == 503
    nats.start()
    evd.wait_ready(30)
    assert evd.stop() == 0


def test_sighup_bad_config_keeps_running_one(tmp):
    notify = track(NotifySocket(tmp))
    evd = track(Eventingd(tmp, extra_env={"NOTIFY_SOCKET": notify.path}))
    evd.start()
    evd.wait_ready()
    good = open(evd.config_path).read()
    evd.write_config(good + "dispatch:\n  timeout: soon\n")
    evd.signal(signal.SIGHUP)
    wait_for(lambda: "keeping the running configuration" in evd.stderr(), 10, what="reload refusal")
    assert "dispatch.timeout" in evd.stderr()
    notify.wait_for("RELOADING=1")
    evd.wait_ready()
    # At debug level a refused request is logged.
    assert garbage_request(evd).startswith(b"HTTP/1.1 400 "), "garbage gets a 400"
    wait_for(lambda: refusals_logged(evd) == 1, what="the refusal logged at debug level")
    # A valid change applies: the level really changes.
    evd.write_config(good.replace('"debug"', '"info"'))
    evd.signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in evd.stderr(), 10, what="reload")
    assert garbage_request(evd).startswith(b"HTTP/1.1 400 ")
    # One loop thread writes every line in order: once the next reload's line is there, a debug
    # line for the refusal before it would be there too.
    evd.signal(signal.SIGHUP)
    wait_for(lambda: evd.stderr().count("configuration reloaded") == 2, what="second reload")
    assert refusals_logged(evd) == 1, "a debug line after log.level changed to info"
    assert evd.stop() == 0


def test_sighup_names_keys_needing_restart(tmp):
    evd = track(Eventingd(tmp))
    evd.start()
    evd.wait_ready()
    port = evd.publish_port
    text = open(evd.config_path).read().replace(f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}")
    evd.write_config(text)
    evd.signal(signal.SIGHUP)
    wait_for(lambda: "only after a restart" in evd.stderr(), 10, what="restart-keys warning")
    assert "publish.listen" in evd.stderr()
    # Still serving on the old address.
    assert http_request("GET", evd.publish + "/healthz")[0] == 200
    assert evd.stop() == 0


def test_watchdog_pings(tmp):
    notify = track(NotifySocket(tmp))
    # Without WATCHDOG_PID, sd_watchdog_enabled() accepts WATCHDOG_USEC for any process.
    evd = track(Eventingd(tmp, extra_env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"}))
    evd.env.pop("WATCHDOG_PID", None)
    evd.start()
    notify.wait_for("WATCHDOG=1", 5)
    assert evd.stop() == 0


def test_admin_routes(tmp):
    evd = track(Eventingd(tmp))
    evd.start()
    evd.wait_ready()
    status, headers, body = http_request("GET", evd.admin + "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain"), (status, headers)
    assert b"eventingd_ready 1" in body, body[:2000]
    assert http_request("GET", evd.admin + "/nope")[0] == 404
    assert http_request("POST", evd.admin + "/v1/backend", body=b"x")[0] == 405
    assert evd.stop() == 0


if __name__ == "__main__":
    run_tests(globals())
