/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kyma's legacy event API (reference/kyma-eventing.md §2; EPP pkg/legacy/legacy.go,
 * error_responses.go, helpers.go).
 *
 * Kyma decodes the body with Go's json.Decoder into
 *   struct { EventType `json:"event-type"`; EventTypeVersion `json:"event-type-version"`;
 *            EventID `json:"event-id"`; EventTime `json:"event-time"`; Data interface{} }
 * which means: only the first JSON value is read (trailing bytes are ignored), unknown members
 * are ignored, member names match case-insensitively, the last duplicate wins, null leaves a
 * string field empty, and a non-string for a string field is an error reported after the whole
 * value was read. The error texts of syntax errors are Go's where we can tell ("EOF",
 * "unexpected EOF", "invalid character 'x' looking for beginning of value"); deeper syntax
 * errors get our scanner's reason.
 */
#include "event/event_legacy.h"
#include "event/event_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "util/util_buf.h"
#include "util/util_mem.h"

/* A JSON string as Go's encoding/json writes it: HTML-safe (<, >, & escaped), U+2028/9 escaped. */
static void go_json_string(struct evd_buf *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), i = 0;
	evd_buf_append_char(out, '"');
	while (i < len) {
		unsigned c = p[i];
		if (c < 0x80) {
			i++;
			switch (c) {
			case '"': evd_buf_append_str(out, "\\\""); continue;
			case '\\': evd_buf_append_str(out, "\\\\"); continue;
			case '\n': evd_buf_append_str(out, "\\n"); continue;
			case '\r': evd_buf_append_str(out, "\\r"); continue;
			case '\t': evd_buf_append_str(out, "\\t"); continue;
			default: break;
			}
			if (c < 0x20 || c == '<' || c == '>' || c == '&') {
				char e[7] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0 };
				evd_buf_append_str(out, e);
			} else {
				evd_buf_append_char(out, (char)c);
			}
			continue;
		}
		unsigned cp;
		size_t n = evd_ce_utf8_next(p + i, len - i, &cp);
		if (!n) {
			evd_buf_append_str(out, "\\ufffd");
			i++;
		} else if (cp == 0x2028 || cp == 0x2029) {
			evd_buf_append_str(out, cp == 0x2028 ? "\\u2028" : "\\u2029");
			i += n;
		} else {
			evd_buf_append(out, p + i, n);
			i += n;
		}
	}
	evd_buf_append_char(out, '"');
}

/* api.Error with omitempty fields, optionally one api.ErrorDetail. */
static void error_body(struct evd_buf *out, int status, const char *type, const char *message,
		       const char *more_info, const char *field, const char *dtype)
{
	evd_buf_printf(out, "{\"status\":%d", status);
	if (type) {
		evd_buf_append_str(out, ",\"type\":");
		go_json_string(out, type);
	}
	if (message && *message) {
		evd_buf_append_str(out, ",\"message\":");
		go_json_string(out, message);
	}
	if (more_info && *more_info) {
		evd_buf_append_str(out, ",\"moreInfo\":");
		go_json_string(out, more_info);
	}
	if (field) {
		evd_buf_append_str(out, ",\"details\":[{\"field\":");
		go_json_string(out, field);
		evd_buf_append_str(out, ",\"type\":");
		go_json_string(out, dtype);
		evd_buf_append_str(out, ",\"message\":");
		go_json_string(out, message);
		evd_buf_append_str(out, "}]");
	}
	evd_buf_append_str(out, "}\n");
}

static int bad_payload(struct evd_buf *out, int *status, const char *more_info)
{
	*status = 400;
	error_body(out, 400, "bad_payload_syntax", "Bad payload syntax", more_info, NULL, NULL);
	return -EINVAL;
}

static int missing(struct evd_buf *out, int *status, const char *field)
{
	*status = 400;
	error_body(out, 400, "validation_violation", "Missing field", NULL, field, "missing_field");
	return -EINVAL;
}

static int invalid(struct evd_buf *out, int *status, const char *field)
{
	*status = 400;
	error_body(out, 400, "validation_violation", "Invalid field", NULL, field, "invalid_field");
	return -EINVAL;
}

void evd_legacy_too_large_body(struct evd_buf *out)
{
	error_body(out, 413, "request_body_too_large", "Request body too large",
		   "http: request body too large", NULL, NULL);
}

void evd_legacy_bad_payload_body(struct evd_buf *out, const char *more_info)
{
	int status;
	bad_payload(out, &status, more_info);
}

void evd_legacy_backend_error_body(struct evd_buf *out, int status, const char *message)
{
	error_body(out, status, NULL, message, NULL, NULL, NULL);
}

void evd_legacy_success_body(struct evd_buf *out, const char *event_id)
{
	evd_buf_append_str(out, "{\"event-id\":");
	go_json_string(out, event_id);
	evd_buf_append_str(out, ",\"status\":\"\",\"reason\":\"\"}\n");
}

void evd_legacy_request_free(struct evd_legacy_request *req)
{
	if (!req)
		return;
	free(req->event_type);
	free(req->event_type_version);
	free(req->event_id);
	free(req->event_time);
	memset(req, 0, sizeof(*req));
}

static const char *const fields[] = { "event-type", "event-type-version", "event-id", "event-time" };

static bool matches_alnum(const char *s)
{
	for (; *s; s++)
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))
			return true;
	return false;
}

/* ^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$ */
static bool is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		char c = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
			return false;
		}
	}
	return true;
}

/* Go's names in UnmarshalTypeError texts. */
static const char *go_type_name(enum evd_json_type t)
{
	return t == EVD_JSON_TRUE || t == EVD_JSON_FALSE ? "bool" : evd_json_type_name(t);
}

/* The decoder step (§2.2 rows 1 and 2): Go's json.Decoder into PublishRequestV1. */
static int decode(const char *body, size_t len, struct evd_legacy_request *req, int *status,
		  struct evd_buf *out)
{
	const char *end = body + len, *p = evd_json_skip_ws(body, end), *why;
	struct evd_json_span root;
	char msg[160];

	if (p == end)
		return bad_payload(out, status, "EOF");
	if (!strchr("{[\"-0123456789tfn", *p)) {
		snprintf(msg, sizeof(msg), "invalid character '%c' looking for beginning of value", *p);
		return bad_payload(out, status, msg);
	}
	if (evd_json_scan_value(&p, end, &root, &why) < 0) {
		/* The scanner's reasons for running out of input are Go's "unexpected EOF". */
		bool eof = strcmp(why, "unexpected end of JSON") == 0 || strcmp(why, "unterminated string") == 0;
		snprintf(msg, sizeof(msg), "%s", eof ? "unexpected EOF" : why);
		return bad_payload(out, status, msg);
	}
	if (root.type == EVD_JSON_NULL)
		return 0; /* Go: decoding null into a struct leaves it empty */
	if (root.type != EVD_JSON_OBJECT) {
		snprintf(msg, sizeof(msg), "json: cannot unmarshal %s into Go value of type api.PublishRequestV1",
			 go_type_name(root.type));
		return bad_payload(out, status, msg);
	}

	/* Walk the (valid) object's members. */
	const char *type_error = NULL;
	char type_error_buf[160];
	p = evd_json_skip_ws(root.p + 1, end);
	while (*p != '}') {
		struct evd_json_span ks, vs;
		evd_json_scan_value(&p, end, &ks, &why);
		p = evd_json_skip_ws(p, end) + 1; /* ':' */
		p = evd_json_skip_ws(p, end);
		evd_json_scan_value(&p, end, &vs, &why);
		p = evd_json_skip_ws(p, end);
		if (*p == ',')
			p = evd_json_skip_ws(p + 1, end);

		char *key = evd_xmalloc(ks.len);
		size_t kl;
		if (evd_json_string_decode(&ks, key, &kl, &why) < 0) {
			free(key);
			continue;
		}
		if (strcasecmp(key, "data") == 0) {
			if (vs.type == EVD_JSON_NULL) {
				req->data = NULL;
				req->data_len = 0;
			} else {
				req->data = vs.p;
				req->data_len = vs.len;
			}
			free(key);
			continue;
		}
		for (int f = 0; f < 4; f++) {
			if (strcasecmp(key, fields[f]) != 0)
				continue;
			char **slot = f == 0 ? &req->event_type : f == 1 ? &req->event_type_version
						     : f == 2 ? &req->event_id : &req->event_time;
			if (vs.type == EVD_JSON_STRING) {
				char *v = evd_xmalloc(vs.len);
				size_t vl;
				if (evd_json_string_decode(&vs, v, &vl, &why) < 0 || strlen(v) != vl) {
					free(v);
					break;
				}
				free(*slot);
				*slot = v;
			} else if (vs.type != EVD_JSON_NULL && !type_error) {
				snprintf(type_error_buf, sizeof(type_error_buf),
					 "json: cannot unmarshal %s into Go struct field PublishRequestV1.%s of "
					 "type string",
					 go_type_name(vs.type),
					 fields[f]);
				type_error = type_error_buf;
			}
			break;
		}
		free(key);
	}
	if (type_error)
		return bad_payload(out, status, type_error);
	return 0;
}

int evd_legacy_parse(const char *body, size_t len, struct evd_legacy_request *req, int *status,
		     struct evd_buf *err_body)
{
	int rc;
	memset(req, 0, sizeof(*req));
	*status = 200;
	/* Row 1: no body at all. */
	if (!body || len == 0) {
		rc = bad_payload(err_body, status, "Bad payload syntax");
		goto fail;
	}
	if ((rc = decode(body, len, req, status, err_body)) < 0)
		goto fail;
	for (int f = 0; f < 4; f++) {
		char **slot = f == 0 ? &req->event_type : f == 1 ? &req->event_type_version
					     : f == 2 ? &req->event_id : &req->event_time;
		if (!*slot)
			*slot = evd_xstrdup("");
	}
	/* Rows 3-9, in Kyma's order (checkParameters). */
	rc = -EINVAL;
	if (!*req->event_type)
		missing(err_body, status, "event-type");
	else if (!*req->event_type_version)
		missing(err_body, status, "event-type-version");
	else if (!matches_alnum(req->event_type_version))
		invalid(err_body, status, "event-type-version");
	else if (!*req->event_time)
		missing(err_body, status, "event-time");
	else if (evd_ce_check_time_go(req->event_time, strlen(req->event_time)) < 0)
		invalid(err_body, status, "event-time");
	else if (*req->event_id && !is_uuid(req->event_id))
		invalid(err_body, status, "event-id");
	else if (!req->data || (req->data_len == 2 && memcmp(req->data, "\"\"", 2) == 0))
		missing(err_body, status, "data");
	else
		rc = 0;
	if (rc < 0)
		goto fail;
	return 0;
fail:
	evd_legacy_request_free(req);
	return rc;
}

int evd_legacy_uuid4(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1)
		return -EIO;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10xx */
	size_t n = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[n++] = '-';
		out[n++] = hex[b[i] >> 4];
		out[n++] = hex[b[i] & 15];
	}
	out[n] = '\0';
	return 0;
}

size_t evd_legacy_app_from_path(const char *path, size_t len, const char **app)
{
	/* helpers.go ParseApplicationNameFromPath: TrimLeft "/", then the part before the next "/". */
	size_t i = 0;
	while (i < len && path[i] == '/')
		i++;
	const char *slash = memchr(path + i, '/', len - i);
	*app = path + i;
	return slash ? (size_t)(slash - (path + i)) : 0;
}

/* [^a-zA-Z0-9.]+ removed */
static void append_clean(struct evd_buf *b, const char *s, bool keep_dots)
{
	for (; *s; s++) {
		char c = *s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    (keep_dots && c == '.'))
			evd_buf_append_char(b, c);
	}
}

static int fill(struct evd_cloudevent *ev, const char *type, const char *source,
		const struct evd_legacy_request *req, const char *id, struct evd_buf *why)
{
	evd_ce_init(ev);
	evd_ce_set(ev, "specversion", "1.0", 3, NULL);
	evd_ce_set(ev, "id", id, strlen(id), NULL);
	evd_ce_set(ev, "source", source, strlen(source), NULL);
	evd_ce_set(ev, "type", type, strlen(type), NULL);
	evd_ce_set(ev, "datacontenttype", "application/json", 16, NULL);
	evd_ce_set(ev, "time", req->event_time, strlen(req->event_time), NULL);
	evd_ce_set(ev, "eventtypeversion", req->event_type_version, strlen(req->event_type_version), NULL);
	ev->data = req->data;
	ev->data_len = req->data_len;
	int rc = evd_ce_validate(ev, why);
	if (rc < 0)
		evd_ce_free(ev);
	return rc;
}

int evd_legacy_to_cloudevents(const struct evd_legacy_request *req, const char *app,
			      const char *type_prefix, struct evd_cloudevent *standard,
			      struct evd_cloudevent *prefixed, struct evd_buf *err_body)
{
	struct evd_buf type = EVD_BUF_INIT, why = EVD_BUF_INIT, name = EVD_BUF_INIT;
	char id[37];
	int status, rc = -EINVAL;

	evd_ce_init(standard);
	evd_ce_init(prefixed);
	if (*req->event_id)
		snprintf(id, sizeof(id), "%s", req->event_id);
	else if (evd_legacy_uuid4(id) < 0)
		goto fail;

	/* (a) legacy.go TransformPublishRequestToCloudEvent */
	evd_buf_printf(&type, "%s.%s", req->event_type, req->event_type_version);
	if (fill(standard, type.data, app, req, id, &why) < 0) {
		bad_payload(err_body, &status, why.data);
		goto fail;
	}

	/* (b) convertPublishRequestToCloudEvent: app without \W|_, event name cleaned and merged. */
	evd_buf_reset(&type);
	struct evd_buf prefix = EVD_BUF_INIT;
	append_clean(&prefix, type_prefix ? type_prefix : "", true);
	append_clean(&name, req->event_type, true);
	char *last = strrchr(name.data ? name.data : "", '.');
	if (prefix.len)
		evd_buf_printf(&type, "%s.", prefix.data);
	append_clean(&type, app, false);
	evd_buf_append_char(&type, '.');
	if (last) {
		/* combineEventNameSegments: all segments but the last concatenated */
		for (const char *c = name.data; c < last; c++)
			if (*c != '.')
				evd_buf_append_char(&type, *c);
		evd_buf_append_str(&type, last);
	} else {
		evd_buf_append_str(&type, name.data ? name.data : "");
	}
	evd_buf_printf(&type, ".%s", req->event_type_version);
	evd_buf_free(&prefix);
	if (fill(prefixed, type.data, "kyma", req, id, &why) < 0) {
		bad_payload(err_body, &status, why.data);
		evd_ce_free(standard);
		goto fail;
	}
	rc = 0;
fail:
	evd_buf_free(&type);
	evd_buf_free(&why);
	evd_buf_free(&name);
	return rc;
}
