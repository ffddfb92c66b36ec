# SPDX-License-Identifier: Apache-2.0
"""Integration-test harness: the real eventingd binary, a real nats-server on free loopback
ports, real HTTP. Standard library only.

Each test module defines functions named test_*; run_tests() runs them in order, prints a line
per test and "N passed, N failed", and exits 1 on failure (77 when a required program is
missing).

A test fails if a sanitizer report appears in any daemon's stderr or in the output of a CLI run
(eventingd_cli). LeakSanitizer reports only when a process exits, so after a test passes,
run_tests() stops every tracked eventingd that still runs with SIGTERM and fails the test unless
it exits 0 without a report: a leak per request is caught by every test that makes requests.

Time: every timeout the harness takes (wait_for, wait_healthy, wait_ready, stop, http_request,
NotifySocket.wait_for, wait_log, eventingd_cli) is nominal and multiplied by TIME_SCALE
(EVD_TEST_TIME_SCALE, 1 by default; CI sets it for the sanitizer builds); one already passed
through scaled() is not multiplied again. Use scaled() for a test's own sleeps and
deadlines where the machine's speed decides how long something takes; never for a sleep that
must stay shorter than a timer of the daemon's.
"""
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

# Other engineers' tests use exactly these two names.
TIME_SCALE = float(os.environ.get("EVD_TEST_TIME_SCALE", "1"))


class _Scaled(float):
    """A duration scaled() already multiplied: the harness's helpers do not scale it again."""


def scaled(seconds):
    return _Scaled(seconds * TIME_SCALE)


def _timeout(seconds):
    """A helper's timeout: nominal seconds are scaled, scaled() ones taken as they are, so both
    wait_for(pred, 10) and wait_for(pred, scaled(10)) wait the same."""
    return seconds if isinstance(seconds, _Scaled) else scaled(seconds)


EVENTINGD = os.environ.get("EVENTINGD", "eventingd")
NATS_SERVER = shutil.which(os.environ.get("NATS_SERVER", "nats-server"))
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer", "ERROR: UndefinedBehaviorSanitizer")


class Skip(Exception):
    pass


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test process dies (meson's timeout, a crash),
    so no nats-server or eventingd outlives a run (prctl PR_SET_PDEATHSIG; Linux only)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def free_port():
    """A port nothing listens on right now (bound and released on 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, interval=0.05, what="condition"):
    """Polls pred until it returns something true and returns that. timeout is nominal seconds
    (scaled here by TIME_SCALE, so a sanitizer build gets proportionally longer)."""
    timeout = _timeout(timeout)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - keep polling through transient errors
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def nats_server_pids():
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"nats-server":
            pids.append((int(d), argv))
    return pids


def http_request(method, url, body=None, headers=None, timeout=10):
    """Returns (status, headers dict lower-cased, body bytes)."""
    assert url.startswith("http://")
    hostport, _, path = url[len("http://"):].partition("/")
    host, _, port = hostport.rpartition(":")
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=_timeout(timeout))
    try:
        conn.request(method, "/" + path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


class NatsServer:
    """A nats-server with JetStream on a free loopback port, its store in a temp dir."""

    def __init__(self, tmp, port=None):
        if not NATS_SERVER:
            raise Skip("nats-server not installed (apt install nats-server)")
        self.port = port or free_port()
        self.store = os.path.join(tmp, f"nats-{self.port}")
        self.log = os.path.join(tmp, f"nats-{self.port}.log")
        self.proc = None

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        wait_for(lambda: socket.create_connection(("127.0.0.1", self.port), 0.2).close() or True,
                 what=f"nats-server on port {self.port}")
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(_timeout(10))


class NotifySocket:
    """A NOTIFY_SOCKET the test owns: collects sd_notify datagrams."""

    def __init__(self, tmp):
        self.path = os.path.join(tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.messages = []

    def poll(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def wait_for(self, text, timeout=10):
        return wait_for(lambda: any(text in m for m in self.poll()), timeout,
                        what=f"sd_notify {text!r} (got {self.messages})")

    def close(self):
        self.sock.close()


class Eventingd:
    """The real eventingd binary with a config file written for the test."""

    def __init__(self, tmp, config=None, name="evd", extra_env=None, nats_url="embedded"):
        self.tmp = tmp
        self.name = name
        self.publish_port = free_port()
        self.admin_port = free_port()
        self.state_dir = os.path.join(tmp, name + "-state")
        self.subs_dir = os.path.join(tmp, name + "-subscriptions.d")
        os.makedirs(self.subs_dir, exist_ok=True)
        self.config_path = os.path.join(tmp, name + ".yaml")
        self.stderr_path = os.path.join(tmp, name + ".stderr")
        self.env = dict(os.environ)
        self.env.update(extra_env or {})
        self.proc = None
        base = {
            "publish": {"listen": f"127.0.0.1:{self.publish_port}"},
            "admin": {"listen": f"127.0.0.1:{self.admin_port}"},
            "nats": {"url": nats_url},
            "state_dir": self.state_dir,
            "subscriptions": {"dir": self.subs_dir},
            "log": {"level": "debug"},
        }
        if config:
            deep_merge(base, config)
        self.config = base
        self.write_config()

    def write_config(self, text=None):
        with open(self.config_path, "w") as f:
            f.write(text if text is not None else to_yaml(self.config))

    @property
    def admin(self):
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def publish(self):
        return f"http://127.0.0.1:{self.publish_port}"

    def start(self, *args):
        self.proc = subprocess.Popen([EVENTINGD, "run", "-c", self.config_path, *args],
                                     stdout=subprocess.DEVNULL, stderr=open(self.stderr_path, "ab"),
                                     env=self.env, cwd=self.tmp, preexec_fn=_die_with_parent)
        return self

    def wait_healthy(self, timeout=15):
        wait_for(lambda: self.alive() and http_request("GET", self.admin + "/healthz", timeout=1)[0] == 200,
                 timeout, what=f"{self.name} /healthz")

    def wait_ready(self, timeout=30):
        self.wait_healthy(timeout)
        wait_for(lambda: self.alive() and http_request("GET", self.admin + "/readyz", timeout=1)[0] == 200,
                 timeout, what=f"{self.name} /readyz")

    def alive(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.stderr()[-3000:]}")
        return True

    def backend(self):
        status, _, body = http_request("GET", self.admin + "/v1/backend")
        assert status == 200, (status, body)
        return json.loads(body)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        """SIGTERM; returns the exit status (timeout is nominal, scaled by TIME_SCALE)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(_timeout(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"{self.name} did not stop within {timeout}s after SIGTERM")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def check_sanitizers(self):
        report = sanitizer_report(self.stderr())
        if report:
            raise AssertionError(f"sanitizer report in {self.name}'s stderr:\n{report}")

    def wait_log(self, text, timeout=10):
        """Waits until text appears in the daemon's stderr (a line is written when the daemon
        gets to it, not when its effect becomes visible elsewhere: wait, never sample)."""
        return wait_for(lambda: text in self.stderr(), timeout, what=f"{text!r} in {self.name}'s log")

    def finish(self):
        """After a passing test: SIGTERM the daemon if it still runs, require exit 0 and no
        sanitizer report (LeakSanitizer reports only at exit). A daemon the test ended itself
        keeps the status the test saw; its output is still scanned."""
        if self.proc is not None and self.proc.poll() is None:
            rc = self.stop()
            if rc != 0:
                raise AssertionError(f"{self.name} exited with {rc} after SIGTERM (0 expected):\n"
                                     f"{self.stderr()[-4000:]}")
        self.check_sanitizers()


def deep_merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        else:
            dst[k] = v


def to_yaml(obj, indent=0):
    """Enough YAML for config files: nested mappings of scalars and lists of scalars."""
    out = []
    pad = "  " * indent
    for k, v in obj.items():
        if isinstance(v, dict):
            out.append(f"{pad}{k}:")
            out.append(to_yaml(v, indent + 1))
        elif isinstance(v, list):
            out.append(f"{pad}{k}:")
            out.extend(f"{pad}  - {json.dumps(x) if isinstance(x, str) else x}" for x in v)
        elif isinstance(v, bool):
            out.append(f"{pad}{k}: {'true' if v else 'false'}")
        elif isinstance(v, str):
            out.append(f"{pad}{k}: {json.dumps(v)}")
        else:
            out.append(f"{pad}{k}: {v}")
    return "\n".join(x for x in out if x) + ("\n" if indent == 0 else "")


def sanitizer_report(text):
    """The first sanitizer report in text (with some context), or None."""
    for mark in SANITIZER_MARKS:
        if mark in text:
            i = text.index(mark)
            return text[max(0, i - 200):i + 3000]
    return None


def eventingd_cli(*args, env=None, cwd=None, timeout=30, input=None):
    """Runs `eventingd ARGS`; returns (exit status, stdout, stderr). A sanitizer report in its
    output fails the test at once, whatever the exit status (timeout is nominal)."""
    p = subprocess.run([EVENTINGD, *args], capture_output=True, text=True, env=env, cwd=cwd,
                       timeout=_timeout(timeout), input=input)
    report = sanitizer_report(p.stderr) or sanitizer_report(p.stdout)
    if report:
        raise AssertionError(f"sanitizer report from `eventingd {' '.join(args)}`:\n{report}")
    return p.returncode, p.stdout, p.stderr


_daemons = []


def track(d):
    _daemons.append(d)
    return d


def run_tests(module_globals):
    tests = [(n, f) for n, f in module_globals.items() if n.startswith("test_") and callable(f)]
    only = os.environ.get("EVD_TEST_ONLY")
    passed = failed = skipped = 0
    for name, fn in tests:
        if only and only not in name:
            continue
        tmp = tempfile.mkdtemp(prefix=f"evd-{name}-")
        _daemons.clear()
        t0 = time.monotonic()
        try:
            fn(tmp)
            # Newest first, while the NATS servers they use still run.
            for d in reversed(_daemons):
                if isinstance(d, Eventingd):
                    d.finish()
            passed += 1
            print(f"ok   {name} ({time.monotonic() - t0:.1f}s)", flush=True)
        except Skip as e:
            skipped += 1
            print(f"skip {name}: {e}", flush=True)
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
            for d in _daemons:
                if isinstance(d, Eventingd):
                    print(f"--- {d.name} stderr (last 4000 chars) ---\n{d.stderr()[-4000:]}")
        finally:
            for d in reversed(_daemons):
                try:
                    if isinstance(d, Eventingd):
                        d.kill()
                    elif isinstance(d, NatsServer):
                        d.stop(signal.SIGKILL)
                    elif hasattr(d, "close"):
                        d.close()
                except Exception:  # noqa: BLE001
                    pass
            if not os.environ.get("EVD_KEEP_TMP"):
                shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    if failed:
        sys.exit(1)
    if skipped and not passed:
        sys.exit(77)
    sys.exit(0)
