/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The config loader against tables: defaults (production and dev), a file that sets every key,
 * one changed key at a time (which field moves, which keys need a restart), bad files with the
 * exact diagnostics they must produce, and sizes and durations both ways.
 *
 * Optional arguments: the sample config, the dev sample and the man page (meson passes them), which
 * must agree with the key table.
 */
#include "unit.h"

#include "config/config.h"
#include "config/config_internal.h"
#include "util/util_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/test_config.XXXXXX";

/* Writes text to t.yaml in the test's own directory and loads it; diagnostics go to out. */
static int load_text(const char *text, bool dev, struct evd_config **cfg, struct evd_buf *out)
{
	struct evd_diag d = EVD_DIAG_INIT;
	FILE *f = fopen("t.yaml", "w");
	if (!f)
		return -errno;
	fputs(text, f);
	fclose(f);
	*cfg = NULL;
	int rc = evd_config_load("t.yaml", dev, cfg, &d);
	evd_diag_format(&d, out);
	evd_diag_free(&d);
	return rc;
}

/* Every key that differs between a and b, comma-separated. */
static void diff_keys(const struct evd_config *a, const struct evd_config *b, struct evd_buf *out)
{
	for (size_t i = 0; i < evd_config_nkeys; i++) {
		if (!evd_config_key_equal(&evd_config_keys[i], a, b))
			evd_buf_printf(out, "%s%s", out->len ? ", " : "", evd_config_keys[i].name);
	}
}

static void test_defaults(void)
{
	struct evd_config *c = evd_config_defaults(false);
	CHECK(!c->dev);
	CHECK(c->source_file == NULL);
	CHECK_STR(c->publish.listen, "127.0.0.1:8080");
	CHECK_INT(c->publish.max_request_size, 64 * 1024);
	CHECK_INT(c->publish.max_in_flight, 4096);
	CHECK_STR(c->publish.event_type_prefix, "sap.kyma.custom");
	CHECK(c->publish.legacy_prefixed_copy);
	CHECK(c->publish.access_log == NULL);
	CHECK_STR(c->admin.listen, "127.0.0.1:9090");
	CHECK_STR(c->nats.url, "embedded");
	CHECK(evd_config_embedded(c));
	CHECK_STR(c->nats.embedded.binary, "nats-server");
	CHECK_INT(c->nats.embedded.max_store, 1024LL * 1024 * 1024);
	CHECK(!c->nats.creds && !c->nats.token && !c->nats.user && !c->nats.password);
	CHECK(!c->nats.tls.ca && !c->nats.tls.cert && !c->nats.tls.key);
	CHECK_STR(c->state_dir, "/var/lib/eventingd");
	CHECK_STR(c->stream.name, "sap");
	CHECK_STR(c->stream.subject_prefix, "kyma");
	CHECK_INT(c->stream.storage, EVD_STORAGE_FILE);
	CHECK_INT(c->stream.retention, EVD_RETENTION_INTEREST);
	CHECK_INT(c->stream.discard, EVD_DISCARD_NEW);
	CHECK_INT(c->stream.max_bytes, 700LL * 1024 * 1024);
	CHECK_INT(c->stream.max_age, 0);
	CHECK_INT(c->stream.replicas, 1);
	CHECK_INT(c->stream.duplicate_window, 120000);
	CHECK_STR(c->subscriptions.dir, EVD_SYSCONFDIR_STR "/eventingd/subscriptions.d");
	CHECK(c->subscriptions.prune_orphans);
	CHECK_INT(c->dispatch.ack_wait, 30000);
	CHECK_INT(c->dispatch.max_deliver, 100);
	CHECK_INT(c->dispatch.timeout, 15000);
	CHECK_INT(c->dispatch.backoff.initial, 1000);
	CHECK_INT(c->dispatch.backoff.max, 300000);
	CHECK(c->dispatch.backoff.factor == 2.0);
	CHECK_INT(c->dispatch.max_connections_per_sink, 64);
	CHECK_INT(c->dispatch.drain_timeout, 10000);
	CHECK_INT(c->dispatch.max_event_age, 86400000);
	CHECK_STR(c->deadletters.stream, "sap-dlq");
	CHECK_INT(c->deadletters.max_bytes, 256LL * 1024 * 1024);
	CHECK_INT(c->deadletters.max_age, 7LL * 86400000);
	CHECK_INT(c->log.level, EVD_LOG_INFO);
	CHECK_INT(c->log.format, EVD_LOG_TEXT);

	/* Dev differs in where state and subscriptions live, and nowhere else. */
	struct evd_config *d = evd_config_defaults(true);
	struct evd_buf diff = EVD_BUF_INIT;
	CHECK(d->dev);
	CHECK_STR(d->state_dir, "./.eventingd");
	CHECK_STR(d->subscriptions.dir, "./subscriptions.d");
	CHECK_STR(d->publish.listen, "127.0.0.1:8080");
	CHECK_STR(d->admin.listen, "127.0.0.1:9090");
	diff_keys(c, d, &diff);
	CHECK_STR(diff.data, "state_dir, subscriptions.dir");
	evd_buf_free(&diff);

	/* No path: defaults; an empty file and a comments-only file: the same defaults. */
	static const char *const empty[] = { "", "# nothing\n\n   # here\n", "---\n", "~\n",
					     "publish:\nnats:\n  tls:\n" };
	for (size_t i = 0; i < EVD_ARRAY_SIZE(empty); i++) {
		struct evd_config *e = NULL;
		struct evd_buf out = EVD_BUF_INIT;
		CHECK_INT(load_text(empty[i], false, &e, &out), 0);
		CHECK_STR(out.data ? out.data : "", "");
		if (e) {
			CHECK_STR(e->source_file, "t.yaml");
			diff_keys(c, e, &diff);
			CHECK_STR(diff.data ? diff.data : "", "");
		}
		evd_buf_free(&diff);
		evd_buf_free(&out);
		evd_config_free(e);
	}
	struct evd_diag dg = EVD_DIAG_INIT;
	struct evd_config *n = NULL;
	CHECK_INT(evd_config_load(NULL, true, &n, &dg), 0);
	CHECK(n && n->dev && dg.count == 0);
	evd_config_free(n);
	evd_diag_free(&dg);

	evd_config_free(c);
	evd_config_free(d);
}

/* Every key set to something other than its default (an external cluster, so auth is valid). */
static const char every_key[] =
	"publish:\n"
	"  listen: 0.0.0.0:18080\n"
	"  max_request_size: 1MiB\n"
	"  max_in_flight: 100\n"
	"  event_type_prefix: acme.custom\n"
	"  legacy_prefixed_copy: false\n"
	"  access_log: \"-\"\n"
	"admin:\n"
	"  listen: \"[::1]:19090\"\n"
	"nats:\n"
	"  url: nats://n1.example:4222, nats://n2.example:4222,tls://10.0.0.3\n"
	"  embedded:\n"
	"    binary: /opt/nats/nats-server\n"
	"    max_store: 10GiB\n"
	"  user: evd\n"
	"  password: s3cret\n"
	"  tls:\n"
	"    ca: /etc/ssl/ca.pem\n"
	"    cert: /etc/ssl/c.pem\n"
	"    key: /etc/ssl/c.key\n"
	"state_dir: /srv/evd\n"
	"stream:\n"
	"  name: events\n"
	"  subject_prefix: acme.ev\n"
	"  storage: memory\n"
	"  retention: limits\n"
	"  discard: old\n"
	"  max_bytes: 2GiB\n"
	"  max_age: 3d\n"
	"  replicas: 3\n"
	"  duplicate_window: 1m30s\n"
	"subscriptions:\n"
	"  dir: /srv/subs\n"
	"  prune_orphans: true\n"
	"  delete_grace: 1m\n"
	"dispatch:\n"
	"  ack_wait: 1m\n"
	"  max_deliver: 10\n"
	"  timeout: 45s\n"
	"  backoff:\n"
	"    initial: 250ms\n"
	"    max: 1h\n"
	"    factor: 1.5\n"
	"  max_connections_per_sink: 8\n"
	"  drain_timeout: 0\n"
	"  max_event_age: 2d12h\n"
	"deadletters:\n"
	"  stream: graveyard\n"
	"  max_bytes: 512MiB\n"
	"  max_age: 0\n"
	"log:\n"
	"  level: debug\n"
	"  format: json\n";

static void test_every_key(void)
{
	struct evd_config *c = NULL;
	struct evd_buf out = EVD_BUF_INIT;
	CHECK_INT(load_text(every_key, false, &c, &out), 0);
	CHECK_STR(out.data ? out.data : "", "");
	evd_buf_free(&out);
	if (!c)
		return;
	CHECK_STR(c->publish.listen, "0.0.0.0:18080");
	CHECK_INT(c->publish.max_request_size, 1024 * 1024);
	CHECK_INT(c->publish.max_in_flight, 100);
	CHECK_STR(c->publish.event_type_prefix, "acme.custom");
	CHECK(!c->publish.legacy_prefixed_copy);
	CHECK_STR(c->publish.access_log, "-");
	CHECK_STR(c->admin.listen, "[::1]:19090");
	CHECK_STR(c->nats.url, "nats://n1.example:4222,nats://n2.example:4222,tls://10.0.0.3");
	CHECK(!evd_config_embedded(c));
	CHECK_STR(c->nats.embedded.binary, "/opt/nats/nats-server");
	CHECK_INT(c->nats.embedded.max_store, 10LL << 30);
	CHECK(c->nats.creds == NULL && c->nats.token == NULL);
	CHECK_STR(c->nats.user, "evd");
	CHECK_STR(c->nats.password, "s3cret");
	CHECK_STR(c->nats.tls.ca, "/etc/ssl/ca.pem");
	CHECK_STR(c->nats.tls.cert, "/etc/ssl/c.pem");
	CHECK_STR(c->nats.tls.key, "/etc/ssl/c.key");
	CHECK_STR(c->state_dir, "/srv/evd");
	CHECK_STR(c->stream.name, "events");
	CHECK_STR(c->stream.subject_prefix, "acme.ev");
	CHECK_INT(c->stream.storage, EVD_STORAGE_MEMORY);
	CHECK_INT(c->stream.retention, EVD_RETENTION_LIMITS);
	CHECK_INT(c->stream.discard, EVD_DISCARD_OLD);
	CHECK_INT(c->stream.max_bytes, 2LL << 30);
	CHECK_INT(c->stream.max_age, 3LL * 86400000);
	CHECK_INT(c->stream.replicas, 3);
	CHECK_INT(c->stream.duplicate_window, 90000);
	CHECK_STR(c->subscriptions.dir, "/srv/subs");
	CHECK(c->subscriptions.prune_orphans); /* explicit beats the external default */
	CHECK(c->subscriptions.prune_orphans_explicit);
	CHECK_INT(c->subscriptions.delete_grace, 60000);
	CHECK_INT(c->dispatch.ack_wait, 60000);
	CHECK_INT(c->dispatch.max_deliver, 10);
	CHECK_INT(c->dispatch.timeout, 45000);
	CHECK_INT(c->dispatch.backoff.initial, 250);
	CHECK_INT(c->dispatch.backoff.max, 3600000);
	CHECK(c->dispatch.backoff.factor == 1.5);
	CHECK_INT(c->dispatch.max_connections_per_sink, 8);
	CHECK_INT(c->dispatch.drain_timeout, 0);
	CHECK_INT(c->dispatch.max_event_age, 60LL * 3600000);
	CHECK_STR(c->deadletters.stream, "graveyard");
	CHECK_INT(c->deadletters.max_bytes, 512LL << 20);
	CHECK_INT(c->deadletters.max_age, 0);
	CHECK_INT(c->log.level, EVD_LOG_DEBUG);
	CHECK_INT(c->log.format, EVD_LOG_JSON);

	/* Every key differs from the defaults except creds, token and prune_orphans. */
	struct evd_config *d = evd_config_defaults(false);
	struct evd_buf diff = EVD_BUF_INIT, restart = EVD_BUF_INIT;
	diff_keys(d, c, &diff);
	size_t ndiff = 1;
	for (const char *p = diff.data; *p; p++)
		ndiff += *p == ',';
	CHECK_INT(ndiff, evd_config_nkeys - 3);
	int n = evd_config_restart_keys(d, c, &restart);
	CHECK_STR(restart.data,
		  "publish.listen, publish.event_type_prefix, admin.listen, nats.url, "
		  "nats.embedded.binary, nats.embedded.max_store, "
		  "nats.user, nats.password, "
		  "nats.tls.ca, nats.tls.cert, nats.tls.key, state_dir, stream.name, "
		  "stream.subject_prefix, stream.storage, stream.retention, "
		  "deadletters.stream, deadletters.max_bytes, deadletters.max_age");
	CHECK_INT(n, 19);
	evd_buf_reset(&restart);
	CHECK_INT(evd_config_restart_keys(c, c, &restart), 0);
	CHECK_INT(restart.len, 0);

	/* A reload keeps the running value of every restart key and takes the reloadable ones. */
	struct evd_config *kept = evd_config_defaults(false);
	evd_config_keep_restart_keys(c, kept);
	CHECK_INT(evd_config_restart_keys(c, kept, &restart), 0);
	CHECK_STR(kept->stream.subject_prefix, "acme.ev");
	CHECK_STR(kept->stream.name, "events");
	CHECK_INT(kept->stream.max_bytes, d->stream.max_bytes);
	evd_config_free(kept);
	evd_buf_free(&restart);
	evd_buf_free(&diff);
	evd_config_free(d);
	evd_config_free(c);
}

/* Builds "a:\n  b:\n    c: value\n" from a dotted key. */
static void nested_yaml(const char *key, const char *value, struct evd_buf *out)
{
	int depth = 0;
	const char *p = key;
	for (const char *dot; (dot = strchr(p, '.')); p = dot + 1, depth++)
		evd_buf_printf(out, "%*s%.*s:\n", depth * 2, "", (int)(dot - p), p);
	evd_buf_printf(out, "%*s%s: %s\n", depth * 2, "", p, value);
}

/*
 * One key at a time: the loaded config differs from the defaults in that key (and the keys
 * computed from it) and nowhere else, and restart_keys lists it exactly when it is not reloadable.
 * A key missing from this table fails the test, so a new key cannot skip it.
 */
static void test_one_key(void)
{
	static const struct {
		const char *key, *value;
		const char *also;  /* a computed key that follows it, or its partner */
		const char *extra; /* the partner, appended right under the key */
	} rows[] = {
		{ "publish.listen", ":8081", NULL },
		{ "publish.max_request_size", "1024", NULL },
		{ "publish.max_in_flight", "1", NULL },
		{ "publish.event_type_prefix", "x", NULL },
		{ "publish.legacy_prefixed_copy", "False", NULL },
		{ "publish.access_log", "/var/log/evd.log", NULL },
		{ "admin.listen", "localhost:0", NULL },
		{ "nats.url", "nats://127.0.0.1:4222", "subscriptions.prune_orphans" },
		{ "nats.embedded.binary", "./nats", NULL },
		{ "nats.embedded.max_store", "2GiB", NULL },
		{ "nats.embedded.max_memory", "1GiB", NULL },
		{ "nats.creds", "/x.creds", NULL },
		{ "nats.token", "t", NULL },
		{ "nats.user", "u", "nats.password", "  password: p\n" },
		{ "nats.password", "p", "nats.user", "  user: u\n" },
		{ "nats.tls.ca", "ca.pem", NULL },
		{ "nats.tls.cert", "c.pem", "nats.tls.key", "    key: k\n" },
		{ "nats.tls.key", "c.key", "nats.tls.cert", "    cert: c\n" },
		{ "state_dir", "/tmp/x", NULL },
		{ "stream.name", "other", "deadletters.stream" },
		{ "stream.subject_prefix", "a.b", NULL },
		{ "stream.storage", "memory", "nats.embedded.max_memory" },
		{ "stream.retention", "limits", NULL },
		{ "stream.discard", "old", NULL },
		{ "stream.max_bytes", "1MiB", NULL },
		{ "stream.max_age", "1h", NULL },
		{ "stream.replicas", "2", NULL },
		{ "stream.duplicate_window", "100ms", NULL },
		{ "subscriptions.dir", "subs", NULL },
		{ "subscriptions.prune_orphans", "false", NULL },
		{ "subscriptions.delete_grace", "0", NULL },
		{ "dispatch.ack_wait", "16s", NULL },
		{ "dispatch.max_deliver", "1000000", NULL },
		{ "dispatch.timeout", "29s999ms", NULL },
		{ "dispatch.backoff.initial", "5m", NULL },
		{ "dispatch.backoff.max", "7d", NULL },
		{ "dispatch.backoff.factor", "100", NULL },
		{ "dispatch.max_connections_per_sink", "4096", NULL },
		{ "dispatch.drain_timeout", "1h", NULL },
		{ "dispatch.max_event_age", "1m", NULL },
		{ "deadletters.stream", "dlq", NULL },
		{ "deadletters.max_bytes", "1MiB", NULL },
		{ "deadletters.max_age", "0", NULL },
		{ "log.level", "warning", NULL },
		{ "log.format", "json", NULL },
	};
	struct evd_config *def = evd_config_defaults(false);

	CHECK_INT(EVD_ARRAY_SIZE(rows), evd_config_nkeys);
	for (size_t i = 0; i < evd_config_nkeys; i++) {
		const struct evd_config_key *k = &evd_config_keys[i];
		size_t r = 0;
		while (r < EVD_ARRAY_SIZE(rows) && strcmp(rows[r].key, k->name) != 0)
			r++;
		if (r == EVD_ARRAY_SIZE(rows)) {
			fprintf(stderr, "key %s has no row in test_one_key\n", k->name);
			CHECK(0);
			continue;
		}
		struct evd_buf yaml = EVD_BUF_INIT, out = EVD_BUF_INIT, want = EVD_BUF_INIT;
		struct evd_buf diff = EVD_BUF_INIT, restart = EVD_BUF_INIT;
		struct evd_config *c = NULL;

		nested_yaml(k->name, rows[r].value, &yaml);
		if (rows[r].extra)
			evd_buf_append_str(&yaml, rows[r].extra);
		/* Replicas above 1 need an external cluster; pair keys need their partner. */
		if (strcmp(k->name, "stream.replicas") == 0)
			evd_buf_append_str(&yaml, "nats:\n  url: nats://h:4222\n");
		int rc = load_text(yaml.data, false, &c, &out);
		CHECK_INT(rc, 0);
		if (!c) {
			fprintf(stderr, "%s: %s", k->name, out.data);
			goto next;
		}
		diff_keys(def, c, &diff);
		for (size_t j = 0; j < evd_config_nkeys; j++) {
			const char *name = evd_config_keys[j].name;
			bool moved = strcmp(name, k->name) == 0 ||
				     (rows[r].also && strcmp(name, rows[r].also) == 0) ||
				     (strcmp(k->name, "stream.replicas") == 0 &&
				      (strcmp(name, "nats.url") == 0 ||
				       strcmp(name, "subscriptions.prune_orphans") == 0));
			if (moved)
				evd_buf_printf(&want, "%s%s", want.len ? ", " : "", name);
		}
		if (strcmp(diff.data ? diff.data : "", want.data) != 0)
			fprintf(stderr, "key %s:\n", k->name);
		CHECK_STR(diff.data ? diff.data : "", want.data);
		evd_config_restart_keys(def, c, &restart);
		if (!k->reloadable)
			CHECK(strstr(restart.data ? restart.data : "", k->name) != NULL);
		else
			CHECK(!restart.data || !strstr(restart.data, k->name));
	next:
		evd_config_free(c);
		evd_buf_free(&yaml);
		evd_buf_free(&out);
		evd_buf_free(&want);
		evd_buf_free(&diff);
		evd_buf_free(&restart);
	}
	evd_config_free(def);
}

/* Bad files and exactly what the user reads: every problem, file order, FILE:LINE:COL: key: message. */
static void test_bad(void)
{
	static const struct {
		const char *text;
		const char *want;
	} rows[] = {
		/* Unknown keys: typos, wrong nesting, no suggestion. */
		{ "publish:\n  max_inflight: 10\n",
		  "t.yaml:2:3: publish.max_inflight: unknown key; did you mean 'publish.max_in_flight'?\n" },
		{ "log:\n  levle: debug\n",
		  "t.yaml:2:3: log.levle: unknown key; did you mean 'log.level'?\n" },
		{ "publish:\n  ack_wait: 3s\n",
		  "t.yaml:2:3: publish.ack_wait: unknown key; did you mean 'dispatch.ack_wait'?\n" },
		{ "listen: :80\n",
		  "t.yaml:1:1: listen: unknown key; did you mean 'publish.listen' or 'admin.listen'?\n" },
		{ "backoff:\n  initial: 1s\n",
		  "t.yaml:1:1: backoff: unknown key; did you mean 'dispatch.backoff'?\n" },
		{ "dispatch:\n  backoff:\n    max_deliver: 3\n",
		  "t.yaml:3:5: dispatch.backoff.max_deliver: unknown key; did you mean 'dispatch.max_deliver'?\n" },
		{ "nats:\n  tls:\n    kee: k\n",
		  "t.yaml:3:5: nats.tls.kee: unknown key; did you mean 'nats.tls.key'?\n" },
		{ "foo: 1\n",
		  "t.yaml:1:1: foo: unknown key (valid here: publish, admin, nats, state_dir, stream, "
		  "subscriptions, dispatch, deadletters, log)\n" },
		{ "nats:\n  tls:\n    pem: x\n",
		  "t.yaml:3:5: nats.tls.pem: unknown key (valid here: ca, cert, key)\n" },
		{ "publish.listen: :80\n",
		  "t.yaml:1:1: publish.listen: dotted keys are not expanded; nest it: write \"publish:\" "
		  "and under it \"listen:\"\n" },
		/* Bad values point at the value. */
		{ "publish:\n  max_request_size: 64KB\n",
		  "t.yaml:2:21: publish.max_request_size: must be a size such as 64KiB, got \"64KB\" "
		  "(\"KB\" is not accepted: use bare bytes or the IEC units B, KiB, MiB, GiB, TiB)\n" },
		{ "stream:\n  max_bytes: lots\n",
		  "t.yaml:2:14: stream.max_bytes: must be a size such as 64KiB, got \"lots\"\n" },
		{ "stream:\n  max_bytes: 5 PiB\n",
		  "t.yaml:2:14: stream.max_bytes: must be a size such as 64KiB, got \"5 PiB\" "
		  "(unknown unit \"PiB\": use bare bytes or B, KiB, MiB, GiB, TiB)\n" },
		{ "dispatch:\n  ack_wait: 30 seconds\n",
		  "t.yaml:2:13: dispatch.ack_wait: must be a duration such as 30s or 1h30m, got "
		  "\"30 seconds\" (a number needs a unit: ms, s, m, h or d)\n" },
		{ "dispatch:\n  ack_wait: 2w\n",
		  "t.yaml:2:13: dispatch.ack_wait: must be a duration such as 30s or 1h30m, got \"2w\" "
		  "(unknown unit \"w\": use ms, s, m, h or d)\n" },
		{ "stream:\n  max_age: 5\n",
		  "t.yaml:2:12: stream.max_age: must be a duration such as 30s or 1h30m, got \"5\" "
		  "(a number needs a unit: ms, s, m, h or d)\n" },
		{ "stream:\n  storage: disk\n",
		  "t.yaml:2:12: stream.storage: must be file or memory, got \"disk\"\n" },
		{ "log:\n  level: loud\n",
		  "t.yaml:2:10: log.level: must be one of error, warn, info or debug, got \"loud\"\n" },
		{ "publish:\n  legacy_prefixed_copy: yes\n",
		  "t.yaml:2:25: publish.legacy_prefixed_copy: must be true or false, got \"yes\"\n" },
		{ "publish:\n  max_in_flight: -1\n",
		  "t.yaml:2:18: publish.max_in_flight: must be a whole number such as 64, got \"-1\"\n" },
		{ "publish:\n  max_in_flight: 0\n",
		  "t.yaml:2:18: publish.max_in_flight: must be between 1 and 1000000, got 0\n" },
		{ "stream:\n  replicas: 7\nnats:\n  url: nats://a:4222\n",
		  "t.yaml:2:13: stream.replicas: must be between 1 and 5, got 7\n" },
		{ "publish:\n  max_request_size: 2GiB\n",
		  "t.yaml:2:21: publish.max_request_size: must be between 1KiB and 1GiB, got 2GiB\n" },
		{ "dispatch:\n  backoff:\n    factor: 0.5\n",
		  "t.yaml:3:13: dispatch.backoff.factor: must be between 1 and 100, got 0.5\n" },
		{ "dispatch:\n  backoff:\n    factor: 0x10\n",
		  "t.yaml:3:13: dispatch.backoff.factor: must be a number such as 1.5, got \"0x10\"\n" },
		{ "stream:\n  max_bytes: 16777215TiB\n",
		  "t.yaml:2:14: stream.max_bytes: must be at most 9223372036854775807B (JetStream's "
		  "limit), got 16777215TiB\n" },
		{ "stream:\n  duplicate_window: 0\n",
		  "t.yaml:2:21: stream.duplicate_window: must be at least 100ms, got 0\n" },
		{ "dispatch:\n  ack_wait: 2d\n",
		  "t.yaml:2:13: dispatch.ack_wait: must be between 1s and 1d, got 2d\n" },
		{ "stream:\n  name: a.b\n",
		  "t.yaml:2:9: stream.name: must be a stream name without spaces, '.', '*', '>', '/' "
		  "or '\\', got \"a.b\"\n" },
		{ "publish:\n  listen: 127.0.0.1\n",
		  "t.yaml:2:11: publish.listen: must be an address such as 127.0.0.1:8080, got "
		  "\"127.0.0.1\" (expected \"HOST:PORT\" (for example 127.0.0.1:8080))\n" },
		{ "nats:\n  url: nats://a:4222, http://b:1\n",
		  "t.yaml:2:8: nats.url: \"http://b:1\" is not a NATS URL: unsupported scheme \"http\" "
		  "(use nats:// or tls://)\n" },
		{ "nats:\n  url:\n    - nats://a:4222\n    - tls://[::1]:70000\n",
		  "t.yaml:4:7: nats.url: \"tls://[::1]:70000\" is not a NATS URL: port must be a number "
		  "from 1 to 65535\n" },
		{ "nats:\n  url: embedded,nats://a\n",
		  "t.yaml:2:8: nats.url: \"embedded\" cannot be combined with URLs\n" },
		/* Wrong shapes point at the key. */
		{ "log:\n  format:\n    a: 1\n",
		  "t.yaml:2:3: log.format: must be text or json, got a mapping\n" },
		{ "nats:\n  tls: x\n",
		  "t.yaml:2:3: nats.tls: must be a mapping of keys (ca, cert, key), got a scalar\n" },
		{ "publish: [1]\n",
		  "t.yaml:1:1: publish: must be a mapping of keys (listen, max_request_size, "
		  "max_in_flight, event_type_prefix, legacy_prefixed_copy, access_log), got a sequence\n" },
		{ "publish:\n  listen:\n",
		  "t.yaml:2:3: publish.listen: must be an address such as 127.0.0.1:8080, got an empty "
		  "value (remove the key to keep the default)\n" },
		{ "- a\n- b\n",
		  "t.yaml:1:1: the top level must be a mapping of keys (publish, admin, nats, state_dir, "
		  "stream, subscriptions, dispatch, deadletters, log), got a sequence\n" },
		{ "just text\n",
		  "t.yaml:1:1: the top level must be a mapping of keys (publish, admin, nats, state_dir, "
		  "stream, subscriptions, dispatch, deadletters, log), got a scalar\n" },
		{ "log:\n  level: info\n---\nlog:\n  level: info\n",
		  "t.yaml:4:1: a configuration file holds one YAML document, found 2\n" },
		/* Rules across keys. */
		{ "dispatch:\n  timeout: 30s\n",
		  "t.yaml:2:12: dispatch.timeout: must be less than dispatch.ack_wait (30s), got 30s\n" },
		{ "dispatch:\n  timeout: 1m\n  ack_wait: 40s\n",
		  "t.yaml:2:12: dispatch.timeout: must be less than dispatch.ack_wait (40s), got 1m\n" },
		{ "dispatch:\n  ack_wait: 10s\n",
		  "t.yaml:2:13: dispatch.ack_wait: must be greater than dispatch.timeout (15s), got 10s\n" },
		{ "dispatch:\n  backoff:\n    initial: 10m\n",
		  "t.yaml:3:14: dispatch.backoff.initial: must not exceed dispatch.backoff.max (5m), got 10m\n" },
		{ "stream:\n  max_age: 1m\n",
		  "t.yaml:2:12: stream.max_age: must be 0 (unlimited) or at least "
		  "stream.duplicate_window (2m), got 1m\n" },
		{ "stream:\n  replicas: 3\n",
		  "t.yaml:2:13: stream.replicas: must be 1 with the embedded nats-server (a single "
		  "node), got 3\n" },
		{ "stream:\n  max_bytes: 2GiB\n",
		  "t.yaml:2:14: stream.max_bytes: nats.embedded.max_store (1GiB) cannot hold "
		  "stream.max_bytes (2GiB) plus deadletters.max_bytes (256MiB)\n" },
		{ "deadletters:\n  stream: sap\n",
		  "t.yaml:2:11: deadletters.stream: the stream and the dead-letter stream must have "
		  "different names (\"sap\")\n" },
		{ "admin:\n  listen: localhost:8080\n",
		  "t.yaml:2:11: admin.listen: publish.listen and admin.listen must differ (both "
		  "127.0.0.1:8080)\n" },
		{ "nats:\n  url: nats://h:4222\n  user: u\n  tls:\n    key: k\n",
		  "t.yaml:3:3: nats.user: needs nats.password as well\n"
		  "t.yaml:5:5: nats.tls.key: needs nats.tls.cert as well\n" },
		{ "nats:\n  url: nats://h:4222\n  creds: c\n  token: t\n",
		  "t.yaml:4:3: nats.token: cannot be combined with nats.creds; choose one way to "
		  "authenticate\n" },
		/* Many mistakes in one file: all of them, in file order, cross rules included. */
		{ "publish:\n"
		  "  max_request_size: 64KB\n"
		  "  lisen: :80\n"
		  "dispatch:\n"
		  "  timeout: 1m\n"
		  "  ack_wait: 1x\n"
		  "  backoff:\n"
		  "    initial: 1h\n"
		  "    max: 30m\n"
		  "stream:\n"
		  "  storage: disk\n"
		  "ack_wait: 1s\n",
		  "t.yaml:2:21: publish.max_request_size: must be a size such as 64KiB, got \"64KB\" "
		  "(\"KB\" is not accepted: use bare bytes or the IEC units B, KiB, MiB, GiB, TiB)\n"
		  "t.yaml:3:3: publish.lisen: unknown key; did you mean 'publish.listen'?\n"
		  "t.yaml:6:13: dispatch.ack_wait: must be a duration such as 30s or 1h30m, got \"1x\" "
		  "(unknown unit \"x\": use ms, s, m, h or d)\n"
		  "t.yaml:8:14: dispatch.backoff.initial: must not exceed dispatch.backoff.max (30m), got 1h\n"
		  "t.yaml:11:12: stream.storage: must be file or memory, got \"disk\"\n"
		  "t.yaml:12:1: ack_wait: unknown key; did you mean 'dispatch.ack_wait'?\n" },
	};

	for (size_t i = 0; i < EVD_ARRAY_SIZE(rows); i++) {
		struct evd_config *c = NULL;
		struct evd_buf out = EVD_BUF_INIT;
		int rc = load_text(rows[i].text, false, &c, &out);
		CHECK_INT(rc, -EINVAL);
		CHECK(c == NULL);
		if (!out.data || strcmp(out.data, rows[i].want) != 0)
			fprintf(stderr, "row %zu:\n%s", i, rows[i].text);
		CHECK_STR(out.data ? out.data : "", rows[i].want);
		evd_buf_free(&out);
		evd_config_free(c);
	}
}

/* Valid files that still earn a warning, and computed defaults. */
static void test_warnings_and_computed(void)
{
	struct evd_config *c = NULL;
	struct evd_buf out = EVD_BUF_INIT;

	CHECK_INT(load_text("nats:\n  token: t\n", false, &c, &out), 0);
	CHECK_STR(out.data, "t.yaml:2:3: warning: nats.token: only used with an external nats.url; "
			    "ignored with the embedded server\n");
	CHECK(c && c->subscriptions.prune_orphans);
	evd_config_free(c);
	evd_buf_reset(&out);

	/* External: prune_orphans defaults to false; the dlq follows stream.name. */
	CHECK_INT(load_text("nats:\n  url: [nats://a:4222, \"tls://b\"]\nstream:\n  name: ev\n"
			    "deadletters:\n  stream:\npublish:\n  access_log: \"\"\n",
			    false, &c, &out),
		  0);
	CHECK(out.len == 0);
	if (c) {
		CHECK_STR(c->nats.url, "nats://a:4222,tls://b");
		CHECK(!c->subscriptions.prune_orphans);
		CHECK(!c->subscriptions.prune_orphans_explicit);
		CHECK_STR(c->deadletters.stream, "ev-dlq");
		CHECK(c->publish.access_log == NULL);
	}
	evd_config_free(c);
	evd_buf_reset(&out);

	CHECK_INT(load_text("nats:\n  url: tls://user:pw@[::1]:4443\nsubscriptions:\n  prune_orphans: true\n",
			    true, &c, &out),
		  0);
	CHECK(c && c->subscriptions.prune_orphans && c->dev);
	if (c)
		CHECK_STR(c->state_dir, "./.eventingd");
	evd_config_free(c);
	evd_buf_free(&out);

	/* An unreadable file: a negative errno and one diagnostic. */
	struct evd_diag d = EVD_DIAG_INIT;
	c = NULL;
	CHECK_INT(evd_config_load("does-not-exist.yaml", false, &c, &d), -ENOENT);
	CHECK(c == NULL && d.errors == 1);
	evd_diag_free(&d);
}

static void test_units(void)
{
	static const struct {
		const char *text;
		uint64_t bytes;
		const char *formatted; /* NULL: refused */
	} sizes[] = {
		{ "0", 0, "0B" },
		{ "512", 512, "512B" },
		{ "1000B", 1000, "1000B" },
		{ "64KiB", 65536, "64KiB" },
		{ "64kib", 65536, "64KiB" },
		{ "1536KiB", 1536 * 1024, "1536KiB" },
		{ "700 MiB", 700ULL << 20, "700MiB" },
		{ "1GiB", 1ULL << 30, "1GiB" },
		{ "1024GiB", 1ULL << 40, "1TiB" },
		{ "16777215TiB", 16777215ULL << 40, "16777215TiB" },
		{ "18446744073709551615", UINT64_MAX, "18446744073709551615B" },
		{ "18446744073709551616", 0, NULL },
		{ "16777216TiB", 0, NULL },
		{ "64KB", 0, NULL },
		{ "1MB", 0, NULL },
		{ "1G", 0, NULL },
		{ "KiB", 0, NULL },
		{ "", 0, NULL },
		{ "-1", 0, NULL },
		{ "1.5MiB", 0, NULL },
		{ " 1KiB", 0, NULL },
	};
	for (size_t i = 0; i < EVD_ARRAY_SIZE(sizes); i++) {
		uint64_t v = 12345;
		char buf[64];
		int rc = evd_parse_size(sizes[i].text, &v);
		if (!sizes[i].formatted) {
			CHECK_INT(rc, -EINVAL);
			continue;
		}
		CHECK_INT(rc, 0);
		CHECK(v == sizes[i].bytes);
		evd_format_size(v, buf, sizeof(buf));
		CHECK_STR(buf, sizes[i].formatted);
		CHECK_INT(evd_parse_size(buf, &v), 0); /* formatting parses back */
		CHECK(v == sizes[i].bytes);
	}

	static const struct {
		const char *text;
		int64_t ms;
		const char *formatted;
	} durations[] = {
		{ "0", 0, "0" },
		{ "250ms", 250, "250ms" },
		{ "30s", 30000, "30s" },
		{ "2m", 120000, "2m" },
		{ "1h", 3600000, "1h" },
		{ "7d", 604800000, "7d" },
		{ "1h30m", 5400000, "1h30m" },
		{ "90m", 5400000, "1h30m" },
		{ "1.5s", 1500, "1s500ms" },
		{ "0.25h", 900000, "15m" },
		{ "1d2h3m4s5ms", 93784005, "1d2h3m4s5ms" },
		{ "0s", 0, "0" },
		{ "106751d", 106751LL * 86400000, "106751d" },
		{ "106752d", 0, NULL }, /* beyond int64 nanoseconds */
		{ "5", 0, NULL },
		{ "1.5ms", 0, NULL },
		{ "1w", 0, NULL },
		{ "1 s", 0, NULL },
		{ "s", 0, NULL },
		{ "-1s", 0, NULL },
		{ "", 0, NULL },
		{ "1h30", 0, NULL },
		{ "1.s", 0, NULL },
		{ "1S", 0, NULL },
	};
	for (size_t i = 0; i < EVD_ARRAY_SIZE(durations); i++) {
		int64_t v = 12345;
		char buf[64];
		int rc = evd_parse_duration(durations[i].text, &v);
		if (!durations[i].formatted) {
			if (rc != -EINVAL)
				fprintf(stderr, "duration \"%s\" accepted\n", durations[i].text);
			CHECK_INT(rc, -EINVAL);
			continue;
		}
		CHECK_INT(rc, 0);
		CHECK_INT(v, durations[i].ms);
		evd_format_duration(v, buf, sizeof(buf));
		CHECK_STR(buf, durations[i].formatted);
		CHECK_INT(evd_parse_duration(buf, &v), 0);
		CHECK_INT(v, durations[i].ms);
	}
}

/* The table itself: unique names, fields inside the struct, no two keys on one field. */
static void test_table(void)
{
	for (size_t i = 0; i < evd_config_nkeys; i++) {
		const struct evd_config_key *k = &evd_config_keys[i];
		CHECK(k->offset < sizeof(struct evd_config));
		CHECK(k->help && strlen(k->help) > 10);
		CHECK(evd_config_key_find(k->name) == k);
		for (size_t j = 0; j < i; j++)
			CHECK(evd_config_keys[j].offset != k->offset);
	}
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct evd_buf b = EVD_BUF_INIT;
	char chunk[4096];
	size_t n;
	if (!f)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		evd_buf_append(&b, chunk, n);
	fclose(f);
	return evd_buf_steal(&b);
}

/*
 * The installed sample loads to exactly the defaults. Keys it cannot show with a plain default
 * (unset or computed) are written commented out as "#key: example" with the '#' where the key
 * would start; uncommenting all of them must give a valid file in which every key of the table
 * is set, so the sample documents every key.
 */
static void test_sample(const char *path, bool dev)
{
	struct evd_diag d = EVD_DIAG_INIT;
	struct evd_config *c = NULL;
	struct evd_buf out = EVD_BUF_INIT;

	CHECK_INT(evd_config_load(path, dev, &c, &d), 0);
	evd_diag_format(&d, &out);
	CHECK_STR(out.data ? out.data : "", "");
	evd_diag_free(&d);
	evd_buf_free(&out);
	if (!c)
		return;
	struct evd_config *def = evd_config_defaults(dev);
	struct evd_buf diff = EVD_BUF_INIT;
	diff_keys(def, c, &diff);
	CHECK_STR(diff.data ? diff.data : "", "");
	evd_buf_free(&diff);
	evd_config_free(def);
	evd_config_free(c);
	if (dev)
		return;

	char *text = slurp(path);
	CHECK(text != NULL);
	if (!text)
		return;
	struct evd_buf un = EVD_BUF_INIT;
	for (char *line = text; *line;) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line + 1) : strlen(line);
		size_t ind = strspn(line, " ");
		/* "#key:" (no blank after '#'): a commented-out key; "# text": prose. */
		if (line[ind] == '#' && (line[ind + 1] == '_' || (line[ind + 1] >= 'a' && line[ind + 1] <= 'z'))) {
			evd_buf_append(&un, line, ind);
			evd_buf_append(&un, line + ind + 1, len - ind - 1);
		} else {
			evd_buf_append(&un, line, len);
		}
		line += len;
	}
	free(text);
	/* Every value is valid; the only complaints allowed are about creds, token and user being
	 * set together (the sample shows all three ways to authenticate) and warnings. */
	load_text(un.data, false, &c, &out);
	for (char *line = out.data; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!strstr(line, ": warning: ") && !strstr(line, "choose one way to authenticate")) {
			fprintf(stderr, "uncommented sample: %s\n", line);
			CHECK(0);
		}
		line = nl ? nl + 1 : NULL;
	}
	evd_buf_free(&out);
	/* Every key appears: each one at the start of its own line, at its nesting depth. */
	for (size_t i = 0; i < evd_config_nkeys; i++) {
		const char *name = evd_config_keys[i].name;
		struct evd_buf want = EVD_BUF_INIT;
		int depth = 0;
		for (const char *p = name; (p = strchr(p, '.')); p++)
			depth++;
		evd_buf_printf(&want, "\n%*s%s:", depth * 2, "", strrchr(name, '.') ? strrchr(name, '.') + 1 : name);
		if (!strstr(un.data, want.data))
			fprintf(stderr, "sample lacks key %s\n", name);
		CHECK(strstr(un.data, want.data) != NULL);
		evd_buf_free(&want);
	}
	evd_buf_free(&un);
	evd_config_free(c);
}

/* The man page documents every key, with its reloadable flag. */
static void test_man(const char *path)
{
	char *text = slurp(path);
	CHECK(text != NULL);
	if (!text)
		return;
	for (size_t i = 0; i < evd_config_nkeys; i++) {
		const struct evd_config_key *k = &evd_config_keys[i];
		struct evd_buf want = EVD_BUF_INIT;
		/* Each key has its own ".TP" entry whose tag line is "\fBkey\fR ..." */
		evd_buf_printf(&want, ".TP\n.B %s\n", k->name);
		char *at = strstr(text, want.data);
		if (!at)
			fprintf(stderr, "man page lacks an entry \"%s\"\n", k->name);
		CHECK(at != NULL);
		if (at) {
			char *next = strstr(at + want.len, ".TP\n");
			char *flag = strstr(at, k->reloadable ? "Reloadable: yes" : "Reloadable: no");
			CHECK(flag && (!next || flag < next));
		}
		evd_buf_free(&want);
	}
	free(text);
}

/* The embedded server's memory store follows a memory stream; check refuses one too small. */
static void test_embedded_memory(void)
{
	struct evd_config *c = NULL;
	struct evd_buf out = EVD_BUF_INIT;

	CHECK_INT(load_text("stream:\n  storage: memory\n", false, &c, &out), 0);
	CHECK(c && c->nats.embedded.max_memory == 700u << 20);
	evd_config_free(c);
	CHECK_INT(load_text("stream:\n  storage: memory\n  max_bytes: 10MiB\n", false, &c, &out), 0);
	CHECK(c && c->nats.embedded.max_memory == 10u << 20);
	evd_config_free(c);
	CHECK_INT(load_text("stream:\n  max_bytes: 1GiB\nnats:\n  embedded:\n    max_store: 2GiB\n",
			    false, &c, &out), 0);
	CHECK(c && c->nats.embedded.max_memory == 64u << 20);
	evd_config_free(c);
	CHECK_INT(load_text("nats:\n  embedded:\n    max_memory: 64MiB\nstream:\n  storage: memory\n",
			    false, &c, &out), -EINVAL);
	CHECK(strstr(out.data, "t.yaml:3:17: nats.embedded.max_memory: cannot hold the memory "
			       "stream's stream.max_bytes (700MiB), got 64MiB") != NULL);
	evd_buf_free(&out);
}

/* nats.url user-info: RFC 3986 percent-decoding into the form nats.c's URL parser takes. */
static void test_url_decode(void)
{
	static const struct {
		const char *in, *want; /* want NULL: refused */
	} rows[] = {
		{ "nats://h:4222", "nats://h:4222" },
		{ "nats://evd:p%40ss@h:4222", "nats://evd:p@ss@h:4222" },
		{ "nats://evd:p@ss@h:4222", "nats://evd:p@ss@h:4222" }, /* raw '@': last one ends it */
		{ "nats://ev%64:a%2Cb%3Ac%25@h", "nats://evd:a,b:c%@h" },
		{ "tls://s3cr%2Ft@[::1]:4222", "tls://s3cr/t@[::1]:4222" }, /* a token */
		{ "nats://u%3Ax:p@h", NULL },  /* ':' in a user name: nats.c would cut it */
		{ "nats://u:p%zz@h", NULL },   /* not hex */
		{ "nats://u:p%4@h", NULL },    /* truncated */
		{ "nats://u:p%00@h", NULL },   /* NUL */
	};
	for (size_t i = 0; i < EVD_ARRAY_SIZE(rows); i++) {
		char *out = NULL, why[160] = "";
		int rc = evd_config_url_decode(rows[i].in, &out, why, sizeof(why));
		if (rows[i].want) {
			CHECK_INT(rc, 0);
			CHECK_STR(out, rows[i].want);
		} else {
			CHECK_INT(rc, -EINVAL);
			CHECK(why[0] != '\0');
		}
		free(out);
	}
	/* check refuses what cannot be decoded, at the value. */
	char why[160];
	CHECK(evd_config_check_url("nats://u:p%zz@h:4222", why, sizeof(why)) == -EINVAL);
	CHECK(strstr(why, "%25") != NULL);
	CHECK(evd_config_check_url("nats://u:p%40@h:4222", why, sizeof(why)) == 0);
}

int main(int argc, char **argv)
{
	char cwd[4096];
	if (!getcwd(cwd, sizeof(cwd)) || !mkdtemp(tmpdir) || chdir(tmpdir) != 0) {
		perror("test_config: temporary directory");
		return 1;
	}
	/* Paths from meson may be relative to where we started. */
	char *paths[3] = { NULL, NULL, NULL };
	for (int i = 1; i < argc && i <= 3; i++) {
		struct evd_buf p = EVD_BUF_INIT;
		if (argv[i][0] == '/')
			evd_buf_append_str(&p, argv[i]);
		else
			evd_buf_printf(&p, "%s/%s", cwd, argv[i]);
		paths[i - 1] = evd_buf_steal(&p);
	}

	test_table();
	test_units();
	test_defaults();
	test_every_key();
	test_one_key();
	test_bad();
	test_warnings_and_computed();
	test_url_decode();
	test_embedded_memory();
	if (paths[0])
		test_sample(paths[0], false);
	if (paths[1])
		test_sample(paths[1], true);
	if (paths[2])
		test_man(paths[2]);

	unlink("t.yaml");
	if (chdir(cwd) == 0)
		rmdir(tmpdir);
	for (int i = 0; i < 3; i++)
		free(paths[i]);
	UNIT_MAIN_END();
}
