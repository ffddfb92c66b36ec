#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The NATS backend as the configuration describes it (issue 10): a cluster URL list connects and
fails over (a real 3-node JetStream cluster on loopback), percent-encoded credentials in nats.url,
the server's own reason for a refused connection, stream keys on SIGHUP, the embedded server sized
from the configuration, and files the configuration names checked before anything runs."""
import json
import os
import shutil
import signal
import subprocess

from evd_harness import (NATS_SERVER, Eventingd, NatsServer, Skip, eventingd_cli, free_port,
                         http_request, run_tests, scaled, track, wait_for)


class ClusterNode(NatsServer):
    """One node of a JetStream cluster: its own client port, route port and store dir."""

    def __init__(self, tmp, name, cluster_port, route_ports):
        super().__init__(tmp)
        self.name = name
        self.cluster_port = cluster_port
        self.route_ports = route_ports
        self.monitor_port = free_port()

    def start(self):
        routes = ",".join(f"nats-route://127.0.0.1:{p}" for p in self.route_ports)
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store,
             "-n", self.name, "--cluster_name", "evdtest", "-m", str(self.monitor_port),
             "--cluster", f"nats://127.0.0.1:{self.cluster_port}", "--routes", routes],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        return self

    def monitor(self, path):
        status, _, body = http_request("GET", f"http://127.0.0.1:{self.monitor_port}{path}", timeout=2)
        return status, body

    def has_eventingd(self):
        """The server's own view: is a client named eventingd connected to it?"""
        status, body = self.monitor("/connz")
        return status == 200 and any(c.get("name") == "eventingd" for c in json.loads(body)["connections"])


def start_cluster(tmp, n=3):
    if not NATS_SERVER:
        raise Skip("nats-server not installed (apt install nats-server)")
    cports = [free_port() for _ in range(n)]
    nodes = [track(ClusterNode(tmp, f"n{i}", cports[i], [p for j, p in enumerate(cports) if j != i]))
             for i in range(n)]
    for node in nodes:
        node.start()
    # JetStream answers once the cluster has a meta leader: /healthz is 200 on every node then.
    for node in nodes:
        wait_for(lambda: node.monitor("/healthz?js-enabled-only=true")[0] == 200 and
                 node.monitor("/healthz")[0] == 200, scaled(60), interval=0.2,
                 what=f"cluster node {node.name} healthy")
    return nodes


def publish(evd, i, timeout=5):
    status, _, body = http_request("POST", evd.publish + "/publish", body=b'{"n":%d}' % i, headers={
        "ce-specversion": "1.0", "ce-id": f"id-{i}", "ce-source": "test", "ce-type": "order.created.v1",
        "content-type": "application/json"}, timeout=timeout)
    return status


def ready(evd):
    return http_request("GET", evd.admin + "/readyz", timeout=2)


# ---- item 1: a cluster URL list connects and fails over ----

def test_cluster_url_list_connects_and_fails_over(tmp):
    nodes = start_cluster(tmp)
    urls = ",".join(n.url for n in nodes)
    evd = track(Eventingd(tmp, nats_url=urls, config={
        "stream": {"replicas": 3, "retention": "limits", "max_bytes": "64MiB"}}))
    evd.start()
    # Before the fix nats.c took the list for one URL and never connected.
    evd.wait_ready(timeout=scaled(60))
    b = evd.backend()["nats"]
    assert b["stream"]["replicas"] == 3, b
    assert b["url"] == urls, b
    for i in range(10):
        assert publish(evd, i) == 204
    # Kill the node eventingd is connected to (as the servers see it): nats.c moves to another
    # one of the list, the stream (R3) keeps a quorum of two, and publishing continues.
    victim = wait_for(lambda: next((n for n in nodes if n.has_eventingd()), None), scaled(10),
                      what="the node eventingd is connected to")
    victim.stop(signal.SIGKILL)
    survivors = [n for n in nodes if n is not victim]
    wait_for(lambda: any(n.has_eventingd() for n in survivors), scaled(30), interval=0.2,
             what="eventingd connected to a surviving node")
    wait_for(lambda: publish(evd, 100, timeout=scaled(10)) == 204, scaled(60), interval=0.5,
             what="a publish stored after the connected node was killed")
    # /v1/backend names the server it moved to.
    wait_for(lambda: evd.backend()["nats"]["server"]["url"] in [n.url for n in survivors], scaled(15),
             what="/v1/backend naming a surviving server")
    for i in range(101, 111):
        assert publish(evd, i, timeout=scaled(10)) == 204
    wait_for(lambda: ready(evd)[0] == 200, scaled(30), what="readyz 200 after failover")
    assert evd.stop() == 0


def test_cluster_yaml_list_form_and_replicas_on_sighup(tmp):
    nodes = start_cluster(tmp)
    evd = track(Eventingd(tmp, nats_url=[n.url for n in nodes], config={
        "stream": {"replicas": 1, "retention": "limits", "max_bytes": "64MiB"}}))
    evd.start()
    evd.wait_ready(timeout=scaled(60))
    assert evd.backend()["nats"]["stream"]["replicas"] == 1
    assert publish(evd, 1) == 204
    # stream.replicas is reloadable: updated in place.
    evd.config["stream"]["replicas"] = 3
    evd.write_config()
    evd.signal(signal.SIGHUP)
    wait_for(lambda: evd.backend()["nats"]["stream"]["replicas"] == 3, scaled(30),
             what="replicas 3 after SIGHUP")
    wait_for(lambda: publish(evd, 2) == 204, scaled(30), interval=0.5, what="a publish after the update")
    assert evd.stop() == 0


# ---- item 2: stream keys on SIGHUP ----

def reload(evd, **stream):
    evd.config.setdefault("stream", {}).update(stream)
    evd.write_config()
    n = evd.stderr().count("configuration reloaded")
    evd.signal(signal.SIGHUP)
    wait_for(lambda: evd.stderr().count("configuration reloaded") > n, scaled(10), what="reload")


def test_sighup_restart_only_stream_keys_keep_the_running_stream(tmp):
    nats = track(NatsServer(tmp).start())
    evd = track(Eventingd(tmp, nats_url=nats.url, config={"stream": {"retention": "limits"}}))
    evd.start()
    evd.wait_ready(timeout=scaled(30))
    assert publish(evd, 1) == 204
    # Before: the stream's subjects moved to "acme.>" while publish kept "kyma" (every publish
    # 504, readyz 200), and a new name looped on "subjects overlap" (readyz 503). The max_bytes
    # change rides along so that the checks below run after the reload's ensure.
    reload(evd, name="other", subject_prefix="acme", storage="memory", retention="interest",
           max_bytes="32MiB")
    # (deadletters.stream and nats.embedded.max_memory follow them as computed defaults.)
    assert ("changed keys that take effect only after a restart: stream.name, "
            "stream.subject_prefix, stream.storage, stream.retention; keeping their running "
            "values until then") in evd.stderr(), evd.stderr()
    wait_for(lambda: evd.backend()["nats"]["stream"]["max_bytes"] == 32 << 20, scaled(15),
             what="max_bytes updated")
    st = evd.backend()["nats"]["stream"]
    assert (st["name"], st["subjects"], st["storage"], st["retention"]) == \
        ("sap", ["kyma.>"], "file", "limits"), st
    for i in range(2, 12):
        assert publish(evd, i) == 204
    assert ready(evd)[0] == 200
    assert "overlap" not in evd.stderr()
    # The restart applies them: a new stream with the new subjects (the old one's "kyma.>"
    # does not overlap "acme.>").
    assert evd.stop() == 0
    evd.start()
    evd.wait_ready(timeout=scaled(30))
    st = evd.backend()["nats"]["stream"]
    assert (st["name"], st["subjects"], st["storage"], st["retention"]) == \
        ("other", ["acme.>"], "memory", "interest"), st
    assert publish(evd, 20) == 204
    assert evd.stop() == 0


def test_sighup_stream_limits_update_in_place(tmp):
    nats = track(NatsServer(tmp).start())
    evd = track(Eventingd(tmp, nats_url=nats.url, config={"stream": {"retention": "limits"}}))
    evd.start()
    evd.wait_ready(timeout=scaled(30))
    st = evd.backend()["nats"]["stream"]
    assert (st["max_bytes"], st["max_age_ms"], st["discard"], st["duplicate_window_ms"]) == \
        (700 << 20, None, "new", 120000), st
    reload(evd, max_bytes="100MiB", max_age="1h", discard="old", duplicate_window="30s")
    assert "only after a restart" not in evd.stderr(), evd.stderr()
    wait_for(lambda: evd.backend()["nats"]["stream"]["max_bytes"] == 100 << 20, scaled(15),
             what="max_bytes updated")
    st = evd.backend()["nats"]["stream"]
    assert (st["max_age_ms"], st["discard"], st["duplicate_window_ms"]) == (3600000, "old", 30000), st
    assert publish(evd, 1) == 204
    assert ready(evd)[0] == 200
    assert evd.stop() == 0


# ---- item 7: percent-encoded credentials ----

def auth_server(tmp, *args):
    nats = track(NatsServer(tmp))
    if not NATS_SERVER:
        raise Skip("nats-server not installed")
    nats.proc = subprocess.Popen(
        [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(nats.port), "-sd", nats.store, *args],
        stdout=open(nats.log, "ab"), stderr=subprocess.STDOUT)
    import socket
    wait_for(lambda: socket.create_connection(("127.0.0.1", nats.port), 0.2).close() or True,
             what="nats-server")
    return nats


def test_percent_encoded_credentials_in_url(tmp):
    nats = auth_server(tmp, "--user", "evd", "--pass", "p@ss:w/rd")
    url = f"nats://evd:p%40ss%3Aw%2Frd@127.0.0.1:{nats.port}"
    rc, out, err = eventingd_cli("check", "-c", Eventingd(tmp, name="chk", nats_url=url).config_path)
    assert rc == 0, (rc, out, err)
    evd = track(Eventingd(tmp, nats_url=url))
    evd.start()
    evd.wait_ready(timeout=scaled(30))
    assert "p%40ss" not in evd.stderr() and "p@ss" not in evd.stderr()
    b = evd.backend()["nats"]
    assert b["url"] == f"nats://***@127.0.0.1:{nats.port}", b
    assert b["server"]["url"] == f"nats://***@127.0.0.1:{nats.port}", b
    assert publish(evd, 1) == 204
    assert evd.stop() == 0


def test_bad_percent_encoding_is_a_config_error(tmp):
    evd = Eventingd(tmp, nats_url="nats://evd:p%zzss@127.0.0.1:4222")
    rc, out, err = eventingd_cli("check", "-c", evd.config_path)
    assert rc == 78, (rc, out, err)
    assert "nats.url" in err and "%25" in err, err


# ---- item 5: the server's reason for a refused connection, at once ----

def test_wrong_password_reported_at_once(tmp):
    nats = auth_server(tmp, "--user", "evd", "--pass", "right")
    evd = track(Eventingd(tmp, nats_url=nats.url, config={"nats": {"user": "evd", "password": "wrong"}}))
    evd.start()
    evd.wait_healthy()
    # Before: "no NATS server at ... yet" and readyz "connecting to NATS" for the first seconds.
    wait_for(lambda: "Authorization Violation" in ready(evd)[2].decode(), scaled(5),
             what="readyz naming the authorization violation")
    status, _, body = ready(evd)
    assert status == 503, (status, body)
    assert "Authorization Violation" in (evd.backend()["nats"]["last_error"] or "")
    assert "Authorization Violation" in evd.stderr()
    assert "no NATS server at" not in evd.stderr(), evd.stderr()
    assert evd.stop() == 0


def make_certs(tmp):
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl CLI)."""
    if not shutil.which("openssl"):
        raise Skip("openssl not installed")
    d = os.path.join(tmp, "pki")
    os.makedirs(d)

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=evd-test-ca")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n" if name == "server" else
                    "extendedKeyUsage=clientAuth\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return d


def test_missing_client_certificate_reported_at_once(tmp):
    pki = make_certs(tmp)
    nats = auth_server(tmp, "--tlsverify", "--tlscert", os.path.join(pki, "server.pem"),
                       "--tlskey", os.path.join(pki, "server.key"),
                       "--tlscacert", os.path.join(pki, "ca.pem"))
    evd = track(Eventingd(tmp, nats_url=f"tls://127.0.0.1:{nats.port}",
                          config={"nats": {"tls": {"ca": os.path.join(pki, "ca.pem")}}}))
    evd.start()
    evd.wait_healthy()
    wait_for(lambda: "last error" in ready(evd)[2].decode(), scaled(5), what="readyz with a reason")
    body = ready(evd)[2].decode()
    assert "client certificate" in body and "nats.tls.cert" in body, body
    assert "no NATS server at" not in evd.stderr(), evd.stderr()
    # With the client certificate it connects.
    evd.config["nats"]["tls"].update(cert=os.path.join(pki, "client.pem"),
                                     key=os.path.join(pki, "client.key"))
    evd2 = track(Eventingd(tmp, name="evd2", nats_url=f"tls://127.0.0.1:{nats.port}",
                           config={"nats": evd.config["nats"]}))
    evd2.start()
    evd2.wait_ready(timeout=scaled(30))
    assert evd.stop() == 0 and evd2.stop() == 0


# ---- item 3: the embedded server sized from the configuration ----

def test_embedded_memory_stream_becomes_ready(tmp):
    if not NATS_SERVER:
        raise Skip("nats-server not installed")
    # Before: max_memory_store was 64 MiB, below the default max_bytes of 700 MiB, and the
    # stream was refused forever ("insufficient memory resources available").
    evd = track(Eventingd(tmp, config={"stream": {"storage": "memory"}}))
    evd.start()
    evd.wait_ready(timeout=scaled(30))
    st = evd.backend()["nats"]["stream"]
    assert (st["storage"], st["max_bytes"]) == ("memory", 700 << 20), st
    assert publish(evd, 1) == 204
    assert evd.stop() == 0


def test_check_refuses_a_memory_store_too_small(tmp):
    evd = Eventingd(tmp, config={"stream": {"storage": "memory", "max_bytes": "128MiB"},
                                 "nats": {"embedded": {"max_memory": "100MiB"}}})
    rc, out, err = eventingd_cli("check", "-c", evd.config_path)
    assert rc == 78, (rc, out, err)
    assert "nats.embedded.max_memory: cannot hold the memory stream's stream.max_bytes (128MiB)" in err, err


# ---- item 4: files the configuration names ----

def check(evd):
    return eventingd_cli("check", "-c", evd.config_path)


def test_check_and_run_refuse_missing_files(tmp):
    missing = os.path.join(tmp, "nope")
    for cfg, key in (({"nats": {"creds": missing + ".creds"}}, "nats.creds"),
                     ({"nats": {"tls": {"ca": missing + "-ca.pem"}}}, "nats.tls.ca"),
                     ({"publish": {"access_log": missing + "/access.log"}}, "publish.access_log")):
        url = "embedded" if key == "publish.access_log" else "nats://127.0.0.1:4222"
        evd = Eventingd(tmp, nats_url=url, config=cfg)
        rc, out, err = check(evd)
        # Before: "configuration OK", and run retried forever with "Input/output error".
        assert rc == 78, (key, rc, out, err)
        assert f"{evd.config_path}:" in err and f": {key}: " in err and missing in err, (key, err)
        rc, out, err = eventingd_cli("run", "-c", evd.config_path, timeout=scaled(20))
        assert rc == 78, (key, rc, out, err)
        assert missing in err, (key, err)


def test_check_unreadable_credentials(tmp):
    creds = os.path.join(tmp, "nats.creds")
    with open(creds, "w") as f:
        f.write("-----BEGIN NATS USER JWT-----\nx\n------END NATS USER JWT------\n")
    os.chmod(creds, 0o600)
    evd = Eventingd(tmp, nats_url="nats://127.0.0.1:4222", config={"nats": {"creds": creds}})
    rc, out, err = check(evd)
    if os.geteuid() == 0:
        # root reads it; the unit's DynamicUser could not: a warning that says what to do.
        assert rc == 0, (rc, out, err)
        assert "warning: nats.creds:" in err and "LoadCredential=" in err, err
    else:
        os.chmod(creds, 0)
        rc, out, err = check(evd)
        assert rc == 78 and "Permission denied" in err and "LoadCredential=" in err, (rc, err)
    # A systemd credential path is checked inside the service only.
    evd = Eventingd(tmp, name="cred", nats_url="nats://127.0.0.1:4222",
                    config={"nats": {"creds": "/run/credentials/eventingd.service/nats.creds"}})
    env = dict(os.environ)
    env.pop("CREDENTIALS_DIRECTORY", None)
    rc, out, err = eventingd_cli("check", "-c", evd.config_path, env=env)
    assert rc == 0 and "systemd credential" in err, (rc, out, err)
    cdir = os.path.join(tmp, "run-credentials")
    os.makedirs(cdir)
    env["CREDENTIALS_DIRECTORY"] = cdir
    evd = Eventingd(tmp, name="cred2", nats_url="nats://127.0.0.1:4222",
                    config={"nats": {"creds": os.path.join(cdir, "nats.creds")}})
    rc, out, err = eventingd_cli("check", "-c", evd.config_path, env=env)
    assert rc == 78 and "nats.creds" in err, (rc, out, err)


# ---- item 8: health routes are logged and answer only GET/HEAD ----

def test_health_routes_logged_and_405_for_other_methods(tmp):
    nats = track(NatsServer(tmp).start())
    log = os.path.join(tmp, "access.log")
    evd = track(Eventingd(tmp, nats_url=nats.url, config={"publish": {"access_log": log}}))
    evd.start()
    evd.wait_ready(timeout=scaled(30))
    for base in (evd.admin, evd.publish):
        for path in ("/healthz", "/readyz"):
            status, headers, body = http_request("POST", base + path, body=b"x")
            # Before: the admin listener answered POST /healthz 200.
            assert status == 405 and headers.get("allow") == "GET, HEAD", (base, path, status, headers, body)
    assert http_request("GET", evd.publish + "/healthz")[0] == 200
    assert http_request("GET", evd.publish + "/readyz")[0] == 200
    assert publish(evd, 1) == 204
    # Before: the publish listener's /healthz and /readyz never reached the access log.
    wait_for(lambda: os.path.exists(log) and len(open(log).read().splitlines()) >= 5, scaled(10),
             what="access log lines")
    lines = [l.split() for l in open(log).read().splitlines()]
    assert [l[2:5] for l in lines] == [["POST", "/healthz", "405"], ["POST", "/readyz", "405"],
                                       ["GET", "/healthz", "200"], ["GET", "/readyz", "200"],
                                       ["POST", "/publish", "204"]], lines
    assert evd.stop() == 0


if __name__ == "__main__":
    run_tests(globals())
