/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The files a configuration names (config.h: evd_config_check_files). Loading a configuration
 * stays pure (status and publish load one only to find an address); this looks at the machine,
 * so `check` and start-up call it. Without it a missing creds file or CA passed `check` and
 * `run` retried forever with "Input/output error" (issue 10).
 */
#include "config/config.h"
#include "config/config_internal.h"
#include "util/util_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CREDENTIALS_ROOT "/run/credentials/"

struct ctx {
	const struct evd_config *cfg;
	struct evd_diag *diag;
	int errors;
};

static void add(struct ctx *c, enum evd_diag_severity sev, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add(struct ctx *c, enum evd_diag_severity sev, const char *key, const char *fmt, ...)
{
	const struct evd_config_key *k = evd_config_key_find(key);
	const struct evd_config_pos *p = c->cfg->pos && k ? &c->cfg->pos[k - evd_config_keys] : NULL;
	va_list ap;

	va_start(ap, fmt);
	evd_diag_vadd(c->diag, sev, c->cfg->source_file ? c->cfg->source_file : "(defaults)",
		      p && p->line ? p->line : 1, p && p->line ? p->col : 1, key, fmt, ap);
	va_end(ap);
	if (sev == EVD_DIAG_ERROR)
		c->errors++;
}

/* A systemd credential of another process (check run outside the service): not visible here. */
static bool foreign_credential(const char *path)
{
	const char *mine = getenv("CREDENTIALS_DIRECTORY");

	if (strncmp(path, CREDENTIALS_ROOT, strlen(CREDENTIALS_ROOT)) != 0)
		return false;
	return !mine || !*mine || strncmp(path, mine, strlen(mine)) != 0;
}

static void check_readable(struct ctx *c, const char *key, const char *path)
{
	struct stat st;
	int fd;

	if (!path)
		return;
	if (foreign_credential(path)) {
		add(c, EVD_DIAG_WARNING, key,
		    "\"%s\" is a systemd credential (LoadCredential=): it exists only inside the "
		    "service and is checked when eventingd starts there", path);
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		add(c, EVD_DIAG_ERROR, key, "cannot read \"%s\": %s%s", path, strerror(errno),
		    errno == EACCES ? " (make it readable by the user that runs eventingd; under "
				      "systemd use LoadCredential=, see eventingd(8))"
				    : "");
		return;
	}
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
		add(c, EVD_DIAG_ERROR, key, "\"%s\" is not a regular file", path);
	} else if (geteuid() == 0 && !(st.st_mode & S_IROTH) &&
		   strncmp(path, CREDENTIALS_ROOT, strlen(CREDENTIALS_ROOT)) != 0) {
		/* root reads anything; the unit's dynamic user is neither owner nor group. */
		add(c, EVD_DIAG_WARNING, key,
		    "\"%s\" (mode %04o, uid %u) is readable here because this runs as root, but not "
		    "by the systemd unit's DynamicUser: pass it with LoadCredential= and name "
		    "/run/credentials/eventingd.service/NAME here (eventingd(8))",
		    path, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
	}
	close(fd);
}

static void check_access_log(struct ctx *c)
{
	const char *path = c->cfg->publish.access_log;
	struct stat st;

	if (!path || strcmp(path, "-") == 0)
		return;
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			add(c, EVD_DIAG_ERROR, "publish.access_log", "\"%s\" is a directory", path);
		else if (access(path, W_OK) != 0)
			add(c, EVD_DIAG_ERROR, "publish.access_log", "cannot write \"%s\": %s", path,
			    strerror(errno));
		return;
	}
	char *copy = evd_xstrdup(path);
	const char *dir = dirname(copy);
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		add(c, EVD_DIAG_ERROR, "publish.access_log",
		    "the directory of \"%s\" does not exist (create %s; under systemd the unit's "
		    "LogsDirectory=eventingd provides /var/log/eventingd)", path, dir);
	else if (access(dir, W_OK | X_OK) != 0)
		add(c, EVD_DIAG_ERROR, "publish.access_log", "cannot create \"%s\" in %s: %s", path, dir,
		    strerror(errno));
	free(copy);
}

/* A program name is looked up in PATH, as the embedded supervisor does. */
static void check_binary(struct ctx *c)
{
	const char *bin = c->cfg->nats.embedded.binary;
	const char *path = getenv("PATH");
	bool found = false;

	if (!bin || !*bin)
		return;
	if (strchr(bin, '/')) {
		found = access(bin, X_OK) == 0;
	} else {
		char *copy = evd_xstrdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
		char *save = NULL;
		for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
			char full[4096];
			snprintf(full, sizeof(full), "%s/%s", *d ? d : ".", bin);
			found = access(full, X_OK) == 0;
		}
		free(copy);
	}
	if (!found)
		add(c, EVD_DIAG_ERROR, "nats.embedded.binary",
		    "cannot find the program \"%s\"%s (install nats-server, or give its path)", bin,
		    strchr(bin, '/') ? "" : " in PATH");
}

int evd_config_check_files(const struct evd_config *cfg, struct evd_diag *diag)
{
	struct ctx c = { .cfg = cfg, .diag = diag };

	if (evd_config_embedded(cfg)) {
		check_binary(&c);
	} else {
		check_readable(&c, "nats.creds", cfg->nats.creds);
		check_readable(&c, "nats.tls.ca", cfg->nats.tls.ca);
		check_readable(&c, "nats.tls.cert", cfg->nats.tls.cert);
		check_readable(&c, "nats.tls.key", cfg->nats.tls.key);
	}
	check_access_log(&c);
	return c.errors;
}
