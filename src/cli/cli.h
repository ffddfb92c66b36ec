/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The command-line subcommands other than `run`: they validate files, talk to a running
 * eventingd (blocking HTTP, no loop), or, for `display`, run a small sink on a loop of their own.
 * Each returns a process exit status (sysexits). Main thread only.
 */
#ifndef EVD_CLI_H
#define EVD_CLI_H

#include "daemon/daemon.h"

/* `eventingd check`: 0 when the configuration is valid, EX_CONFIG (78) otherwise. */
int evd_cli_check(const struct evd_daemon_opts *opts);
/* `eventingd status [--admin URL] [--json] [-c FILE]` (argv[0] is "status"). */
int evd_cli_status(int argc, char **argv);
/* `eventingd publish --type T --source S ...` (argv[0] is "publish"); see cli_publish.c. */
int evd_cli_publish(int argc, char **argv);
/* `eventingd display [--listen ADDR]` (argv[0] is "display"): runs until SIGINT/SIGTERM. */
int evd_cli_display(int argc, char **argv);

#endif
