/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/cli.h"
#include "cli/cli_internal.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "http/http_fetch.h"
#include "util/util_buf.h"

/*
 * The admin URL: --admin, else admin.listen of the configuration, else the default. A broken
 * default configuration still prints its diagnostics: they explain why the default is tried. A
 * file given with -c that cannot be read or has errors is the user's mistake, not a reason to
 * ask whatever instance listens on the default address: 78 (EX_CONFIG), as run and publish.
 */
static int admin_url(const char *given, const struct evd_daemon_opts *opts, char *out, size_t len)
{
	int rc = 0;

	/* An explicit -c is read even beside --admin: a missing file is an error either way. */
	if (!given || opts->config_explicit)
		rc = evd_cli_listen_url(opts, true, out, len);
	if (rc != 0 && opts->config_explicit)
		return rc;
	if (given) {
		snprintf(out, len, "%s", given);
		size_t n = strlen(out);
		while (n > 0 && out[n - 1] == '/')
			out[--n] = '\0';
	} else if (rc != 0) {
		snprintf(out, len, "http://127.0.0.1:9090");
	}
	return 0;
}

static const char *str_or(const cJSON *o, const char *key, const char *dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : dflt;
}

static double num_or(const cJSON *o, const char *key, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static void print_backend(const cJSON *root)
{
	const cJSON *nats = cJSON_GetObjectItemCaseSensitive(root, "nats");
	const cJSON *server = cJSON_GetObjectItemCaseSensitive(nats, "server");
	const cJSON *stream = cJSON_GetObjectItemCaseSensitive(nats, "stream");

	printf("BACKEND\n");
	printf("  mode        %s\n", str_or(root, "mode", "?"));
	printf("  state       %s\n", str_or(nats, "state", "?"));
	printf("  url         %s\n", str_or(nats, "url", "-"));
	if (server)
		printf("  server      %s (nats-server %s)\n", str_or(server, "name", "?"),
		       str_or(server, "version", "?"));
	if (cJSON_IsObject(stream)) {
		double bytes = num_or(stream, "bytes", 0), max = num_or(stream, "max_bytes", -1);
		printf("  stream      %s (%s, %s retention, discard %s)\n", str_or(stream, "name", "?"),
		       str_or(stream, "storage", "?"), str_or(stream, "retention", "?"),
		       str_or(stream, "discard", "?"));
		printf("  messages    %.0f\n", num_or(stream, "messages", 0));
		if (max > 0)
			printf("  bytes       %.0f of %.0f (%.1f%%)\n", bytes, max, 100.0 * bytes / max);
		else
			printf("  bytes       %.0f (no limit)\n", bytes);
		printf("  consumers   %.0f\n", num_or(stream, "consumers", 0));
	}
	const char *err = str_or(nats, "last_error", NULL);
	if (err && *err)
		printf("  last error  %s\n", err);
}

static size_t max_sz(size_t a, size_t b)
{
	return a > b ? a : b;
}

/* The subscriptions table: one line each, then its error; failed files after. */
static void print_subscriptions(const cJSON *root)
{
	const cJSON *subs = cJSON_GetObjectItemCaseSensitive(root, "subscriptions");
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
	const cJSON *sum = cJSON_GetObjectItemCaseSensitive(root, "summary");
	const cJSON *s, *f, *e;
	size_t wname = strlen("NAMESPACE/NAME");
	char key[600];

	printf("\nSUBSCRIPTIONS  %s: %.0f active, %.0f ready, %.0f of %.0f files failed\n",
	       str_or(root, "directory", "?"), num_or(sum, "subscriptions", 0),
	       num_or(sum, "ready", 0), num_or(sum, "filesFailed", 0), num_or(sum, "files", 0));
	const char *derr = str_or(root, "directoryError", NULL);
	if (derr)
		printf("  directory: %s\n", derr);
	cJSON_ArrayForEach(s, subs)
	{
		snprintf(key, sizeof(key), "%s/%s", str_or(s, "namespace", "?"), str_or(s, "name", "?"));
		wname = max_sz(wname, strlen(key));
	}
	if (cJSON_GetArraySize(subs) > 0)
		printf("  %-*s  %-5s  %5s  %s\n", (int)wname, "NAMESPACE/NAME", "READY", "TYPES",
		       "SINK");
	cJSON_ArrayForEach(s, subs)
	{
		const cJSON *ready = cJSON_GetObjectItemCaseSensitive(s, "ready");
		const cJSON *types = cJSON_GetObjectItemCaseSensitive(s, "types");
		const cJSON *warnings = cJSON_GetObjectItemCaseSensitive(s, "warnings");
		snprintf(key, sizeof(key), "%s/%s", str_or(s, "namespace", "?"), str_or(s, "name", "?"));
		printf("  %-*s  %-5s  %5d  %s\n", (int)wname, key, cJSON_IsTrue(ready) ? "yes" : "no",
		       cJSON_GetArraySize(types), str_or(s, "sink", ""));
		const char *err = str_or(s, "lastError", NULL);
		if (err)
			printf("      error: %s\n", err);
		cJSON_ArrayForEach(e, warnings)
		{
			if (cJSON_IsString(e))
				printf("      warning: %s\n", e->valuestring);
		}
	}
	cJSON_ArrayForEach(f, files)
	{
		const cJSON *errors = cJSON_GetObjectItemCaseSensitive(f, "errors");
		if (cJSON_GetArraySize(errors) == 0)
			continue;
		printf("  file %s: %s\n", str_or(f, "file", "?"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "failed"))
			       ? (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "previousVersionActive"))
					  ? "not applied, its previous version stays active"
					  : "not applied")
			       : "applied in part");
		cJSON_ArrayForEach(e, errors)
		{
			if (cJSON_IsString(e))
				printf("      %s\n", e->valuestring);
		}
	}
	/* Consumers waiting for subscriptions.delete_grace: still there, events kept. */
	const cJSON *deleting = cJSON_GetObjectItemCaseSensitive(root, "deleting");
	cJSON_ArrayForEach(e, deleting)
	{
		const char *ns = str_or(e, "namespace", NULL);
		if (ns)
			snprintf(key, sizeof(key), "%s/%s (%s)", ns, str_or(e, "name", "?"),
				 str_or(e, "subject", "?"));
		else
			snprintf(key, sizeof(key), "orphan %s", str_or(e, "description", "?"));
		printf("  consumer %s of %s: %s\n", str_or(e, "consumer", "?"), key,
		       str_or(e, "state", "deleting"));
	}
}

/* GET base+path; 0 with the body in res, or an exit status after a message. */
static int fetch(const char *base, const char *path, struct evd_http_fetch_result *res)
{
	char url[700], err[256];

	snprintf(url, sizeof(url), "%s%s", base, path);
	if (evd_http_fetch("GET", url, NULL, NULL, 0, 5000, res, err, sizeof(err)) < 0) {
		fprintf(stderr, "eventingd status: %s: %s (is eventingd running? try --admin URL)\n",
			url, err);
		return EX_UNAVAILABLE;
	}
	if (res->status != 200) {
		fprintf(stderr, "eventingd status: %s answered %d: %s\n", url, res->status,
			res->body.data ? res->body.data : "");
		return EX_UNAVAILABLE;
	}
	return 0;
}

int evd_cli_status(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "admin", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct evd_daemon_opts opts = { 0 };
	const char *admin = NULL;
	bool json = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "a:jc:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'a': admin = optarg; break;
		case 'j': json = true; break;
		case 'c':
			opts.config_path = optarg;
			opts.config_explicit = true;
			break;
		case 'h':
			printf("usage: eventingd status [--admin URL] [--json] [-c FILE]\n");
			return 0;
		default:
			return EX_USAGE;
		}
	}

	char base[512];
	int urc = admin_url(admin, &opts, base, sizeof(base));
	if (urc != 0)
		return urc;

	struct evd_http_fetch_result be = { 0 }, subs = { 0 };
	cJSON *broot = NULL, *sroot = NULL;
	int rc = fetch(base, "/v1/backend", &be);
	if (rc == 0)
		rc = fetch(base, "/v1/subscriptions", &subs);
	if (rc == 0) {
		broot = cJSON_ParseWithLength(be.body.data, be.body.len);
		sroot = cJSON_ParseWithLength(subs.body.data, subs.body.len);
		if (!broot || !sroot) {
			fprintf(stderr, "eventingd status: %s: a response is not JSON\n", base);
			rc = EX_PROTOCOL;
		}
	}
	if (rc == 0 && json) {
		/* Both documents as they came, in one object. */
		cJSON *both = cJSON_CreateObject();
		cJSON_AddItemToObject(both, "backend", broot);
		cJSON_AddItemToObject(both, "subscriptions", sroot);
		broot = sroot = NULL;
		char *text = cJSON_Print(both);
		puts(text);
		cJSON_free(text);
		cJSON_Delete(both);
	} else if (rc == 0) {
		print_backend(broot);
		print_subscriptions(sroot);
	}
	cJSON_Delete(broot);
	cJSON_Delete(sroot);
	evd_http_fetch_result_free(&be);
	evd_http_fetch_result_free(&subs);
	return rc;
}
