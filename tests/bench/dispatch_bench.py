#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The dispatcher's benchmark (issue 8; not a timed test, not part of `meson test`).

    ninja -C build && tests/bench/dispatch_bench.py [--build build] [--events 200000] [--rounds 3]
                                                    [--perf /tmp/drain.perf] [--skip-memory]

Needs nats-server, nginx (nginx-light) and wrk (tools/setup installs them). Everything runs on
loopback, on free ports, in a temporary directory. In one run:

1. Drain. One subscription (`maxInFlightMessages: 100`) whose sink is nginx answering 204 to
   every POST over keep-alive. eventingd is started once to create the durable consumer, then
   stopped; N events of 512 B are put straight into JetStream as eventingd stores them
   (`bench_js_raw ce`: CloudEvents NATS binding, binary mode); eventingd is started again and the
   clock runs until the consumer has nothing pending and nothing awaiting an ack (consumer info,
   polled every 50 ms). Printed: drain rate from eventingd's start and from its readiness,
   eventingd's CPU seconds per 1,000 events and peak RSS.
2. Latency: a second subscription whose sink is a Python sink (evd_sink.Sink) recording arrival
   times; events POSTed to eventingd at a fixed rate (--latency-rate, default 200/s for
   --latency-seconds, default 10 s); publish-to-sink latency p50/p90/p99/max (time from sending
   the publish request to the sink reading the delivered request, both clocks in this process).
3. Raw consume: `bench_js_raw consume` (nats.c, a push consumer with MaxAckPending 100 and a
   deliver group, messages taken by a core queue subscription and acked by publishing +ACK, as
   eventingd does), over the same number of the same events.
4. HTTP ceiling: wrk POSTing the same requests to that nginx with as many connections as the
   dispatcher may open (dispatch.max_connections_per_sink, 64), tests/bench/dispatch.lua.
   ratio = drain rate / min(raw consume, HTTP ceiling); issue 8's target is >= 0.5 (aim 0.7).
5. Memory: a fresh eventingd with 100 subscriptions (maxInFlightMessages 100 each) on the same
   type, sinks that hold every request open (an asyncio server on 100 ports); 100 events
   published = 10,000 deliveries in flight at once (JetStream awaits 10,000 acks; with the default
   dispatch.max_connections_per_sink of 64, 6,400 requests are open at the sinks and eventingd
   holds the rest, --mem-conns 100 opens all 10,000); eventingd's RSS then (target < 64 MiB),
   before the sinks answer and everything drains.

The machine is shared: compare ratios within one round, not absolute rates; --rounds N repeats
1, 3 and 4 N times and prints the median round (by ratio) and every round's ratio. --perf FILE
records eventingd with `perf record -g` during each drain (`perf report -i FILE.1` afterwards).
"""
import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import evd_harness  # noqa: E402
from evd_harness import Eventingd, NatsServer, free_port, http_request, wait_for  # noqa: E402
from bench_common import cpu_seconds, start_nginx  # noqa: E402
from evd_nats import NatsClient, consumer_name  # noqa: E402
from evd_sink import Sink  # noqa: E402

SUBJECT = "kyma.bench.order.created.v1"


def manifest(name, sink, type_="order.created.v1", source="bench", mif=100):
    return (f"apiVersion: eventing.kyma-project.io/v1alpha2\nkind: Subscription\nmetadata:\n  name: {name}\n"
            f"spec:\n  source: {source}\n  types:\n    - {type_}\n  sink: {sink}\n"
            f"  config:\n    maxInFlightMessages: \"{mif}\"\n")



def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0



def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def sub_ready(evd, name):
    status, _, body = http_request("GET", f"{evd.admin}/v1/subscriptions/default/{name}")
    if status != 200:
        return False
    it = json.loads(body)
    st = it["status"] if isinstance(it.get("status"), dict) else it
    return st.get("ready") is True


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


class HoldingSinks:
    """Sinks that read every request and answer none until release(): an asyncio server on
    `count` ports (thousands of open requests cost no thread each)."""

    def __init__(self, count):
        self.count = count
        self.ports = []
        self.held = 0
        self.answered = 0
        self._loop = asyncio.new_event_loop()
        self._release = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._release = asyncio.Event()
        # Port 0: the kernel picks free ports (no window in which another process takes one).
        self._servers = [self._loop.run_until_complete(asyncio.start_server(self._conn, "127.0.0.1", 0, backlog=4096))
                         for _ in range(self.count)]
        self.ports = [srv.sockets[0].getsockname()[1] for srv in self._servers]
        self._ready.set()
        self._loop.run_forever()

    async def _conn(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                if m:
                    await reader.readexactly(int(m.group(1)))
                self.held += 1
                await self._release.wait()
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                self.held -= 1
                self.answered += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            try:
                writer.close()
            except RuntimeError:  # the loop is gone (the benchmark ends)
                pass

    def release(self):
        self._loop.call_soon_threadsafe(self._release.set)

    def close(self):
        # Stop listening; the loop's thread is a daemon and ends with the benchmark.
        def stop():
            for s in self._servers:
                s.close()
        self._loop.call_soon_threadsafe(stop)


def wrk(url, conns, threads, duration):
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "--latency",
                          "-s", os.path.join(HERE, "dispatch.lua"), url],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"^wrk_result (.*)$", out, re.M)
    if not m:
        raise SystemExit(f"wrk printed no result:\n{out}")
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def publish(conn_holder, evd, id_, type_, data):
    """POST /publish on a kept-alive connection (reopened when eventingd closed it)."""
    import http.client
    for _ in range(2):
        if conn_holder[0] is None:
            conn_holder[0] = http.client.HTTPConnection("127.0.0.1", evd.publish_port, timeout=10)
        c = conn_holder[0]
        try:
            c.request("POST", "/publish", body=data, headers={
                "Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": id_,
                "ce-source": "bench", "ce-type": type_})
            r = c.getresponse()
            r.read()
            return r.status
        except (OSError, Exception):  # noqa: BLE001 - reconnect once
            c.close()
            conn_holder[0] = None
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--duration", type=int, default=10, help="wrk seconds")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--latency-rate", type=int, default=200)
    ap.add_argument("--latency-seconds", type=int, default=10)
    ap.add_argument("--drain-timeout", type=float, default=900)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--drain-conns", type=int, default=0,
                    help="dispatch.max_connections_per_sink while draining (default: the default, 64)")
    ap.add_argument("--rounds", type=int, default=1, help="drain/raw/HTTP rounds; the median is printed")
    ap.add_argument("--perf", metavar="FILE", help="perf record -g eventingd during each drain into FILE.<round>")
    ap.add_argument("--mem-conns", type=int, default=64,
                    help="dispatch.max_connections_per_sink in the memory phase (default: the default, 64)")
    args = ap.parse_args()

    build = os.path.abspath(args.build)
    os.environ["EVENTINGD"] = os.path.join(build, "eventingd")
    evd_harness.EVENTINGD = os.environ["EVENTINGD"]
    raw_bin = os.path.join(build, "tests", "bench", "bench_js_raw")
    for prog in (os.environ["EVENTINGD"], raw_bin):
        if not os.path.exists(prog):
            raise SystemExit(f"{prog} missing: build first (ninja -C {build})")
    for prog in ("wrk", "nginx", "nats-server"):
        if not shutil.which(prog):
            raise SystemExit(f"{prog} missing: tools/setup installs it")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    tmp = tempfile.mkdtemp(prefix="evd-dbench-")
    nats = NatsServer(tmp).start()
    nginx, nginx_port = start_nginx(tmp)
    lat_sink = Sink()
    cfg = {"log": {"level": "warn"}}
    if args.drain_conns:
        cfg["dispatch"] = {"max_connections_per_sink": args.drain_conns}
    evd = Eventingd(tmp, nats_url=nats.url, config=cfg)
    evd2 = holding = None
    results = {}
    try:
        nginx_url = f"http://127.0.0.1:{nginx_port}/events"
        with open(os.path.join(evd.subs_dir, "bench.yaml"), "w") as f:
            f.write(manifest("bench", nginx_url))
        with open(os.path.join(evd.subs_dir, "latency.yaml"), "w") as f:
            f.write(manifest("latency", lat_sink.url + "/lat", type_="latency.measured.v1"))
        evd.start()
        evd.wait_ready()
        wait_for(lambda: sub_ready(evd, "bench") and sub_ready(evd, "latency"), 30, what="subscriptions ready")
        assert evd.stop() == 0, "eventingd did not stop cleanly"

        # 1, 3, 4 per round: drain, raw consume, HTTP ceiling, close together in time.
        nc = NatsClient(nats.port)
        cname = consumer_name("default", "bench", SUBJECT)
        rounds = []
        for rnd in range(args.rounds):
            if evd.proc.poll() is None:
                assert evd.stop() == 0
            r = {}
            out = subprocess.run([raw_bin, "ce", nats.url, SUBJECT, str(args.events), "512", "8192"],
                                 capture_output=True, text=True, check=True).stdout
            print(f"  round {rnd + 1}: " + out.strip(), flush=True)
            c = nc.consumer(cname)
            assert c["num_pending"] == args.events, c
            seq0 = c["delivered"]["consumer_seq"]
            t_start = time.monotonic()
            evd.start()
            evd.wait_ready(60)
            t_ready = time.monotonic()
            pid = evd.proc.pid
            cpu0 = cpu_seconds(pid)
            # The other two processes of the pipeline: nats-server and nginx's worker.
            others = [nats.proc.pid] + children(nginx.pid)
            others0 = sum(cpu_seconds(p) for p in others)
            perf = None
            if args.perf:
                perf = subprocess.Popen(["perf", "record", "-g", "-o", f"{args.perf}.{rnd + 1}", "-p", str(pid)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            def drained():
                c = nc.consumer(cname)
                return c["num_pending"] == 0 and c["num_ack_pending"] == 0 and c
            c = wait_for(drained, args.drain_timeout, interval=0.05, what="the backlog drained")
            t_done = time.monotonic()
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait(60)
            r["drain_from_start"] = args.events / (t_done - t_start)
            r["drain"] = args.events / (t_done - t_ready)
            r["drain_s"] = t_done - t_ready
            r["cpu_per_1000"] = (cpu_seconds(pid) - cpu0) / args.events * 1000
            r["others_per_1000"] = (sum(cpu_seconds(p) for p in others) - others0) / args.events * 1000
            r["rss_drain"] = proc_status(pid, "VmHWM") / 1024
            r["redelivered"] = c["delivered"]["consumer_seq"] - seq0 - args.events
            out = subprocess.run([raw_bin, "consume", nats.url, "sap", "kyma.benchraw.order.created.v1",
                                  str(args.events), "512", "100"], capture_output=True, text=True, check=True).stdout
            r["raw"] = float(re.search(r"raw_consume_rate=(\d+)", out).group(1))
            r["http"] = wrk(nginx_url, 64, args.threads, args.duration)
            r["ratio"] = r["drain"] / min(r["raw"], r["http"]["rate"])
            print(f"  round {rnd + 1}: drain {r['drain']:.0f}/s, raw consume {r['raw']:.0f}/s, "
                  f"HTTP ceiling {r['http']['rate']:.0f}/s, ratio {r['ratio']:.2f}", flush=True)
            rounds.append(r)

        # 2. Latency at a steady rate.
        n = args.latency_rate * args.latency_seconds
        sent = {}
        holder = [None]
        t0 = time.monotonic()
        refused = 0
        for i in range(n):
            pause = t0 + i / args.latency_rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            id_ = f"lat-{i}"
            sent[id_] = time.monotonic()
            if publish(holder, evd, id_, "latency.measured.v1", b'{"data":"' + b"x" * 501 + b'"}') != 204:
                refused += 1
        reqs = lat_sink.wait_requests(n - refused, 60, path="/lat")
        lat = {}
        for r in reqs:
            id_ = r.header("ce-id")
            lat.setdefault(id_, (r.arrived - sent[id_]) * 1000)
        lats = list(lat.values())
        results["lat"] = (pct(lats, 50), pct(lats, 90), pct(lats, 99), max(lats), len(lats), refused)
        results["rss_after_latency"] = proc_status(pid, "VmRSS") / 1024

        assert evd.stop() == 0

        # 5. Memory with 10,000 deliveries in flight.
        if not args.skip_memory:
            holding = HoldingSinks(100)
            evd2 = Eventingd(tmp, nats_url=nats.url, name="evd2", config={
                "log": {"level": "warn"},
                "dispatch": {"ack_wait": "5m", "timeout": "4m", "max_connections_per_sink": args.mem_conns}})
            for i, port in enumerate(holding.ports):
                with open(os.path.join(evd2.subs_dir, f"m{i:03d}.yaml"), "w") as f:
                    f.write(manifest(f"m{i:03d}", f"http://127.0.0.1:{port}/hold", type_="memory.held.v1"))
            evd2.start()
            evd2.wait_ready(60)
            wait_for(lambda: json.loads(http_request("GET", evd2.admin + "/v1/subscriptions")[2])["summary"]["ready"] == 100,
                     60, what="100 subscriptions ready")
            rss_idle = proc_status(evd2.proc.pid, "VmRSS") / 1024
            holder = [None]
            for i in range(100):
                assert publish(holder, evd2, f"mem-{i}", "memory.held.v1", b'{"data":"' + b"x" * 501 + b'"}') == 204
            t0 = time.monotonic()
            open_at_sinks = 100 * min(100, args.mem_conns)

            def ack_pending():
                return sum(c["num_ack_pending"] for c in nc.consumers().values()
                           if c["config"]["filter_subject"] == "kyma.bench.memory.held.v1")
            try:
                # JetStream handed all 10,000 to eventingd (awaiting acks) and the sinks hold as
                # many requests as the connection limit lets through; eventingd holds the rest.
                wait_for(lambda: holding.held >= open_at_sinks and ack_pending() >= 10000, 120, interval=0.2,
                         what="10,000 deliveries in flight")
            except AssertionError as e:
                print(f"  memory phase: {holding.held} requests at the sinks, {ack_pending()} awaiting acks: {e}")
            time.sleep(1)  # let RSS settle
            results["mem"] = (ack_pending(), holding.held, time.monotonic() - t0, rss_idle,
                              proc_status(evd2.proc.pid, "VmRSS") / 1024, proc_status(evd2.proc.pid, "VmHWM") / 1024)
            holding.release()
            wait_for(lambda: holding.answered >= 10000, 120, interval=0.1, what="10,000 answered")
            assert evd2.stop() == 0
    finally:
        for d in (evd, evd2):
            if d and d.proc and d.proc.poll() is None:
                d.stop()
        if holding:
            holding.close()
        lat_sink.close()
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(10)
        nats.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    rounds.sort(key=lambda r: r["ratio"])
    med = rounds[len(rounds) // 2]
    limit = min(med["raw"], med["http"]["rate"])
    print()
    print(f"dispatch benchmark ({args.events} events of 512 B, maxInFlightMessages 100, sink nginx 204; "
          f"{len(rounds)} round(s), the median round by ratio)")
    print(f"  1. drain (eventingd)              {med['drain']:>9.0f} events/s  ({med['drain_s']:.2f} s from "
          f"ready; {med['drain_from_start']:.0f}/s from start)")
    print(f"     eventingd CPU                  {med['cpu_per_1000'] * 1000:>9.1f} ms per 1,000 events "
          f"(CPU-bound ceiling {1000 / med['cpu_per_1000']:.0f}/s); peak RSS {med['rss_drain']:.1f} MiB; "
          f"redeliveries {med['redelivered']}")
    whole = med["cpu_per_1000"] + med["others_per_1000"]
    print(f"     + nats-server and nginx        {med['others_per_1000'] * 1000:>9.1f} ms per 1,000 events: the "
          f"pipeline's CPU-bound ceiling on {os.cpu_count()} CPUs is {os.cpu_count() * 1000 / whole:.0f}/s")
    p50, p90, p99, mx, cnt, refused = results["lat"]
    print(f"  2. publish-to-sink latency        p50 {p50:.2f} ms  p90 {p90:.2f} ms  p99 {p99:.2f} ms  max {mx:.2f} ms"
          f"  ({cnt} events at {args.latency_rate}/s; {refused} refused)")
    print(f"  3. raw nats.c consume + ack       {med['raw']:>9.0f} msgs/s (MaxAckPending 100)")
    h = med["http"]
    print(f"  4. HTTP ceiling (wrk -> nginx)    {h['rate']:>9.0f} req/s (64 connections; p99 {h['p99_ms']:.2f} ms,"
          f" non-2xx {h['non2xx']:.0f}, socket errors {h['socket_errors']:.0f})")
    all_rounds = ", ".join(f"{r['ratio']:.2f}" for r in rounds)
    print(f"  ratio drain / min(3, 4) = {med['drain']:.0f} / {limit:.0f} = {med['ratio']:.2f}"
          f"  (target >= 0.5, aim 0.7)" + (f"; all rounds: {all_rounds}" if len(rounds) > 1 else ""))
    if "mem" in results:
        pending, held, took, idle, rss, hwm = results["mem"]
        print(f"  5. RSS with {pending} deliveries in flight (100 subscriptions x 100; {held} requests open at "
              f"the sinks, max_connections_per_sink {args.mem_conns}): {rss:.1f} MiB (idle {idle:.1f} MiB, "
              f"peak {hwm:.1f} MiB, {(rss - idle) * 1024 / max(pending, 1):.1f} KiB per delivery)  (target < 64 MiB)")


if __name__ == "__main__":
    main()
