/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>

#include "evd_build_config.h"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "version") == 0) {
		printf("eventingd %s\n", EVD_VERSION);
		return 0;
	}
	return 0;
}
