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
 * configuration still prints its diagnostics: they explain why the default is tried.
 */
static void admin_url(const char *given, const struct evd_daemon_opts *opts, char *out, size_t len)
{
	if (given) {
		snprintf(out, len, "%s", given);
		size_t n = strlen(out);
		while (n > 0 && out[n - 1] == '/')
			out[--n] = '\0';
	} else if (evd_cli_listen_url(opts, true, out, len) != 0) {
		snprintf(out, len, "http://127.0.0.1:9090");
	}
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

	char base[512], url[600], err[256];
	admin_url(admin, &opts, base, sizeof(base));
	snprintf(url, sizeof(url), "%s/v1/backend", base);

	struct evd_http_fetch_result res = { 0 };
	if (evd_http_fetch("GET", url, NULL, NULL, 0, 5000, &res, err, sizeof(err)) < 0) {
		fprintf(stderr, "eventingd status: %s: %s (is eventingd running? try --admin URL)\n",
			url, err);
		evd_http_fetch_result_free(&res);
		return EX_UNAVAILABLE;
	}
	int rc = 0;
	if (res.status != 200) {
		fprintf(stderr, "eventingd status: %s answered %d: %s\n", url, res.status,
			res.body.data ? res.body.data : "");
		rc = EX_UNAVAILABLE;
	} else if (json) {
		fputs(res.body.data, stdout);
	} else {
		cJSON *root = cJSON_ParseWithLength(res.body.data, res.body.len);
		if (!root) {
			fprintf(stderr, "eventingd status: %s: response is not JSON\n", url);
			rc = EX_PROTOCOL;
		} else {
			print_backend(root);
			cJSON_Delete(root);
		}
	}
	evd_http_fetch_result_free(&res);
	return rc;
}
