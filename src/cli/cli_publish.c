/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `eventingd publish`: one CloudEvent to a publish endpoint, in the HTTP binding's binary mode
 * (ce-* headers) or structured mode (application/cloudevents+json), over the blocking client of
 * http_fetch.h. Exit status: 0 on a 2xx, 1 on any other HTTP status, 69 (EX_UNAVAILABLE) when no
 * response came, 64 (EX_USAGE) for bad arguments, 66 (EX_NOINPUT) for an unreadable @FILE, 78
 * (EX_CONFIG) when the configuration that names the endpoint is broken.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli/cli.h"
#include "cli/cli_internal.h"
#include "event/event_legacy.h"
#include "http/http_fetch.h"
#include "http/http_server.h"
#include "util/util_mem.h"

/* Data read from @FILE beyond this is refused: no publish endpoint takes more. */
#define PUBLISH_MAX_DATA (64u * 1024 * 1024)
#define PUBLISH_TIMEOUT_MS 30000

static const char usage_text[] =
	"usage: eventingd publish --type T --source S [--data JSON|@FILE|@-] [--url URL]\n"
	"                         [--structured] [--id ID] [--content-type CT]\n"
	"                         [--extension NAME=VALUE ...] [-c FILE] [--dev]\n"
	"Sends one CloudEvent (binary mode unless --structured) to URL, by default\n"
	"http://<publish.listen of the configuration>/publish.\n";

static void append_ce_header(struct evd_buf *h, const char *name, const char *value)
{
	size_t len = strlen(value);
	char *enc = evd_xmalloc(evd_ce_percent_encoded_len(value, len) + 1);
	evd_ce_percent_encode(value, len, enc);
	evd_buf_printf(h, "ce-%s: %s\r\n", name, enc);
	free(enc);
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* The first byte that is not JSON whitespace opens an object or an array. */
static bool looks_like_json(const char *data, size_t len)
{
	size_t i = 0;
	while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
		i++;
	return i < len && (data[i] == '{' || data[i] == '[');
}

int evd_cli_publish_build(const struct evd_cli_event *ev, bool structured, struct evd_buf *headers,
			  struct evd_buf *body, char *err, size_t errlen)
{
	const char *ct = ev->content_type;
	bool data_is_json = ev->data && evd_cli_json_value(ev->data, ev->data_len, NULL, NULL);
	if (!ct && ev->data)
		ct = data_is_json ? "application/json" : "text/plain";
	if (ct && has_ctl(ct)) {
		snprintf(err, errlen, "--content-type: control characters are not allowed");
		return -EINVAL;
	}
	bool json_ct = ct && evd_ce_media_type_is_json(ct, strlen(ct));

	/*
	 * Broken JSON is refused before anything is sent, in both modes: an endpoint stores binary
	 * mode data as opaque bytes and answers 204, so the mistake (often a shell's quoting) would
	 * only show at the sink. Data counts as JSON when its content type says so, or, without
	 * --content-type, when it opens an object or an array; an explicit non-JSON content type
	 * sends any text as it is.
	 */
	if (ev->data && !data_is_json && json_ct) {
		snprintf(err, errlen, "--data is not valid JSON, but its content type %s says JSON "
				      "(give --content-type text/plain to send it as text)", ct);
		return -EINVAL;
	}
	if (ev->data && !data_is_json && !ev->content_type && looks_like_json(ev->data, ev->data_len)) {
		snprintf(err, errlen, "--data starts like JSON but is not valid JSON: fix it, or give "
				      "--content-type text/plain to send it as text");
		return -EINVAL;
	}

	if (!structured) {
		if (ct)
			evd_buf_printf(headers, "Content-Type: %s\r\n", ct);
		append_ce_header(headers, "specversion", "1.0");
		append_ce_header(headers, "id", ev->id);
		append_ce_header(headers, "source", ev->source);
		append_ce_header(headers, "type", ev->type);
		for (size_t i = 0; i < ev->n_ext; i++)
			append_ce_header(headers, ev->ext_name[i], ev->ext_value[i]);
		if (ev->data)
			evd_buf_append(body, ev->data, ev->data_len);
		return 0;
	}

	/* The dispatcher's encoder (data byte-exact: JSON as it is, text as a string, bytes as
	 * data_base64). */
	struct evd_cloudevent ce;
	struct evd_buf why = EVD_BUF_INIT;
	int rc = 0;
	evd_ce_init(&ce);
	rc |= evd_ce_set(&ce, "specversion", "1.0", 3, &why);
	rc |= evd_ce_set(&ce, "id", ev->id, strlen(ev->id), &why);
	rc |= evd_ce_set(&ce, "source", ev->source, strlen(ev->source), &why);
	rc |= evd_ce_set(&ce, "type", ev->type, strlen(ev->type), &why);
	if (ct)
		rc |= evd_ce_set(&ce, "datacontenttype", ct, strlen(ct), &why);
	for (size_t i = 0; i < ev->n_ext; i++)
		rc |= evd_ce_set(&ce, ev->ext_name[i], ev->ext_value[i], strlen(ev->ext_value[i]), &why);
	if (rc < 0) {
		snprintf(err, errlen, "%s", why.data ? why.data : "invalid attribute");
		evd_buf_free(&why);
		evd_ce_free(&ce);
		return -EINVAL;
	}
	evd_buf_free(&why);
	if (ev->data) {
		ce.data = ev->data;
		ce.data_len = ev->data_len;
	}
	evd_ce_encode_structured(&ce, 0, body);
	evd_ce_free(&ce);
	evd_buf_append_str(headers, "Content-Type: application/cloudevents+json; charset=utf-8\r\n");
	return 0;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("eventingd publish: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	fputs(usage_text, stderr);
	return EX_USAGE;
}

static void print_body(FILE *to, const struct evd_buf *b)
{
	if (!b->len)
		return;
	fwrite(b->data, 1, b->len, to);
	if (b->data[b->len - 1] != '\n')
		fputc('\n', to);
}

int evd_cli_publish(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "source", required_argument, NULL, 's' },
		{ "data", required_argument, NULL, 'd' },
		{ "url", required_argument, NULL, 'u' },
		{ "structured", no_argument, NULL, 'S' },
		{ "id", required_argument, NULL, 'i' },
		{ "content-type", required_argument, NULL, 'C' },
		{ "extension", required_argument, NULL, 'e' },
		{ "config", required_argument, NULL, 'c' },
		{ "dev", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct evd_cli_event ev = { 0 };
	struct evd_daemon_opts opts = { 0 };
	struct evd_buf file = EVD_BUF_INIT, headers = EVD_BUF_INIT, body = EVD_BUF_INIT;
	struct evd_http_fetch_result res = { 0 };
	const char *url = NULL, *data_arg = NULL;
	bool structured = false;
	char id[37], base[512], urlbuf[600], err[512];
	int c, rc;

	optind = 1;
	opterr = 0; /* our own messages, with the usage */
	while ((c = getopt_long(argc, argv, ":t:s:d:u:i:e:c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 't': ev.type = optarg; break;
		case 's': ev.source = optarg; break;
		case 'd': data_arg = optarg; break;
		case 'u': url = optarg; break;
		case 'S': structured = true; break;
		case 'i': ev.id = optarg; break;
		case 'C': ev.content_type = optarg; break;
		case 'c':
			opts.config_path = optarg;
			opts.config_explicit = true;
			break;
		case 'D': opts.dev = true; break;
		case 'e': {
			char *eq = strchr(optarg, '=');
			const char *why;
			if (!eq)
				return usage_error("--extension %s: expected NAME=VALUE", optarg);
			*eq = '\0';
			if (!evd_cli_extension_name_ok(optarg, &why)) {
				fprintf(stderr, "eventingd publish: --extension %s: %s\n", optarg, why);
				return EX_USAGE;
			}
			for (size_t i = 0; i < ev.n_ext; i++)
				if (strcmp(ev.ext_name[i], optarg) == 0)
					return usage_error("--extension %s given twice", optarg);
			if (ev.n_ext == EVD_CE_MAX_EXTENSIONS)
				return usage_error("at most %d extensions", EVD_CE_MAX_EXTENSIONS);
			ev.ext_name[ev.n_ext] = optarg;
			ev.ext_value[ev.n_ext++] = eq + 1;
			break;
		}
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case ':':
			return usage_error("%s needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]);
	if (!ev.type)
		return usage_error("%s is required", "--type");
	if (!ev.source)
		return usage_error("%s is required", "--source");
	if (url && strncmp(url, "http://", 7) != 0)
		return usage_error("--url %s: only http:// URLs are supported", url);

	if (data_arg && data_arg[0] == '@') {
		rc = evd_cli_read_file(data_arg + 1, PUBLISH_MAX_DATA, &file);
		if (rc < 0) {
			fprintf(stderr, "eventingd publish: --data %s: %s\n", data_arg, strerror(-rc));
			rc = EX_NOINPUT;
			goto out;
		}
		ev.data = file.data;
		ev.data_len = file.len;
	} else if (data_arg) {
		ev.data = data_arg;
		ev.data_len = strlen(data_arg);
	}

	if (!ev.id) {
		if (evd_legacy_uuid4(id) < 0) {
			fprintf(stderr, "eventingd publish: no random bytes for an event id\n");
			rc = EX_OSERR;
			goto out;
		}
		ev.id = id;
	}

	if (evd_cli_publish_build(&ev, structured, &headers, &body, err, sizeof(err)) < 0) {
		rc = usage_error("%s", err);
		goto out;
	}

	/* An explicit -c is read even beside --url: a missing file is an error either way. */
	if (!url || opts.config_explicit) {
		rc = evd_cli_listen_url(&opts, false, base, sizeof(base));
		if (rc != 0)
			goto out;
		snprintf(urlbuf, sizeof(urlbuf), "%s/publish", base);
		if (!url)
			url = urlbuf;
	}

	rc = evd_http_fetch("POST", url, headers.data, body.data, body.len, PUBLISH_TIMEOUT_MS,
			    &res, err, sizeof(err));
	if (rc == -EINVAL) {
		fprintf(stderr, "eventingd publish: %s\n", err);
		rc = EX_USAGE;
		goto out;
	}
	if (rc < 0) {
		fprintf(stderr, "eventingd publish: %s: %s\n", url, err);
		rc = EX_UNAVAILABLE;
		goto out;
	}
	if (res.status >= 200 && res.status < 300) {
		printf("%d %s\n", res.status, evd_http_status_text(res.status));
		print_body(stdout, &res.body);
		rc = 0;
	} else {
		fprintf(stderr, "eventingd publish: %s: %d %s\n", url, res.status,
			evd_http_status_text(res.status));
		print_body(stderr, &res.body);
		rc = 1;
	}

out:
	evd_http_fetch_result_free(&res);
	evd_buf_free(&file);
	evd_buf_free(&headers);
	evd_buf_free(&body);
	return rc;
}
