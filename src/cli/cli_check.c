/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `eventingd check`: the configuration, the files it names (creds, TLS, access log; see
 * evd_config_check_files), then every file of its subscriptions.dir with the rules
 * the running registry applies (registry_set.h), so a file that passes here is one the daemon
 * accepts. Every diagnostic goes to stderr as FILE:LINE:COL; a summary line per part to stdout.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "registry/registry_set.h"

/* 0 when every file is valid (warnings allowed) or the directory does not exist, else EX_CONFIG. */
static int check_subscriptions(const struct evd_config *cfg)
{
	struct evd_registry_opts opts = { cfg->stream.subject_prefix, cfg->publish.event_type_prefix };
	struct evd_registry_scan *scan = NULL;
	struct evd_diag diag = EVD_DIAG_INIT;
	struct evd_buf out = EVD_BUF_INIT;
	const char *dir = cfg->subscriptions.dir;
	int rc = evd_registry_scan_dir(dir, &opts, &scan, &diag);

	if (rc < 0) {
		evd_diag_free(&diag);
		if (rc == -ENOENT) {
			/* The daemon waits for the directory to appear: not an error. */
			printf("%s: no such directory: no subscriptions (eventingd watches for it)\n", dir);
			return 0;
		}
		fprintf(stderr, "%s: cannot list the subscription directory: %s\n", dir, strerror(-rc));
		return EX_CONFIG;
	}
	evd_diag_free(&diag);
	struct evd_registry_set *set = evd_registry_set_next(NULL, scan);
	size_t failed = 0;
	evd_registry_set_format_diag(set, &out);
	if (out.len)
		fputs(out.data, stderr);
	for (size_t i = 0; i < set->nfiles; i++)
		failed += set->files[i].diag.errors > 0;
	if (set->errors) {
		fprintf(stderr, "eventingd: %s: %zu error%s in %zu file%s\n", dir, set->errors,
			set->errors == 1 ? "" : "s", failed, failed == 1 ? "" : "s");
		rc = EX_CONFIG;
	} else {
		printf("%s: %zu subscription%s in %zu file%s OK%s\n", dir, set->active.count,
		       set->active.count == 1 ? "" : "s", set->nfiles, set->nfiles == 1 ? "" : "s",
		       set->warnings ? " (with warnings)" : "");
	}
	evd_buf_free(&out);
	evd_registry_set_free(set);
	evd_registry_scan_free(scan);
	return rc;
}

int evd_cli_check(const struct evd_daemon_opts *opts)
{
	struct evd_config *cfg = NULL;
	int rc = evd_daemon_load_config(opts, &cfg, true);
	if (rc != 0)
		return rc;
	if ((rc = evd_daemon_check_files(cfg)) != 0) {
		evd_config_free(cfg);
		return rc;
	}
	printf("%s: configuration OK\n", cfg->source_file ? cfg->source_file : "sandbox defaults");
	rc = check_subscriptions(cfg);
	evd_config_free(cfg);
	return rc;
}
