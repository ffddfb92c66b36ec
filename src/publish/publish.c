/* SPDX-License-Identifier: Apache-2.0 */
#include "publish/publish.h"

#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "util/util_mem.h"

struct evd_publish {
	struct evd_daemon *daemon;
	bool backend_ready;
};

int evd_publish_new(struct evd_daemon *d, struct evd_publish **out)
{
	struct evd_publish *p = evd_xcalloc(1, sizeof(*p));
	p->daemon = d;
	*out = p;
	return 0;
}

void evd_publish_handle(struct evd_publish *p, struct evd_http_request *req)
{
	(void)p;
	evd_http_respond_text(req, 404, NULL, "no such route: the publish endpoint serves "
					      "POST /publish and the Kyma application routes");
}

void evd_publish_set_config(struct evd_publish *p, const struct evd_config *cfg)
{
	(void)p;
	(void)cfg;
}

void evd_publish_backend_state(struct evd_publish *p, bool ready)
{
	p->backend_ready = ready;
}

void evd_publish_free(struct evd_publish *p)
{
	free(p);
}
