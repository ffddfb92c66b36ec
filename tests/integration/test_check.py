#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`eventingd check`: exit 0 on a good configuration, 78 with every diagnostic (FILE:LINE:COL)
on a bad one, 78 for an explicit -c naming a missing file."""
import os

from evd_harness import eventingd_cli, run_tests

SOURCE_ROOT = os.environ.get("EVD_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
# etc/eventingd.yaml is configured by meson (@SYSCONFDIR@): check the copy in the build tree.
BUILD_ROOT = os.environ.get("EVD_BUILD_ROOT", os.path.join(SOURCE_ROOT, "build"))


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_good_config(tmp):
    path = write(tmp, "good.yaml", "publish:\n  listen: 127.0.0.1:18080\nlog:\n  level: debug\n")
    rc, out, err = eventingd_cli("check", "-c", path)
    assert rc == 0, (rc, out, err)
    assert "configuration OK" in out


def test_sample_configs(tmp):
    for path in (os.path.join(BUILD_ROOT, "etc", "eventingd.yaml"),
                 os.path.join(SOURCE_ROOT, "etc", "eventingd.dev.yaml")):
        rc, out, err = eventingd_cli("check", "-c", path)
        assert rc == 0, (path, rc, out, err)


def test_bad_config_every_error(tmp):
    path = write(tmp, "bad.yaml",
                 "publish:\n"
                 "  listen: 127.0.0.1:18080\n"
                 "  max_request_sise: 64KiB\n"
                 "dispatch:\n"
                 "  timeout: 40s\n"
                 "  ack_wait: 30s\n"
                 "stream:\n"
                 "  retention: forever\n"
                 "  max_bytes: lots\n")
    rc, out, err = eventingd_cli("check", "-c", path)
    assert rc == 78, (rc, out, err)
    lines = [l for l in err.splitlines() if l.startswith(path)]
    assert any(l.startswith(f"{path}:3:3: publish.max_request_sise:") and "did you mean 'publish.max_request_size'" in l
               for l in lines), err
    assert any(l.startswith(f"{path}:5:12: dispatch.timeout:") for l in lines), err
    assert any(l.startswith(f"{path}:8:14: stream.retention:") and "limits" in l and "interest" in l
               for l in lines), err
    assert any(l.startswith(f"{path}:9:14: stream.max_bytes:") for l in lines), err
    assert len(lines) == 4, err


def test_yaml_syntax_error(tmp):
    path = write(tmp, "syntax.yaml", "publish:\n  listen: [127.0.0.1\n")
    rc, out, err = eventingd_cli("check", "-c", path)
    assert rc == 78, (rc, out, err)
    assert f"{path}:3:1:" in err, err


def test_missing_explicit_file_is_error(tmp):
    rc, out, err = eventingd_cli("check", "-c", os.path.join(tmp, "nope.yaml"))
    assert rc == 78, (rc, out, err)
    assert "nope.yaml" in err and "No such file" in err, err


def test_run_with_missing_explicit_file_is_error(tmp):
    rc, out, err = eventingd_cli("run", "-c", os.path.join(tmp, "nope.yaml"), timeout=10)
    assert rc == 78, (rc, out, err)


def test_every_subcommand_refuses_a_missing_explicit_file(tmp):
    # status used to print "cannot read" and then ask the default admin address (another
    # instance, perhaps) and exit 69; --admin/--url beside -c do not make the mistake go away.
    missing = os.path.join(tmp, "missing.yaml")
    for args in (["run", "-c", missing], ["-c", missing], ["check", "-c", missing],
                 ["status", "-c", missing], ["status", "--admin", "http://127.0.0.1:9", "-c", missing],
                 ["publish", "--type", "t", "--source", "s", "-c", missing],
                 ["publish", "--type", "t", "--source", "s", "--url", "http://127.0.0.1:9/", "-c", missing]):
        rc, out, err = eventingd_cli(*args, timeout=10)
        assert rc == 78, (args, rc, out, err)
        assert "missing.yaml" in err, (args, err)


def test_no_config_means_sandbox(tmp):
    rc, out, err = eventingd_cli("check", "--dev", cwd=tmp)
    assert rc == 0, (rc, out, err)
    assert "sandbox" in out, out


def test_usage_errors(tmp):
    rc, out, err = eventingd_cli("frobnicate")
    assert rc == 64 and "unknown command" in err, (rc, err)
    rc, out, err = eventingd_cli("version")
    assert rc == 0 and out.startswith("eventingd "), (rc, out)
    rc, out2, err = eventingd_cli("--version")
    assert rc == 0 and out2 == out, (rc, out2, err)
    rc, out, err = eventingd_cli("--help")
    assert rc == 0 and out.startswith("usage: eventingd"), (rc, out, err)


def build_sysconfdir():
    with open(os.path.join(BUILD_ROOT, "evd_build_config.h")) as f:
        for line in f:
            if line.startswith("#define EVD_SYSCONFDIR_STR "):
                return line.split(None, 2)[2].strip().strip('"')
    raise AssertionError("EVD_SYSCONFDIR_STR not in evd_build_config.h")


def test_help_and_man_pages_name_the_paths_of_this_build(tmp):
    etc = build_sysconfdir() + "/eventingd"
    rc, out, err = eventingd_cli("--help")
    assert rc == 0, (rc, err)
    assert f"Without -c, {etc}/eventingd.yaml is read" in out, out
    assert f"subscriptions in {etc}/subscriptions.d" in out, out
    # The installed man pages say what the binary does (a default build reads /usr/local/etc).
    for page, want in (("eventingd.8", f"{etc}/eventingd.yaml"), ("eventingd.yaml.5", f"{etc}/eventingd.yaml"),
                       ("eventingd-subscription.5", f"{etc}/subscriptions.d/")):
        with open(os.path.join(BUILD_ROOT, "man", page)) as f:
            text = f.read()
        assert want in text, (page, want)
        if etc != "/etc/eventingd":
            assert "/etc/eventingd" not in text.replace(etc, ""), page


if __name__ == "__main__":
    run_tests(globals())
