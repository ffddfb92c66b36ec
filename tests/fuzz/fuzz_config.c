/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration loader (config.h) over any text: it loads or reports errors, never crashes,
 * and a loaded configuration compares and formats cleanly. evd_config_load() reads a path, so
 * the input goes into a memfd that is opened again through /proc/self/fd (no file on disk).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char path[64];

static void load(bool dev)
{
	struct evd_config *cfg = NULL;
	struct evd_diag diag = EVD_DIAG_INIT;
	int rc = evd_config_load(path, dev, &cfg, &diag);
	if (rc == 0) {
		struct evd_config *defaults = evd_config_defaults(dev);
		struct evd_buf keys = EVD_BUF_INIT, text = EVD_BUF_INIT;
		evd_config_restart_keys(defaults, cfg, &keys);
		for (size_t i = 0; i < evd_config_nkeys; i++)
			evd_config_key_format(&evd_config_keys[i], cfg, &text);
		evd_buf_free(&keys);
		evd_buf_free(&text);
		evd_config_free(defaults);
		evd_config_free(cfg);
	} else if (diag.errors == 0) {
		fprintf(stderr, "fuzz invariant failed: load failed (%d) without an error\n", rc);
		abort();
	}
	struct evd_buf out = EVD_BUF_INIT;
	evd_diag_format(&diag, &out);
	evd_buf_free(&out);
	evd_diag_free(&diag);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (memfd < 0) {
		memfd = memfd_create("fuzz_config.yaml", MFD_CLOEXEC);
		if (memfd < 0) {
			perror("memfd_create");
			abort();
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	}
	if (ftruncate(memfd, 0) < 0 || (size && pwrite(memfd, data, size, 0) != (ssize_t)size)) {
		perror("memfd");
		abort();
	}
	/* The quiet threshold: the loader itself logs nothing, but keep the fuzzer's output clean. */
	evd_log_setup(EVD_LOG_ERROR, EVD_LOG_TEXT);
	load(false);
	load(true);
	return 0;
}
