#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The publish benchmark (not a timed test). In one run on this machine, with the same 512-byte
payload:

1. raw JetStream async publish rate from bench_js_raw (nats.c, bounded in flight), without and
   with the CloudEvents headers + Nats-Msg-Id eventingd writes;
2. the machine's HTTP ceiling: wrk against nginx answering `return 204;`;
3. eventingd POST /publish with wrk, binary mode, unique ids: 64 and 16 connections, then
   batches of 10 and 100 structured events (64 connections, counted in events/s); rate, p50 /
   p90 / p99, CPU per event (core-seconds / events, from /proc) of eventingd and of
   nats-server, peak RSS;
4. the 64-connection run again with every eventingd thread pinned to one core (taskset), since
   on two cores the HTTP ceiling gets a core to itself;
5. with --baseline BINARY: 64 and 16 connections against that eventingd binary too (another
   build, e.g. of main), started the same way against the same nats-server, so the two are
   compared within one run.

Prints eventingd's rate as a ratio of the lower of (1, with headers) and (2). The machine may be
shared: run it several times and compare within one run.

usage: tests/bench/publish_bench.py [--build build] [--duration 10] [--threads 2]
                                    [--baseline PATH] [--no-pin]
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import evd_harness  # noqa: E402
from evd_harness import Eventingd, NatsServer, free_port, http_request, wait_for  # noqa: E402
from bench_common import cpu_seconds, start_nginx  # noqa: E402



def measured(url, conns, threads, duration, pids, batch=0):
    """One wrk run plus the CPU the given processes spent in it, per event (microseconds)."""
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    r = wrk(url, conns, threads, duration, script_args=("/publish", str(batch)) if batch else ())
    events = r["requests"] * (batch or 1)
    r["events_rate"] = events / r["duration_s"]
    for k, p in pids.items():
        r[f"cpu_us_{k}"] = (cpu_seconds(p) - before[k]) / events * 1e6 if events else 0.0
    return r


def wrk(url, conns, threads, duration, script_args=()):
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s",
                          "--latency", "-s", os.path.join(HERE, "publish.lua"), url, "--", *script_args],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"^wrk_result (.*)$", out, re.M)
    if not m:
        raise SystemExit(f"wrk printed no result:\n{out}")
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}



def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--raw-count", type=int, default=200000)
    ap.add_argument("--baseline", help="another eventingd binary to measure in the same run")
    ap.add_argument("--no-pin", action="store_true", help="skip the taskset-pinned run")
    args = ap.parse_args()

    build = os.path.abspath(args.build)
    os.environ["EVENTINGD"] = os.path.join(build, "eventingd")
    evd_harness.EVENTINGD = os.environ["EVENTINGD"]  # read by the harness at import time
    raw_bin = os.path.join(build, "tests", "bench", "bench_js_raw")
    for prog in (os.environ["EVENTINGD"], raw_bin):
        if not os.path.exists(prog):
            raise SystemExit(f"{prog} missing: build first (ninja -C {build})")
    for prog in ("wrk", "nginx", "nats-server"):
        if not shutil.which(prog):
            raise SystemExit(f"{prog} missing: tools/setup deps installs it")

    tmp = tempfile.mkdtemp(prefix="evd-bench-")
    nats = NatsServer(tmp).start()
    evd = Eventingd(tmp, nats_url=nats.url, config={
        "stream": {"retention": "limits", "max_bytes": "8GiB"},
        "publish": {"max_in_flight": 8192},
        "log": {"level": "warn"},
    })
    nginx = None
    try:
        evd.start()
        evd.wait_ready()

        # 1. Raw JetStream, into the same stream (subject under kyma.>).
        raw = {}
        for mode in ("plain", "headers"):
            out = subprocess.run([raw_bin, nats.url, f"kyma.bench.raw{mode}", str(args.raw_count), "512",
                                  "8192"] + (["headers"] if mode == "headers" else []),
                                 capture_output=True, text=True, check=True).stdout
            raw[mode] = float(re.search(r"raw_js_rate=(\d+)", out).group(1))

        # 2. HTTP ceiling.
        nginx, nginx_port = start_nginx(tmp)
        ceiling = wrk(f"http://127.0.0.1:{nginx_port}/publish", 64, args.threads, args.duration)

        # 3. eventingd.
        status, _, body = http_request("POST", evd.publish + "/publish", body=b'{"a":1}', headers={
            "Content-Type": "application/json", "ce-specversion": "1.0", "ce-type": "order.created.v1",
            "ce-source": "bench", "ce-id": "warmup"})
        if status != 204:
            raise SystemExit(f"eventingd refused the benchmark event: {status} {body!r}")
        pids = {"evd": evd.proc.pid, "nats": nats.proc.pid}
        url = evd.publish + "/publish"
        e64 = measured(url, 64, args.threads, args.duration, pids)
        e16 = measured(url, 16, args.threads, args.duration, pids)
        rss_single_mib = vm_hwm_kib(evd.proc.pid) / 1024
        b10 = measured(url, 64, args.threads, args.duration, pids, batch=10)
        b100 = measured(url, 64, args.threads, args.duration, pids, batch=100)
        rss_mib = vm_hwm_kib(evd.proc.pid) / 1024
        pinned = None
        if not args.no_pin and shutil.which("taskset"):
            subprocess.run(["taskset", "-a", "-p", "-c", "0", str(evd.proc.pid)], check=True,
                           capture_output=True)
            pinned = measured(url, 64, args.threads, args.duration, pids)
            subprocess.run(["taskset", "-a", "-p", "-c", f"0-{os.cpu_count() - 1}", str(evd.proc.pid)],
                           check=True, capture_output=True)
        base = None
        if args.baseline:
            bevd = Eventingd(tmp, name="baseline", nats_url=nats.url, config={
                "stream": {"retention": "limits", "max_bytes": "8GiB"},
                "publish": {"max_in_flight": 8192},
                "log": {"level": "warn"},
            })
            saved = evd_harness.EVENTINGD
            evd_harness.EVENTINGD = os.path.abspath(args.baseline)
            try:
                bevd.start()
                bevd.wait_ready()
                bpids = {"evd": bevd.proc.pid, "nats": nats.proc.pid}
                burl = bevd.publish + "/publish"
                base = (measured(burl, 64, args.threads, args.duration, bpids),
                        measured(burl, 16, args.threads, args.duration, bpids))
            finally:
                evd_harness.EVENTINGD = saved
                bevd.stop()

        def line(label, r, unit="req/s"):
            return (f"  {label:<34}{r['events_rate']:>9.0f} {unit:<6} p50 {r['p50_ms']:.2f} ms"
                    f"  p99 {r['p99_ms']:.2f} ms  cpu/event evd {r['cpu_us_evd']:.1f} us"
                    f" nats {r['cpu_us_nats']:.1f} us  non-2xx {r['non2xx']:.0f}")

        limit = min(raw["headers"], ceiling["rate"])
        print()
        print("publish benchmark (512-byte payload, wrk threads=%d, %ds per run)" % (args.threads, args.duration))
        print(f"  1. raw JetStream async publish     {raw['plain']:>9.0f} msg/s (no headers)")
        print(f"     with CE headers + Nats-Msg-Id   {raw['headers']:>9.0f} msg/s")
        print(f"  2. HTTP ceiling (nginx return 204) {ceiling['rate']:>9.0f} req/s  p50 {ceiling['p50_ms']:.2f} ms"
              f"  p99 {ceiling['p99_ms']:.2f} ms")
        print(line("3. eventingd binary, 64 c", e64))
        print(line("   eventingd binary, 16 c", e16))
        print(line("   eventingd batch of 10, 64 c", b10, "ev/s"))
        print(line("   eventingd batch of 100, 64 c", b100, "ev/s"))
        print(f"     eventingd peak RSS              {rss_single_mib:>9.1f} MiB after the single-event runs,"
              f" {rss_mib:.1f} MiB after the batches")
        if pinned:
            print(line("4. eventingd pinned to 1 core, 64 c", pinned))
        if base:
            print(line("5. baseline binary, 64 c", base[0]))
            print(line("   baseline binary, 16 c", base[1]))
            print(f"  eventingd / baseline at 64 c = {e64['events_rate'] / base[0]['events_rate']:.2f},"
                  f" p50 at 16 c {e16['p50_ms']:.2f} vs {base[1]['p50_ms']:.2f} ms")
        print(f"  ratio eventingd / min(1 with headers, 2) = {e64['events_rate']:.0f} / {limit:.0f}"
              f" = {e64['events_rate'] / limit:.2f}  (targets: >= 0.7; p50 at 16 c < 0.4 ms;"
              f" p99 < 5 ms; RSS < 32 MiB)")
        backend = evd.backend()
        print(f"  stream now holds {backend['nats']['stream']['messages']} messages")
    finally:
        if nginx:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(10)
        evd.stop()
        nats.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
