/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/cli.h"

#include <stdio.h>

int evd_cli_check(const struct evd_daemon_opts *opts)
{
	struct evd_config *cfg = NULL;
	int rc = evd_daemon_load_config(opts, &cfg, true);
	if (rc != 0)
		return rc;
	printf("%s: configuration OK\n", cfg->source_file ? cfg->source_file : "sandbox defaults");
	evd_config_free(cfg);
	return 0;
}
