/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `eventingd display [--listen ADDR]`: a sink for sandboxes that prints every CloudEvent it
 * receives (binary, structured or batched mode) and answers 204; a request that carries no valid
 * CloudEvent gets 400 with the decoder's reason. It runs the project's HTTP server on a loop of
 * its own, and stops cleanly (exit 0) on SIGINT or SIGTERM.
 *
 * The printed form follows the CloudEvents SDKs' Event.String() that Knative's event_display
 * shows, so it reads familiar: "Context Attributes," / "Extensions," / "Data,".
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <uv.h>

#include "cli/cli.h"
#include "cli/cli_internal.h"
#include "http/http_server.h"
#include "util/util_log.h"
#include "util/util_mem.h"

/* Larger than any publish endpoint forwards (publish.max_request_size is 64 KiB by default). */
#define DISPLAY_MAX_BODY (16u * 1024 * 1024)

/* ---- formatting ---------------------------------------------------------------------------- */

static void indent(struct evd_buf *out, int level)
{
	for (int i = 0; i < level; i++)
		evd_buf_append(out, "  ", 2);
}

static bool json_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Re-indents one valid JSON value (checked by the caller) token by token. Unlike a cJSON
 * round trip it never re-prints a number, so 12345678901234567890 is shown as it was sent.
 */
static void json_pretty(const char *p, size_t len, struct evd_buf *out)
{
	const char *end = p + len;
	int level = 1;
	indent(out, level);
	while (p < end) {
		char c = *p++;
		if (c == '"') {
			const char *s = p - 1;
			while (p < end && *p != '"')
				p += *p == '\\' && p + 1 < end ? 2 : 1;
			if (p < end)
				p++;
			evd_buf_append(out, s, (size_t)(p - s));
			continue;
		}
		if (json_ws(c))
			continue;
		if (c == '{' || c == '[') {
			const char *q = p;
			while (q < end && json_ws(*q))
				q++;
			evd_buf_append_char(out, c);
			if (q < end && (*q == '}' || *q == ']')) { /* empty: "{}", "[]" */
				evd_buf_append_char(out, *q);
				p = q + 1;
				continue;
			}
			evd_buf_append_char(out, '\n');
			indent(out, ++level);
		} else if (c == '}' || c == ']') {
			evd_buf_append_char(out, '\n');
			indent(out, --level);
			evd_buf_append_char(out, c);
		} else if (c == ',') {
			evd_buf_append(out, ",\n", 2);
			indent(out, level);
		} else if (c == ':') {
			evd_buf_append(out, ": ", 2);
		} else {
			evd_buf_append_char(out, c);
		}
	}
	evd_buf_append_char(out, '\n');
}

/* Text worth printing as is: UTF-8 without control characters other than tab and newlines. */
static bool printable_text(const char *s, size_t len)
{
	if (!evd_ce_utf8_valid(s, len))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
			return false;
	}
	return true;
}

static void text_lines(const char *s, size_t len, struct evd_buf *out)
{
	while (len) {
		const char *nl = memchr(s, '\n', len);
		size_t n = nl ? (size_t)(nl - s) : len;
		indent(out, 1);
		evd_buf_append(out, s, n);
		evd_buf_append_char(out, '\n');
		n += nl ? 1 : 0;
		s += n;
		len -= n;
	}
}

static void format_data(const struct evd_cloudevent *ev, struct evd_buf *out)
{
	const char *ct = ev->attr[EVD_CE_DATACONTENTTYPE];
	bool json = !ct || evd_ce_media_type_is_json(ct, ev->attr_len[EVD_CE_DATACONTENTTYPE]);
	size_t start, vlen;
	if (json && evd_cli_json_value(ev->data, ev->data_len, &start, &vlen)) {
		json_pretty(ev->data + start, vlen, out);
	} else if (printable_text(ev->data, ev->data_len)) {
		text_lines(ev->data, ev->data_len, out);
	} else if (ev->data_len <= (size_t)INT32_MAX / 2) {
		size_t cap = 4 * ((ev->data_len + 2) / 3) + 1;
		char *b64 = evd_xmalloc(cap);
		EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)ev->data,
				(int)ev->data_len);
		indent(out, 1);
		evd_buf_printf(out, "(%zu bytes, base64) %s\n", ev->data_len, b64);
		free(b64);
	}
}

static int ext_cmp(const void *a, const void *b)
{
	const struct evd_ce_ext *x = *(const struct evd_ce_ext *const *)a;
	const struct evd_ce_ext *y = *(const struct evd_ce_ext *const *)b;
	return strcmp(x->name, y->name);
}

void evd_cli_display_format(const struct evd_cloudevent *ev, const char *origin,
			    struct evd_buf *out)
{
	evd_buf_append_str(out, "cloudevents.Event");
	if (origin)
		evd_buf_printf(out, " (%s)", origin);
	evd_buf_append_str(out, "\nContext Attributes,\n");
	for (int a = 0; a < EVD_CE_NATTRS; a++) {
		if (!ev->attr[a])
			continue;
		indent(out, 1);
		evd_buf_printf(out, "%s: ", evd_ce_attr_name((enum evd_ce_attr)a));
		evd_buf_append(out, ev->attr[a], ev->attr_len[a]);
		evd_buf_append_char(out, '\n');
	}
	if (ev->n_ext) {
		const struct evd_ce_ext *sorted[EVD_CE_MAX_EXTENSIONS];
		for (unsigned i = 0; i < ev->n_ext; i++)
			sorted[i] = &ev->ext[i];
		qsort(sorted, ev->n_ext, sizeof(sorted[0]), ext_cmp);
		evd_buf_append_str(out, "Extensions,\n");
		for (unsigned i = 0; i < ev->n_ext; i++) {
			indent(out, 1);
			evd_buf_printf(out, "%s: ", sorted[i]->name);
			evd_buf_append(out, sorted[i]->value, sorted[i]->value_len);
			evd_buf_append_char(out, '\n');
		}
	}
	if (ev->data) {
		evd_buf_append_str(out, "Data,\n");
		format_data(ev, out);
	}
}

/* ---- the sink ------------------------------------------------------------------------------ */

struct display {
	uv_loop_t loop;
	uv_signal_t sigint, sigterm;
	struct evd_http_server *srv;
	struct evd_buf out;
	unsigned long events;
	int exit_status;
	bool stopping;
};

static void on_server_closed(void *data)
{
	(void)data;
}

static void stop(struct display *d, int exit_status)
{
	if (d->stopping)
		return;
	d->stopping = true;
	d->exit_status = exit_status;
	uv_close((uv_handle_t *)&d->sigint, NULL);
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	evd_http_server_stop(d->srv, 2000, on_server_closed, d);
}

/* Writes what is formatted; a reader that went away (`display | head`) ends the sink. */
static void flush_out(struct display *d)
{
	fwrite(d->out.data, 1, d->out.len, stdout);
	evd_buf_reset(&d->out);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		int e = errno;
		if (e != EPIPE)
			fprintf(stderr, "eventingd display: writing to stdout: %s\n", strerror(e));
		stop(d, e == EPIPE ? 0 : EX_IOERR);
	}
}

static void print_event(struct display *d, const struct evd_cloudevent *ev, const char *mode,
			const struct evd_http_request *req)
{
	char origin[256];
	snprintf(origin, sizeof(origin), "%s mode, %s %s from %s", mode, req->method, req->path,
		 req->peer);
	evd_cli_display_format(ev, origin, &d->out);
	evd_buf_append_char(&d->out, '\n');
	d->events++;
	flush_out(d);
}

static void reject(struct evd_http_request *req, int status, const char *reason)
{
	fprintf(stderr, "eventingd display: %s %s from %s: %d %s\n", req->method, req->path,
		req->peer, status, reason);
	evd_http_respond_text(req, status, NULL, reason);
}

static void on_request(struct evd_http_request *req, void *data)
{
	struct display *d = data;
	struct evd_buf err = EVD_BUF_INIT;
	struct evd_cloudevent ev = EVD_CE_INIT;
	struct evd_cloudevent *batch = NULL;
	size_t count = 0;
	int rc;

	if (strcmp(req->method, "POST") != 0 && strcmp(req->method, "PUT") != 0) {
		evd_http_respond_text(req, 405, "Allow: POST\r\n",
				      "eventingd display: POST CloudEvents here");
		return;
	}
	const struct evd_header *cth = evd_http_request_header(req, "Content-Type");
	switch (evd_ce_detect_mode(cth ? cth->value : NULL, cth ? cth->value_len : 0)) {
	case EVD_CE_MODE_UNSUPPORTED:
		reject(req, 415, "only the JSON event format is supported");
		return;
	case EVD_CE_MODE_STRUCTURED:
		rc = evd_ce_decode_structured(req->body, req->body_len, &ev, &err);
		if (rc == 0)
			print_event(d, &ev, "structured", req);
		break;
	case EVD_CE_MODE_BATCH:
		rc = evd_ce_decode_batch(req->body, req->body_len, 0, &batch, &count, &err);
		for (size_t i = 0; rc == 0 && i < count; i++)
			print_event(d, &batch[i], "batched", req);
		evd_ce_free_batch(batch, count);
		break;
	case EVD_CE_MODE_BINARY:
	default:
		rc = evd_ce_decode_binary(req->headers, req->nheaders, req->body, req->body_len, &ev,
					  &err);
		if (rc == -ENOMSG && !err.len)
			evd_buf_append_str(&err, "no CloudEvent: no ce-specversion header and no "
						 "application/cloudevents+json body");
		if (rc == 0)
			print_event(d, &ev, "binary", req);
		break;
	}
	if (rc == 0)
		evd_http_respond(req, 204, NULL, NULL, NULL, 0);
	else
		reject(req, 400, err.len ? err.data : "invalid CloudEvent");
	evd_ce_free(&ev);
	evd_buf_free(&err);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct display *d = h->data;
	fprintf(stderr, "eventingd display: %s: stopping after %lu event(s)\n", strsignal(signum),
		d->events);
	stop(d, 0);
}

int evd_cli_display(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char usage_text[] =
		"usage: eventingd display [--listen ADDR]   (default 127.0.0.1:8081)\n"
		"Prints every CloudEvent POSTed to ADDR (any path) and answers 204.\n";
	const char *listen = "127.0.0.1:8081";
	struct display d = { .out = EVD_BUF_INIT };
	int c, rc;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":l:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': listen = optarg; break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fprintf(stderr, "eventingd display: %s %s\n", argv[optind - 1],
				c == ':' ? "needs an argument" : "is no option");
			fputs(usage_text, stderr);
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "eventingd display: unexpected argument \"%s\"\n", argv[optind]);
		fputs(usage_text, stderr);
		return EX_USAGE;
	}

	/* A client that resets its connection must not kill the sink; stdout errors are checked. */
	signal(SIGPIPE, SIG_IGN);
	/* Our own line below says where we listen; the server's info lines would only repeat it. */
	evd_log_setup(EVD_LOG_WARN, EVD_LOG_TEXT);
	rc = uv_loop_init(&d.loop);
	if (rc < 0) {
		fprintf(stderr, "eventingd display: uv_loop_init: %s\n", uv_strerror(rc));
		return EX_OSERR;
	}
	struct evd_http_server_opts sopts = {
		.name = "display",
		.listen = listen,
		.limits = { .max_body_size = DISPLAY_MAX_BODY },
		.handler = on_request,
		.data = &d,
	};
	rc = evd_http_server_start(&d.loop, &sopts, &d.srv);
	if (rc < 0) {
		/* The server logged why (address in use, bad address); running the loop lets it
		 * finish closing its listener, which frees it. */
		uv_run(&d.loop, UV_RUN_DEFAULT);
		uv_loop_close(&d.loop);
		return rc == UV_EINVAL ? EX_USAGE : EX_UNAVAILABLE;
	}
	uv_signal_init(&d.loop, &d.sigint);
	uv_signal_init(&d.loop, &d.sigterm);
	d.sigint.data = d.sigterm.data = &d;
	uv_signal_start(&d.sigint, on_signal, SIGINT);
	uv_signal_start(&d.sigterm, on_signal, SIGTERM);
	fprintf(stderr, "eventingd display: printing CloudEvents sent to http://%s/\n",
		evd_http_server_address(d.srv));

	uv_run(&d.loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(&d.loop);
	if (rc < 0)
		evd_log_warn("display", "uv_loop_close: %s", uv_strerror(rc));
	evd_buf_free(&d.out);
	return d.exit_status;
}
