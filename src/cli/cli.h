/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The command-line subcommands other than `run`: they validate files or talk to a running
 * eventingd over its admin API (blocking HTTP, no loop). Each returns a process exit status.
 */
#ifndef EVD_CLI_H
#define EVD_CLI_H

#include "daemon/daemon.h"

/* `eventingd check`: 0 when the configuration is valid, EX_CONFIG (78) otherwise. */
int evd_cli_check(const struct evd_daemon_opts *opts);
/* `eventingd status [--admin URL] [--json] [-c FILE]` (argv[0] is "status"). */
int evd_cli_status(int argc, char **argv);

#endif
