/* SPDX-License-Identifier: Apache-2.0 */
/*
 * eventingd's command line: argument parsing and subcommand dispatch only. Everything else is in
 * src/<area>/ (see the README's tour).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli/cli.h"
#include "daemon/daemon.h"
#include "daemon/daemon_embedded.h"
#include "evd_build_config.h"

static void usage(FILE *to)
{
	fputs("usage: eventingd [run] [-c FILE] [--dev]     run the appliance (default)\n"
	      "       eventingd check [-c FILE] [--dev]     validate the configuration\n"
	      "       eventingd status [--admin URL] [--json] [-c FILE]\n"
	      "                                            backend and subscriptions of a running eventingd\n"
	      "       eventingd publish --type T --source S [--data JSON|@FILE|@-] [--url URL]\n"
	      "                         [--structured] [--id ID] [--content-type CT]\n"
	      "                         [--extension NAME=VALUE ...] [-c FILE] [--dev]\n"
	      "                                            send one CloudEvent\n"
	      "       eventingd display [--listen ADDR]     print every CloudEvent sent to ADDR\n"
	      "       eventingd version\n"
	      "\n"
	      "Without -c, " EVD_CONFIG_DEFAULT_PATH " is read if it exists\n"
	      "(its defaults: subscriptions in " EVD_SUBSCRIPTIONS_DIR_DEFAULT ",\n"
	      "state in " EVD_STATE_DIR_DEFAULT "); otherwise (or with --dev) eventingd runs as\n"
	      "a sandbox: loopback listeners, embedded NATS, state in ./.eventingd,\n"
	      "subscriptions in ./subscriptions.d.\n"
	      "See eventingd(8) and eventingd.yaml(5).\n",
	      to);
}

/* Options shared by run and check. Returns 0, or EX_USAGE after printing why. */
static int parse_config_opts(int argc, char **argv, struct evd_daemon_opts *opts)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "dev", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			opts->config_path = optarg;
			opts->config_explicit = true;
			break;
		case 'd':
			opts->dev = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "eventingd: unexpected argument \"%s\"\n", argv[optind]);
		return EX_USAGE;
	}
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	struct evd_daemon_opts opts = { 0 };
	int rc = parse_config_opts(argc, argv, &opts);
	if (rc)
		return rc;
	return evd_daemon_main(&opts);
}

static int cmd_check(int argc, char **argv)
{
	struct evd_daemon_opts opts = { 0 };
	int rc = parse_config_opts(argc, argv, &opts);
	if (rc)
		return rc;
	return evd_cli_check(&opts);
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "run";

	/* The embedded nats-server is exec'd through this binary; see daemon_embedded.h. */
	if (strcmp(cmd, "__pdeathsig-exec") == 0)
		return evd_embedded_shim_main(argc, argv);

	/* Before the option check below, which would take --version for an option of run. */
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("eventingd %s\n", EVD_VERSION);
		return 0;
	}
	if (cmd[0] == '-') /* "eventingd -c FILE" means run */
		return cmd_run(argc, argv);
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(cmd, "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (strcmp(cmd, "status") == 0)
		return evd_cli_status(argc - 1, argv + 1);
	if (strcmp(cmd, "publish") == 0)
		return evd_cli_publish(argc - 1, argv + 1);
	if (strcmp(cmd, "display") == 0)
		return evd_cli_display(argc - 1, argv + 1);
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "eventingd: unknown command \"%s\"\n", cmd);
	usage(stderr);
	return EX_USAGE;
}
