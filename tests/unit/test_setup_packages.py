#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tools/setup's PACKAGES covers every program this repository runs (issue 7: on a bare Debian
the unit's /bin/kill, the tour's curl and man were missing because only machines that happened
to have them were tried).

The programs are collected from where they are called: the shell blocks of every README (first
word of each command, after sudo and VAR=value), the service unit's Exec*= lines, find_program()
in meson.build files, `command -v` in shell scripts, and subprocess / shutil.which calls in the
Python tests and benchmarks. Each must be the project's own (build/eventingd, tools/setup, ...),
a shell builtin or part of an Essential Debian package, or appear in PROGRAMS below with the
package that provides it — and that package must be in PACKAGES. A new program therefore fails
here until it is added to both. Pure text: runs without network, packages or dpkg.

Argument: the source root."""
import os
import re
import shlex
import sys

# Program (as called) -> the Debian 12 package that provides it.
PROGRAMS = {
    "curl": "curl",                      # README tour
    "man": "man-db",                     # README: man 8 eventingd, man -l
    "sudo": "sudo",                      # README install section
    "sudoedit": "sudo",
    "editor": "nano",                    # sudoedit's default editor (/usr/bin/editor)
    "systemctl": "systemd",
    "systemd-analyze": "systemd",        # the unit's test (systemd/verify-unit.sh)
    "/bin/kill": "procps",               # the unit's ExecReload
    "meson": "meson",
    "ninja": "ninja-build",
    "git": "git",
    "python3": "python3",                # the integration harness
    "nats-server": "nats-server",        # the backend
    "mandoc": "mandoc",                  # man page lint
    "openssl": "openssl",                # TLS certificates for tests/integration/test_backend.py
    "clang": "clang",                    # sanitizer and fuzzing builds (CI, tests/fuzz)
    "wrk": "wrk",                        # tests/bench/publish_bench.py
    "nginx": "nginx-light",
    "perf": "linux-perf",                # tests/bench/dispatch_bench.py --perf
}

# Builtins and programs of Essential packages (coreutils, bash, util-linux, ...): always there.
ALWAYS_THERE = {
    "cd", "kill", "echo", "export", "set", "wait", "exec", "test", "[", "true", "false",
    "mkdir", "cp", "rm", "mv", "ls", "cat", "ln", "chmod", "env", "sh", "bash", "tail", "head",
    "grep", "sed", "find", "sort", "mktemp", "dirname", "id", "sleep", "timeout",
    "dpkg-query", "apt-get",  # dpkg and apt: how tools/setup installs the rest
    "taskset",                # util-linux
}

# The repository's own programs.
OURS_PREFIXES = ("build/", "build-", "tools/", "./", "eventingd", "tests/", ".ci/")


def packages(root):
    text = open(os.path.join(root, "tools", "setup")).read()
    m = re.search(r"^PACKAGES=\((.*?)^\)", text, re.S | re.M)
    assert m, "tools/setup has no PACKAGES=( ... ) list"
    words = []
    for line in m.group(1).splitlines():
        words += line.split("#", 1)[0].split()
    return set(words)


def commands_of_shell_line(line):
    """First words of each command of one shell line (after sudo and VAR=value)."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return []
    out, start = [], True
    for tok in tokens:
        if tok in ("&&", "||", "|", ";", "&"):
            start = True
            continue
        if tok.endswith(";") or tok.endswith("&"):
            tok = tok.rstrip(";&")
            if start and tok:
                out.append(tok)
            start = True
            continue
        if not start:
            continue
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tok):
            continue  # an environment assignment before the command
        out.append(tok)
        start = tok == "sudo"  # sudo's command is a program too
    return out


def from_markdown(path):
    found = []
    text = open(path).read()
    for block in re.findall(r"^```(?:sh|bash|console)\n(.*?)^```", text, re.S | re.M):
        joined = re.sub(r"\\\n", " ", block)
        for line in joined.splitlines():
            found += [(c, path) for c in commands_of_shell_line(line)]
    # `man 8 eventingd` and the like in running text.
    for span in re.findall(r"`([^`\n]+)`", text):
        if span.startswith("man "):
            found.append(("man", path))
    return found


def from_unit(path):
    found = []
    for line in open(path):
        m = re.match(r"\s*Exec[A-Za-z]*=[-@:+!]*(\S+)", line)
        if m and "@" not in m.group(1):
            found.append((m.group(1), path))
    return found


def from_meson(path):
    return [(p, path) for p in re.findall(r"find_program\(\s*'([^']+)'", open(path).read())]


def from_shell(path):
    return [(p, path) for p in re.findall(r"command -v ([A-Za-z0-9_.-]+)", open(path).read())]


def from_python(path):
    text = open(path).read()
    found = re.findall(r"subprocess\.(?:run|Popen|call|check_call|check_output)\(\s*\[\s*\"([^\"]+)\"", text)
    found += re.findall(r"shutil\.which\((?:[^()]*\(\s*\"[A-Z_]+\",\s*)?\"([^\"]+)\"", text)
    return [(p, path) for p in found]


def collect(root):
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") or d == ".ci"]
        dirnames[:] = [d for d in dirnames if not d.startswith("build") and d != "subprojects"]
        for name in filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if name.endswith(".md"):
                found += from_markdown(path)
            elif name.endswith(".service.in") or name.endswith(".service"):
                found += from_unit(path)
            elif name == "meson.build":
                found += from_meson(path)
            elif name.endswith(".py"):
                found += from_python(path)
            elif name.endswith(".sh") or rel in (os.path.join(".ci", "run"), os.path.join("tools", "setup")):
                found += from_shell(path)
    return [(p, os.path.relpath(where, root)) for p, where in found]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    have = packages(root)
    failures = []
    for prog, pkg in sorted(PROGRAMS.items()):
        if pkg not in have:
            failures.append(f"{prog} comes from package {pkg}, which tools/setup's PACKAGES lacks")
    found = collect(root)
    seen = set()
    for prog, where in found:
        if (prog, where) in seen:
            continue
        seen.add((prog, where))
        if prog.startswith(OURS_PREFIXES) or prog in ALWAYS_THERE:
            continue
        if os.path.exists(os.path.join(os.path.dirname(os.path.join(root, where)), prog)):
            continue  # a script beside its meson.build
        if prog not in PROGRAMS:
            failures.append(f"{where} runs {prog}: add its Debian package to tools/setup's "
                            f"PACKAGES and the program to PROGRAMS in {os.path.relpath(__file__, root)}")
    names = sorted({p for p, _ in found})
    print(f"{len(found)} calls of {len(names)} programs checked: {' '.join(names)}")
    for f in failures:
        print("FAIL:", f)
    # Nothing found at all would mean the scan is broken, not that all is well.
    if "curl" not in names or "/bin/kill" not in names or "nats-server" not in names:
        print("FAIL: the scan missed curl, /bin/kill or nats-server: it no longer reads the README, "
              "the unit or the harness")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
