/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keeping the registry in step with subscriptions.dir: a uv_fs_event watch on the directory
 * (inotify on Linux), SIGHUP, and a periodic rescan as a safety net (a watch can miss changes:
 * the directory replaced by another one, network file systems, inotify limits).
 *
 * Editors save in bursts (write a temporary file, rename it over the old one, touch a backup), so
 * events start a short debounce timer instead of a scan; a burst applies once, within
 * DEBOUNCE_MS after it ends, and never later than DEBOUNCE_MAX_MS after it began.
 * A scan that finds a file modified within DEBOUNCE_MS is put off the same way (the file may be
 * half-written), for at most DEBOUNCE_MAX_MS.
 *
 * Reading and parsing the files is file I/O, so it runs on libuv's thread pool (uv_queue_work;
 * short reads of small local files, unlike the NATS calls that could block for seconds), one
 * scan at a time. The scan owns everything it creates until its after-work callback hands it to
 * the loop, which applies it (registry.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "registry/registry_internal.h"
#include "util/util_log.h"
#include "util/util_mem.h"

#define DEBOUNCE_MS 300
#define DEBOUNCE_MAX_MS 1500
#define RESCAN_EVERY_MS 30000
#define MISSING_POLL_MS 2000 /* a missing directory has no watch: look for it this often */

struct reg_scan_job {
	uv_work_t req;
	struct evd_registry *reg; /* NULL once the registry is gone */
	char *dir;
	char *subject_prefix, *event_type_prefix;
	/* Results, written on the pool thread and read on the loop after it. */
	struct evd_registry_scan *scan;
	struct evd_diag diag;
	int rc;
	ino_t ino;
	dev_t dev;
};

static void scan_job_free(struct reg_scan_job *job)
{
	evd_registry_scan_free(job->scan);
	evd_diag_free(&job->diag);
	free(job->dir);
	free(job->subject_prefix);
	free(job->event_type_prefix);
	free(job);
}

static void on_scan_work(uv_work_t *req)
{
	struct reg_scan_job *job = req->data;
	struct evd_registry_opts opts = { job->subject_prefix, job->event_type_prefix };
	struct stat st;

	job->rc = evd_registry_scan_dir(job->dir, &opts, &job->scan, &job->diag);
	if (job->rc == 0 && stat(job->dir, &st) == 0) {
		job->ino = st.st_ino;
		job->dev = st.st_dev;
	}
}

static void start_fs_event(struct evd_registry *reg);
static void on_debounce(uv_timer_t *t);

/* The formatted diagnostics of one file of a set ("" when none or no such file). */
static void file_diag_text(const struct evd_registry_set *set, const char *name,
			   struct evd_buf *out)
{
	const struct evd_registry_file *f = set ? evd_registry_set_file(set, name) : NULL;
	if (f)
		evd_diag_format(&f->diag, out);
	evd_buf_append_str(out, "");
}

/* Logs the diagnostics of files whose diagnostics changed, so a periodic rescan stays quiet. */
static void log_file_changes(const struct evd_registry_set *prev,
			     const struct evd_registry_set *next)
{
	for (size_t i = 0; i < next->nfiles; i++) {
		const struct evd_registry_file *f = &next->files[i];
		struct evd_buf now = EVD_BUF_INIT, was = EVD_BUF_INIT;
		file_diag_text(next, f->name, &now);
		file_diag_text(prev, f->name, &was);
		if (strcmp(now.data, was.data) != 0 && now.len) {
			char *line = now.data, *nl;
			for (; *line; line = nl + 1) {
				nl = strchr(line, '\n');
				if (nl)
					*nl = '\0';
				if (strstr(line, ": warning: "))
					evd_log_warn("registry", "%s", line);
				else
					evd_log_error("registry", "%s", line);
				if (!nl)
					break;
			}
			if (f->failed)
				evd_log_error("registry", "%s: not applied; %s", f->path,
					      f->subs.count ? "its previous version stays active"
							    : "it had no valid version yet");
		}
		evd_buf_free(&now);
		evd_buf_free(&was);
	}
}

/*
 * A file modified within the debounce window may still be being written (a slow copy, a periodic
 * rescan landing mid-write): read the directory again a little later instead of applying a
 * partial version, for at most DEBOUNCE_MAX_MS (a clock skewed into the future must not stop
 * the directory from being applied). True when the scan was put off (and freed).
 */
static bool put_off(struct evd_registry *reg, struct reg_scan_job *job)
{
	uint64_t now = uv_now(reg->loop);

	if (job->scan->newest_mtime_ms <= reg_wall_ms() - DEBOUNCE_MS ||
	    (reg->settle_first && now - reg->settle_first >= DEBOUNCE_MAX_MS)) {
		reg->settle_first = 0;
		return false;
	}
	if (!reg->settle_first)
		reg->settle_first = now;
	evd_log_debug("registry", "a file of %s changed a moment ago: reading it again before "
				  "applying", reg->dir);
	scan_job_free(job);
	reg->scan_again = false;
	if (!uv_is_active((uv_handle_t *)&reg->debounce_timer))
		uv_timer_start(&reg->debounce_timer, on_debounce, DEBOUNCE_MS, 0);
	return true;
}

static void on_scan_done(uv_work_t *req, int status)
{
	struct reg_scan_job *job = req->data;
	struct evd_registry *reg = job->reg;

	if (!reg || reg->closing) {
		scan_job_free(job);
		return;
	}
	reg->scan = NULL;
	if (status == 0 && job->rc == 0 && strcmp(job->dir, reg->dir) == 0 && put_off(reg, job))
		return;
	reg->scans++;
	reg->last_scan_ms = reg_wall_ms();
	if (status < 0 || strcmp(job->dir, reg->dir) != 0) {
		/* Cancelled, or the directory was switched meanwhile: read the new one. */
		scan_job_free(job);
		reg_watch_schedule(reg, 0);
		return;
	}
	if (job->rc < 0) {
		struct evd_buf text = EVD_BUF_INIT;
		evd_diag_format(&job->diag, &text);
		if (text.len && text.data[text.len - 1] == '\n')
			text.data[--text.len] = '\0';
		if (!reg->dir_warned || reg->dir_err != job->rc)
			evd_log_warn("registry", "%s; %s", text.data,
				     reg->set && reg->set->active.count
					     ? "the subscriptions read before stay active; watching "
					       "for the directory to come back"
					     : "no subscriptions; watching for the directory to appear");
		reg->dir_warned = true;
		if (reg->dir_err != job->rc)
			reg->stable_since = uv_now(reg->loop); /* no prune from a vanished directory */
		reg->dir_err = job->rc;
		free(reg->dir_error);
		reg->dir_error = evd_buf_steal(&text);
		evd_buf_free(&text);
		/* The watch died with the directory; a new one starts when it is back. */
		if (reg->fs_event_active) {
			uv_fs_event_stop(&reg->fs_event);
			reg->fs_event_active = false;
		}
		if (!reg->loaded) {
			/* Start-up without a directory: an empty set, so status and readiness work. */
			struct evd_registry_scan *empty = evd_registry_scan_new();
			reg_apply_set(reg, evd_registry_set_next(NULL, empty));
			evd_registry_scan_free(empty);
		}
		scan_job_free(job);
		if (!reg->scan_again) {
			/* Picked up within seconds when it appears: cheaper than watching the parent. */
			reg_watch_schedule(reg, MISSING_POLL_MS);
			return;
		}
		goto again;
	}
	if (reg->dir_err) {
		evd_log_info("registry", "subscription directory %s is readable again", reg->dir);
		reg->dir_err = 0;
		reg->dir_warned = false;
		free(reg->dir_error);
		reg->dir_error = NULL;
		/* A directory that just appeared is often still being filled (mkdir, then cp):
		 * pruning waits until what it holds has been stable for delete_grace. */
		reg->stable_since = uv_now(reg->loop);
	}
	if (!reg->fs_event_active || reg->watch_ino != job->ino || reg->watch_dev != job->dev) {
		/* New, or replaced by another directory of the same name: watch the one there now. */
		reg->watch_ino = job->ino;
		reg->watch_dev = job->dev;
		start_fs_event(reg);
	}
	struct evd_registry_set *next = evd_registry_set_next(reg->set, job->scan);
	log_file_changes(reg->set, next);
	reg_apply_set(reg, next);
	scan_job_free(job);
again:
	if (reg->scan_again) {
		reg->scan_again = false;
		reg_watch_schedule(reg, 0);
	}
}

static void start_scan(struct evd_registry *reg)
{
	struct reg_scan_job *job = evd_xcalloc(1, sizeof(*job));
	int rc;

	job->req.data = job;
	job->reg = reg;
	job->dir = evd_xstrdup(reg->dir);
	job->subject_prefix = evd_xstrdup(reg->opts.subject_prefix);
	job->event_type_prefix = evd_xstrdup(reg->opts.event_type_prefix);
	rc = uv_queue_work(reg->loop, &job->req, on_scan_work, on_scan_done);
	if (rc < 0) {
		evd_log_error("registry", "cannot queue a scan of %s: %s; retrying with the "
					  "periodic rescan", reg->dir, uv_strerror(rc));
		scan_job_free(job);
		return;
	}
	reg->scan = job;
}

static void on_debounce(uv_timer_t *t)
{
	struct evd_registry *reg = t->data;

	reg->debounce_first = 0;
	if (reg->closing)
		return;
	if (reg->scan) {
		reg->scan_again = true;
		return;
	}
	start_scan(reg);
}

void reg_watch_schedule(struct evd_registry *reg, uint64_t delay_ms)
{
	uint64_t now = uv_now(reg->loop);

	if (reg->closing)
		return;
	if (delay_ms == DEBOUNCE_MS) {
		/* A burst that goes on: the timer already running fires soon enough. */
		if (reg->debounce_first && now - reg->debounce_first >= DEBOUNCE_MAX_MS - DEBOUNCE_MS)
			return;
		if (!reg->debounce_first)
			reg->debounce_first = now;
	}
	uv_timer_start(&reg->debounce_timer, on_debounce, delay_ms, 0);
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct evd_registry *reg = h->data;

	(void)events;
	if (status < 0)
		evd_log_debug("registry", "watch on %s: %s", reg->dir, uv_strerror(status));
	else
		evd_log_debug("registry", "%s changed (%s)", reg->dir, filename ? filename : "?");
	reg_watch_schedule(reg, DEBOUNCE_MS);
}

static void start_fs_event(struct evd_registry *reg)
{
	int rc;

	if (reg->fs_event_active) {
		uv_fs_event_stop(&reg->fs_event);
		reg->fs_event_active = false;
	}
	rc = uv_fs_event_start(&reg->fs_event, on_fs_event, reg->dir, 0);
	if (rc < 0) {
		evd_log_warn("registry", "cannot watch %s (%s): changes are picked up by SIGHUP and "
					 "the rescan every %d s",
			     reg->dir, uv_strerror(rc), RESCAN_EVERY_MS / 1000);
		return;
	}
	reg->fs_event_active = true;
	evd_log_debug("registry", "watching %s", reg->dir);
}

static void on_rescan_timer(uv_timer_t *t)
{
	reg_watch_schedule(t->data, 0);
}

int reg_watch_start(struct evd_registry *reg)
{
	evd_log_info("registry", "subscriptions from %s", reg->dir);
	uv_timer_start(&reg->rescan_timer, on_rescan_timer, RESCAN_EVERY_MS, RESCAN_EVERY_MS);
	/* The first scan starts the watch once it knows the directory exists. */
	reg_watch_schedule(reg, 0);
	return 0;
}

void reg_watch_switch(struct evd_registry *reg, const char *dir)
{
	if (strcmp(dir, reg->dir) == 0)
		return;
	evd_log_info("registry", "subscriptions.dir changed: %s -> %s", reg->dir, dir);
	free(reg->dir);
	reg->dir = evd_xstrdup(dir);
	if (reg->fs_event_active) {
		uv_fs_event_stop(&reg->fs_event);
		reg->fs_event_active = false;
	}
	reg->dir_warned = false;
	reg->dir_err = 0;
	free(reg->dir_error);
	reg->dir_error = NULL;
	reg->stable_since = uv_now(reg->loop);
	if (reg->scan)
		reg->scan_again = true; /* its result is for the old directory: discarded */
	else
		reg_watch_schedule(reg, 0);
}

void reg_watch_close(struct evd_registry *reg)
{
	if (reg->scan) {
		reg->scan->reg = NULL; /* finishes on the pool and frees itself */
		reg->scan = NULL;
	}
	uv_close((uv_handle_t *)&reg->fs_event, reg_handle_closed);
	uv_close((uv_handle_t *)&reg->debounce_timer, reg_handle_closed);
	uv_close((uv_handle_t *)&reg->rescan_timer, reg_handle_closed);
}
