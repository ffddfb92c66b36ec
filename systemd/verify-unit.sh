#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Checks the service unit with systemd's own tools: `systemd-analyze verify` (syntax, unknown
# keys, the ExecStart binary is executable) must be silent about it, and
# `systemd-analyze security --offline` must rate its exposure at most 2.0 ("OK"), so a hardening
# line dropped by mistake fails the test. Exit 77 (skip) without systemd-analyze.
set -u
unit=$1
command -v systemd-analyze >/dev/null 2>&1 || { echo "systemd-analyze not installed: skipping"; exit 77; }

# Man pages are not installed at test time: do not check Documentation=.
out=$(systemd-analyze verify --man=no "$unit" 2>&1)
rc=$?
name=$(basename "$unit")
printf '%s\n' "$out"
# verify exits 0 on unknown keys (it only warns): any line naming our unit is a failure. Lines
# about other units (a container's half-installed systemd) are shown but do not count.
if [ $rc -ne 0 ] || printf '%s\n' "$out" | grep -q -e "$unit" -e "$name"; then
	echo "FAIL: systemd-analyze verify $unit"
	exit 1
fi

# --offline needs systemd 250 (Debian 12 has 252); the threshold is on the 0..100 scale that
# the summary prints divided by ten.
if systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
	sec=$(systemd-analyze security --offline=yes --threshold=20 --no-pager "$unit" 2>&1)
	rc=$?
	if [ $rc -ne 0 ]; then
		printf '%s\n' "$sec"
		echo "FAIL: exposure of $name above 2.0 (or the review failed)"
		exit 1
	fi
	printf '%s\n' "$sec" | tail -n 1
fi
echo "ok: $name"
