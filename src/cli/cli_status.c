/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/cli.h"
#include "cli/cli_internal.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "http/http_fetch.h"
#include "util/util_buf.h"
#include "util/util_mem.h"

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

static const cJSON *get(const cJSON *o, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(o, key);
}

int64_t evd_cli_parse_time(const char *text)
{
	int y, mo, d, h, mi, sec, n = 0;
	int64_t ms = 0;
	struct tm tm = { 0 };

	if (!text || sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
	    n != 19)
		return -1;
	text += n;
	if (*text == '.') {
		int digits = 0;
		for (text++; *text >= '0' && *text <= '9'; text++, digits++)
			if (digits < 3)
				ms = ms * 10 + (*text - '0');
		if (!digits)
			return -1;
		for (; digits < 3; digits++)
			ms *= 10;
	}
	int64_t offset_s = 0;
	if (*text == 'Z' || *text == 'z') {
		text++;
	} else if (*text == '+' || *text == '-') {
		int oh, om;
		if (sscanf(text + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5)
			return -1;
		offset_s = (*text == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
		text += 1 + n;
	} else {
		return -1;
	}
	if (*text)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	return ((int64_t)t - offset_s) * 1000 + ms;
}

void evd_cli_age(int64_t now_ms, int64_t then_ms, char *out, size_t len)
{
	if (then_ms < 0) {
		snprintf(out, len, "-");
		return;
	}
	/* A time ahead of ours is the two clocks disagreeing a little: "0 s ago", not an error. */
	int64_t s = now_ms > then_ms ? (now_ms - then_ms) / 1000 : 0;
	if (s < 120)
		snprintf(out, len, "%lld s ago", (long long)s);
	else if (s < 120 * 60)
		snprintf(out, len, "%lld min ago", (long long)(s / 60));
	else if (s < 48 * 3600)
		snprintf(out, len, "%lld h ago", (long long)(s / 3600));
	else
		snprintf(out, len, "%lld d ago", (long long)(s / 86400));
}

static void print_backend(FILE *out, const cJSON *root, int64_t now_ms)
{
	const cJSON *nats = get(root, "nats");
	const cJSON *server = get(nats, "server");
	const cJSON *stream = get(nats, "stream");

	fprintf(out, "BACKEND\n");
	fprintf(out, "  mode        %s\n", str_or(root, "mode", "?"));
	fprintf(out, "  state       %s\n", str_or(nats, "state", "?"));
	fprintf(out, "  url         %s\n", str_or(nats, "url", "-"));
	if (server)
		fprintf(out, "  server      %s (nats-server %s)\n", str_or(server, "name", "?"),
			str_or(server, "version", "?"));
	if (cJSON_IsObject(stream)) {
		double bytes = num_or(stream, "bytes", 0), max = num_or(stream, "max_bytes", -1);
		char age[32];
		fprintf(out, "  stream      %s (%s, %s retention, discard %s)\n",
			str_or(stream, "name", "?"), str_or(stream, "storage", "?"),
			str_or(stream, "retention", "?"), str_or(stream, "discard", "?"));
		/* The figures below are a periodic snapshot: say how old, so a count that has not
		 * caught up with a publish does not look wrong. */
		evd_cli_age(now_ms, evd_cli_parse_time(str_or(stream, "refreshed_at", NULL)), age,
			    sizeof(age));
		fprintf(out, "  as of       %s\n", age);
		fprintf(out, "  messages    %.0f\n", num_or(stream, "messages", 0));
		if (max > 0)
			fprintf(out, "  bytes       %.0f of %.0f (%.1f%%)\n", bytes, max,
				100.0 * bytes / max);
		else
			fprintf(out, "  bytes       %.0f (no limit)\n", bytes);
		fprintf(out, "  consumers   %.0f\n", num_or(stream, "consumers", 0));
	}
	fprintf(out, "  unrouted    %.0f events stored that no subscription wanted\n",
		num_or(cJSON_GetObjectItemCaseSensitive(root, "publish"), "unrouted_total", 0));
	const char *err = str_or(nats, "last_error", NULL);
	if (err && *err)
		fprintf(out, "  last error  %s\n", err);
}

static int max_int(int a, size_t b)
{
	return (size_t)a > b ? a : (int)b;
}

/* The table's cells of one subscription. */
struct row {
	char key[600];
	char pending[32];
	char as_of[32];
	char delivered[32];
	char failed[32];
};

/*
 * PENDING: the events of this subscription that are stored and not yet acknowledged, summed over
 * its consumers: numPending (not delivered yet) + numAckPending (delivered, awaiting the
 * outcome). "-" until every consumer has counters. AS OF: how old those counters are.
 */
static void fill_row(struct row *r, const cJSON *item, int64_t now_ms)
{
	const cJSON *md = get(item, "metadata"), *st = get(item, "status");
	const cJSON *backend = get(st, "backend"), *delivery = get(st, "delivery"), *c;
	double pending = 0;
	bool known = cJSON_GetArraySize(get(backend, "consumers")) > 0;

	snprintf(r->key, sizeof(r->key), "%s/%s", str_or(md, "namespace", "?"),
		 str_or(md, "name", "?"));
	cJSON_ArrayForEach(c, get(backend, "consumers"))
	{
		if (!cJSON_IsNumber(get(c, "numPending"))) {
			known = false;
			break;
		}
		pending += num_or(c, "numPending", 0) + num_or(c, "numAckPending", 0);
	}
	if (known)
		snprintf(r->pending, sizeof(r->pending), "%.0f", pending);
	else
		snprintf(r->pending, sizeof(r->pending), "-");
	evd_cli_age(now_ms, known ? evd_cli_parse_time(str_or(backend, "refreshedAt", NULL)) : -1,
		    r->as_of, sizeof(r->as_of));
	/* The dispatcher's figures, when it reports them (status.delivery). */
	if (cJSON_IsNumber(get(delivery, "delivered")))
		snprintf(r->delivered, sizeof(r->delivered), "%.0f", num_or(delivery, "delivered", 0));
	else
		snprintf(r->delivered, sizeof(r->delivered), "-");
	if (cJSON_IsNumber(get(delivery, "failed")))
		snprintf(r->failed, sizeof(r->failed), "%.0f", num_or(delivery, "failed", 0));
	else
		snprintf(r->failed, sizeof(r->failed), "-");
}

/* The subscriptions table: one line each, then its error; failed files after. */
static void print_subscriptions(FILE *out, const cJSON *root, int64_t now_ms)
{
	const cJSON *items = get(root, "items");
	const cJSON *sum = get(root, "summary");
	const cJSON *s, *f, *e;
	int n = cJSON_GetArraySize(items), i = 0;
	int wkey = (int)strlen("NAMESPACE/NAME"), wpend = (int)strlen("PENDING");
	int wage = (int)strlen("AS OF"), wdel = (int)strlen("DELIVERED");
	int wfail = (int)strlen("FAILED");
	struct row *rows = n > 0 ? evd_xcalloc((size_t)n, sizeof(*rows)) : NULL;
	char key[600];

	fprintf(out, "\nSUBSCRIPTIONS  %s: %.0f active, %.0f ready, %.0f of %.0f files failed\n",
		str_or(root, "directory", "?"), num_or(sum, "subscriptions", 0),
		num_or(sum, "ready", 0), num_or(sum, "filesFailed", 0), num_or(sum, "files", 0));
	const char *derr = str_or(root, "directoryError", NULL);
	if (derr)
		fprintf(out, "  directory: %s\n", derr);
	cJSON_ArrayForEach(s, items)
	{
		if (i >= n)
			break;
		struct row *r = &rows[i++];
		fill_row(r, s, now_ms);
		wkey = max_int(wkey, strlen(r->key));
		wpend = max_int(wpend, strlen(r->pending));
		wage = max_int(wage, strlen(r->as_of));
		wdel = max_int(wdel, strlen(r->delivered));
		wfail = max_int(wfail, strlen(r->failed));
	}
	if (n > 0)
		fprintf(out, "  %-*s  %-5s  %5s  %*s  %-*s  %*s  %*s  %s\n", wkey, "NAMESPACE/NAME",
			"READY", "TYPES", wpend, "PENDING", wage, "AS OF", wdel, "DELIVERED", wfail,
			"FAILED", "SINK");
	i = 0;
	cJSON_ArrayForEach(s, items)
	{
		if (i >= n)
			break;
		const struct row *r = &rows[i++];
		const cJSON *st = get(s, "status");
		fprintf(out, "  %-*s  %-5s  %5d  %*s  %-*s  %*s  %*s  %s\n", wkey, r->key,
			cJSON_IsTrue(get(st, "ready")) ? "yes" : "no",
			cJSON_GetArraySize(get(st, "types")), wpend, r->pending, wage, r->as_of, wdel,
			r->delivered, wfail, r->failed, str_or(get(s, "spec"), "sink", ""));
		const char *err = str_or(st, "lastError", NULL);
		if (err)
			fprintf(out, "      error: %s\n", err);
		/* The dispatcher's last failure, with its age: an old one next to newer
		 * deliveries reads differently from one that is still happening. */
		const char *ferr = str_or(get(st, "delivery"), "lastFailureReason", NULL);
		if (ferr) {
			char age[32];
			evd_cli_age(now_ms,
				    evd_cli_parse_time(str_or(get(st, "delivery"), "lastFailure", NULL)),
				    age, sizeof(age));
			fprintf(out, "      last delivery failure (%s): %s\n", age, ferr);
		}
		cJSON_ArrayForEach(e, get(st, "warnings"))
		{
			if (cJSON_IsString(e))
				fprintf(out, "      warning: %s\n", e->valuestring);
		}
	}
	free(rows);
	cJSON_ArrayForEach(f, get(root, "files"))
	{
		const cJSON *errors = get(f, "errors");
		if (cJSON_GetArraySize(errors) == 0)
			continue;
		fprintf(out, "  file %s: %s\n", str_or(f, "file", "?"),
			cJSON_IsTrue(get(f, "failed"))
				? (cJSON_IsTrue(get(f, "previousVersionActive"))
					   ? "not applied, its previous version stays active"
					   : "not applied")
				: "applied in part");
		cJSON_ArrayForEach(e, errors)
		{
			if (cJSON_IsString(e))
				fprintf(out, "      %s\n", e->valuestring);
		}
	}
	/* Consumers waiting for subscriptions.delete_grace: still there, events kept. */
	cJSON_ArrayForEach(e, get(root, "deleting"))
	{
		const char *ns = str_or(e, "namespace", NULL);
		if (ns)
			snprintf(key, sizeof(key), "%s/%s (%s)", ns, str_or(e, "name", "?"),
				 str_or(e, "subject", "?"));
		else
			snprintf(key, sizeof(key), "orphan %s", str_or(e, "description", "?"));
		fprintf(out, "  consumer %s of %s: %s\n", str_or(e, "consumer", "?"), key,
			str_or(e, "state", "deleting"));
	}
}

void evd_cli_status_print(FILE *out, const cJSON *backend, const cJSON *subs, int64_t now_ms)
{
	if (backend)
		print_backend(out, backend, now_ms);
	if (subs)
		print_subscriptions(out, subs, now_ms);
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
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		evd_cli_status_print(stdout, broot, sroot,
				     (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	}
	cJSON_Delete(broot);
	cJSON_Delete(sroot);
	evd_http_fetch_result_free(&be);
	evd_http_fetch_result_free(&subs);
	return rc;
}
