/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small helpers the subcommands share: where a listener is reached, reading --data @FILE, and
 * whether a text is one JSON value.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/cli_internal.h"
#include "util/util_addr.h"

void evd_cli_url_from_listen(const char *l, char *out, size_t len)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in *in4 = (const struct sockaddr_in *)&ss;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;

	/*
	 * A wildcard listener (":P", "*:P", "0.0.0.0:P", "[::]:P": whatever the config accepts as
	 * "all interfaces") accepts on loopback too; that is where a local client goes.
	 */
	if (evd_addr_parse(l, &ss, NULL, 0) == 0) {
		if (ss.ss_family == AF_INET && in4->sin_addr.s_addr == htonl(INADDR_ANY)) {
			snprintf(out, len, "http://127.0.0.1:%u", (unsigned)ntohs(in4->sin_port));
			return;
		}
		if (ss.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
			snprintf(out, len, "http://[::1]:%u", (unsigned)ntohs(in6->sin6_port));
			return;
		}
	}
	snprintf(out, len, "http://%s", l);
	size_t n = strlen(out);
	while (n > 7 && out[n - 1] == '/')
		out[--n] = '\0';
}

int evd_cli_listen_url(const struct evd_daemon_opts *opts, bool admin, char *out, size_t len)
{
	struct evd_config *cfg = NULL;
	/* quiet: no sandbox warning, since a client reaching a sandbox is the common case. */
	int rc = evd_daemon_load_config(opts, &cfg, true);
	if (rc != 0)
		return rc;
	evd_cli_url_from_listen(admin ? cfg->admin.listen : cfg->publish.listen, out, len);
	evd_config_free(cfg);
	return 0;
}

int evd_cli_read_file(const char *path, size_t max, struct evd_buf *out)
{
	bool is_stdin = strcmp(path, "-") == 0;
	int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	int rc = 0;
	if (fd < 0)
		return -errno;
	for (;;) {
		evd_buf_reserve(out, 64 * 1024);
		ssize_t n = read(fd, out->data + out->len, out->cap - out->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		if (out->len > max) {
			rc = -EFBIG;
			break;
		}
	}
	out->data[out->len] = '\0';
	if (!is_stdin)
		close(fd);
	return rc;
}

static bool json_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool evd_cli_json_value(const char *text, size_t len, size_t *start, size_t *value_len)
{
	const char *end = NULL;
	if (len == 0 || memchr(text, '\0', len))
		return false;
	cJSON *v = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!v)
		return false;
	cJSON_Delete(v);
	size_t b = 0, e = (size_t)(end - text);
	for (size_t i = e; i < len; i++)
		if (!json_ws(text[i]))
			return false;
	while (b < e && json_ws(text[b]))
		b++;
	if (start)
		*start = b;
	if (value_len)
		*value_len = e - b;
	return true;
}

bool evd_cli_extension_name_ok(const char *name, const char **why)
{
	static const char *const own_option[] = { "specversion", "id", "source", "type",
						  "datacontenttype", "data", "data_base64" };
	size_t n = strlen(name);
	if (n == 0 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789") != n) {
		*why = "extension names are lower-case letters and digits only ([a-z0-9]+)";
		return false;
	}
	for (size_t i = 0; i < sizeof(own_option) / sizeof(own_option[0]); i++) {
		if (strcmp(name, own_option[i]) == 0) {
			*why = "has its own option (--id, --source, --type, --content-type, --data)";
			return false;
		}
	}
	return true;
}
