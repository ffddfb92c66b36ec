/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin listener's routes (DESIGN.md §7): /healthz, /readyz, /metrics, /v1/backend,
 * /v1/subscriptions[/{ns}/{name}] (JSON from the registry), and later /v1/deadletters. Loop thread only.
 */
#ifndef EVD_ADMIN_H
#define EVD_ADMIN_H

#include <stdbool.h>

#include "http/http_server.h"

struct evd_daemon;

/*
 * The answer to /healthz and /readyz (served on both listeners): 0 when req is another route,
 * else the status, with the plain-text body in text and extra headers (static, or NULL) in
 * *extra. Methods other than GET and HEAD get 405 with Allow.
 */
int evd_admin_health(struct evd_daemon *d, const struct evd_http_request *req, char *text,
		     size_t len, const char **extra);
/* evd_admin_health and the response; false if req is another route. */
bool evd_admin_handle_health(struct evd_daemon *d, struct evd_http_request *req);
void evd_admin_handle(struct evd_daemon *d, struct evd_http_request *req);

#endif
