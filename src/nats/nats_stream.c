/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ensuring a JetStream stream: create, update what can be updated, report what cannot.
 *
 * Runs on the bridge worker only: every js_* call here is a blocking request to the server
 * (jsOptions.Wait, 5 s by default). JetStream's rules (nats-server 2.9, stream update): subjects,
 * limits, discard policy, replicas and the duplicate window may change; storage type and
 * retention policy may not ("stream configuration update can not change storage type",
 * "... retention policy"). js_UpdateStream takes a whole configuration, so the update starts
 * from the running configuration and changes only our fields: whatever an operator set that we
 * do not manage (description, placement, sources) survives.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nats/nats_conn.h"
#include "util/util_buf.h"
#include "util/util_log.h"
#include "util/util_mem.h"

#define NS_PER_MS INT64_C(1000000)

const char *evd_nats_storage_name(jsStorageType t)
{
	return t == js_MemoryStorage ? "memory" : "file";
}

const char *evd_nats_retention_name(jsRetentionPolicy r)
{
	switch (r) {
	case js_LimitsPolicy:
		return "limits";
	case js_InterestPolicy:
		return "interest";
	case js_WorkQueuePolicy:
		return "workqueue";
	}
	return "unknown";
}

const char *evd_nats_discard_name(jsDiscardPolicy d)
{
	return d == js_DiscardNew ? "new" : "old";
}

void evd_nats_stream_spec_from_config(struct evd_nats_stream_spec *spec, const struct evd_config *cfg)
{
	struct evd_buf subj = EVD_BUF_INIT;

	evd_buf_printf(&subj, "%s.>", cfg->stream.subject_prefix);
	spec->name = evd_xstrdup(cfg->stream.name);
	spec->subject = evd_buf_steal(&subj);
	spec->storage = cfg->stream.storage;
	spec->retention = cfg->stream.retention;
	spec->discard = cfg->stream.discard;
	spec->max_bytes = cfg->stream.max_bytes;
	spec->max_age = cfg->stream.max_age;
	spec->replicas = cfg->stream.replicas;
	spec->duplicate_window = cfg->stream.duplicate_window;
}

void evd_nats_stream_spec_copy(struct evd_nats_stream_spec *dst, const struct evd_nats_stream_spec *src)
{
	*dst = *src;
	dst->name = evd_xstrdup(src->name);
	dst->subject = evd_xstrdup(src->subject);
}

void evd_nats_stream_spec_free(struct evd_nats_stream_spec *spec)
{
	free(spec->name);
	free(spec->subject);
	spec->name = spec->subject = NULL;
}

/* The values as JetStream states them (ns, -1 for unlimited, 1 replica at least). */
struct wanted {
	jsStorageType storage;
	jsRetentionPolicy retention;
	jsDiscardPolicy discard;
	int64_t max_bytes;
	int64_t max_age;
	int64_t replicas;
	int64_t duplicates; /* 0: keep whatever runs */
};

static void wanted_from_spec(struct wanted *w, const struct evd_nats_stream_spec *spec)
{
	w->storage = spec->storage == EVD_STORAGE_MEMORY ? js_MemoryStorage : js_FileStorage;
	switch (spec->retention) {
	case EVD_RETENTION_LIMITS:
		w->retention = js_LimitsPolicy;
		break;
	case EVD_RETENTION_INTEREST:
	default:
		w->retention = js_InterestPolicy;
		break;
	}
	w->discard = spec->discard == EVD_DISCARD_OLD ? js_DiscardOld : js_DiscardNew;
	w->max_bytes = spec->max_bytes == 0 || spec->max_bytes > INT64_MAX ? -1 : (int64_t)spec->max_bytes;
	w->max_age = spec->max_age > 0 ? spec->max_age * NS_PER_MS : 0;
	w->replicas = spec->replicas ? spec->replicas : 1;
	w->duplicates = spec->duplicate_window > 0 ? spec->duplicate_window * NS_PER_MS : 0;
}

static int64_t norm_bytes(int64_t v)
{
	return v <= 0 ? -1 : v;
}

static int64_t norm_replicas(int64_t v)
{
	return v <= 0 ? 1 : v;
}

static int log_js_failure(natsStatus s, jsErrCode jerr, const char *what, const char *stream)
{
	char buf[160];

	if (s == NATS_NO_RESPONDERS || jerr == JSNotEnabledErr || jerr == JSNotEnabledForAccountErr) {
		evd_log_error("nats",
			      "%s of stream \"%s\": JetStream is not enabled on the server (start "
			      "nats-server with -js, or enable JetStream for this account); retrying",
			      what, stream);
		return -EHOSTUNREACH;
	}
	snprintf(buf, sizeof(buf), "%s of stream \"%s\" (JetStream error %d)", what, stream, (int)jerr);
	return evd_nats_status_to_err(s, buf);
}

static int create_stream(jsCtx *js, const struct evd_nats_stream_spec *spec,
			 const struct wanted *w, jsStreamInfo **si_out)
{
	jsStreamConfig sc;
	const char *subjects[1] = { spec->subject };
	jsErrCode jerr = 0;
	natsStatus s;

	jsStreamConfig_Init(&sc);
	sc.Name = spec->name;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = w->storage;
	sc.Retention = w->retention;
	sc.Discard = w->discard;
	sc.MaxBytes = w->max_bytes;
	sc.MaxAge = w->max_age;
	sc.Replicas = w->replicas;
	sc.Duplicates = w->duplicates;
	s = js_AddStream(si_out, js, &sc, NULL, &jerr);
	if (s != NATS_OK)
		return log_js_failure(s, jerr, "creation", spec->name);
	evd_log_info("nats", "created stream \"%s\" (subjects %s, storage %s, retention %s)",
		     spec->name, spec->subject, evd_nats_storage_name(w->storage),
		     evd_nats_retention_name(w->retention));
	return 0;
}

static bool subjects_match(const jsStreamConfig *rc, const char *subject)
{
	return rc->SubjectsLen == 1 && rc->Subjects[0] && strcmp(rc->Subjects[0], subject) == 0;
}

static void append_subjects(struct evd_buf *b, const jsStreamConfig *rc)
{
	evd_buf_append_char(b, '[');
	for (int i = 0; i < rc->SubjectsLen; i++)
		evd_buf_printf(b, "%s%s", i ? "," : "", rc->Subjects[i]);
	evd_buf_append_char(b, ']');
}

/* Logs what JetStream cannot change in place; the running values stay. */
static void report_fixed(const struct evd_nats_stream_spec *spec, const jsStreamConfig *rc,
			 const struct wanted *w)
{
	if (rc->Storage != w->storage)
		evd_log_error("nats",
			      "stream \"%s\": stream.storage is \"%s\" but the running stream uses "
			      "\"%s\", which JetStream cannot change in place; keeping \"%s\". To switch, "
			      "delete the stream (`nats stream rm %s`; its stored events are lost) and "
			      "eventingd re-creates it, or set stream.storage: %s",
			      spec->name, evd_nats_storage_name(w->storage),
			      evd_nats_storage_name(rc->Storage), evd_nats_storage_name(rc->Storage),
			      spec->name, evd_nats_storage_name(rc->Storage));
	if (rc->Retention != w->retention)
		evd_log_error("nats",
			      "stream \"%s\": stream.retention is \"%s\" but the running stream uses "
			      "\"%s\", which JetStream cannot change in place; keeping \"%s\". To switch, "
			      "delete the stream (`nats stream rm %s`; its stored events are lost) and "
			      "eventingd re-creates it, or set stream.retention: %s",
			      spec->name, evd_nats_retention_name(w->retention),
			      evd_nats_retention_name(rc->Retention),
			      evd_nats_retention_name(rc->Retention), spec->name,
			      evd_nats_retention_name(rc->Retention));
}

/*
 * Compares the updatable fields; on a difference updates the stream from its own running
 * configuration. *si is replaced by the updated info on success.
 */
static void update_stream(jsCtx *js, const struct evd_nats_stream_spec *spec,
			  const struct wanted *w, jsStreamInfo **si)
{
	jsStreamConfig *rc = (*si)->Config;
	struct evd_buf changes = EVD_BUF_INIT;
	const char *subjects[1] = { spec->subject };
	jsStreamConfig uc;
	jsStreamInfo *nsi = NULL;
	jsErrCode jerr = 0;
	natsStatus s;

	if (!subjects_match(rc, spec->subject)) {
		evd_buf_append_str(&changes, "subjects ");
		append_subjects(&changes, rc);
		evd_buf_printf(&changes, " -> [%s], ", spec->subject);
	}
	if (norm_bytes(rc->MaxBytes) != w->max_bytes)
		evd_buf_printf(&changes, "max_bytes %" PRId64 " -> %" PRId64 ", ",
			       norm_bytes(rc->MaxBytes), w->max_bytes);
	if (rc->MaxAge != w->max_age)
		evd_buf_printf(&changes, "max_age %" PRId64 "ms -> %" PRId64 "ms, ",
			       rc->MaxAge / NS_PER_MS, w->max_age / NS_PER_MS);
	if (rc->Discard != w->discard)
		evd_buf_printf(&changes, "discard %s -> %s, ", evd_nats_discard_name(rc->Discard),
			       evd_nats_discard_name(w->discard));
	if (norm_replicas(rc->Replicas) != w->replicas)
		evd_buf_printf(&changes, "replicas %" PRId64 " -> %" PRId64 ", ",
			       norm_replicas(rc->Replicas), w->replicas);
	if (w->duplicates && rc->Duplicates != w->duplicates)
		evd_buf_printf(&changes, "duplicate_window %" PRId64 "ms -> %" PRId64 "ms, ",
			       rc->Duplicates / NS_PER_MS, w->duplicates / NS_PER_MS);
	if (changes.len == 0)
		goto out;
	changes.data[changes.len -= 2] = '\0';

	/* The running configuration with our fields; storage and retention stay as they run. */
	uc = *rc;
	uc.Subjects = subjects;
	uc.SubjectsLen = 1;
	uc.MaxBytes = w->max_bytes;
	uc.MaxAge = w->max_age;
	uc.Discard = w->discard;
	uc.Replicas = w->replicas;
	if (w->duplicates)
		uc.Duplicates = w->duplicates;
	s = js_UpdateStream(&nsi, js, &uc, NULL, &jerr);
	if (s != NATS_OK) {
		char what[256];

		snprintf(what, sizeof(what), "update (%s)", changes.data);
		log_js_failure(s, jerr, what, spec->name);
		evd_log_error("nats", "stream \"%s\": keeping the running settings; fix the stream.* "
				      "keys or the stream, then reload", spec->name);
		goto out;
	}
	evd_log_info("nats", "updated stream \"%s\": %s", spec->name, changes.data);
	jsStreamInfo_Destroy(*si);
	*si = nsi;
out:
	evd_buf_free(&changes);
}

int evd_nats_ensure_stream_conf(jsCtx *js, const struct evd_nats_stream_spec *spec,
				jsStreamInfo **si_out)
{
	struct wanted w;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s;
	int err;

	*si_out = NULL;
	wanted_from_spec(&w, spec);
	s = js_GetStreamInfo(&si, js, spec->name, NULL, &jerr);
	if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
		err = create_stream(js, spec, &w, &si);
		if (err < 0)
			return err;
		*si_out = si;
		return 0;
	}
	if (s != NATS_OK)
		return log_js_failure(s, jerr, "lookup", spec->name);

	report_fixed(spec, si->Config, &w);
	update_stream(js, spec, &w, &si);
	*si_out = si;
	return 0;
}
