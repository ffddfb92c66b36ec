/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>

#include "evd_build_config.h"
#include "daemon/daemon_embedded.h"

int main(int argc, char **argv)
{
	/* The embedded nats-server's launcher (daemon_embedded.h): before anything else runs. */
	if (argc > 1 && strcmp(argv[1], EVD_EMBEDDED_SHIM_ARG) == 0)
		return evd_embedded_shim_main(argc, argv);
	if (argc > 1 && strcmp(argv[1], "version") == 0) {
		printf("eventingd %s\n", EVD_VERSION);
		return 0;
	}
	return 0;
}
