/* SPDX-License-Identifier: Apache-2.0 */
/* Placeholder until branch natsio lands (dispatch builds against nats_sub.h): subscribing fails. */
#include "nats/nats_sub.h"

#include <errno.h>

int evd_nats_sub_new(struct evd_nats *n, const char *subject, const char *queue,
		     evd_nats_sub_msgs_cb on_msgs, evd_nats_sub_closed_cb on_closed, void *data,
		     struct evd_nats_sub **out)
{
	(void)n; (void)subject; (void)queue; (void)on_msgs; (void)on_closed; (void)data;
	*out = NULL;
	return -ENOSYS;
}

void evd_nats_sub_close(struct evd_nats_sub *s)
{
	(void)s;
}

int evd_nats_sub_settle(struct evd_nats_sub *s, natsMsg *msg, enum evd_settle kind, int64_t delay_ms)
{
	(void)s; (void)msg; (void)kind; (void)delay_ms;
	return -ENOSYS;
}

void evd_nats_sub_msg_done(struct evd_nats_sub *s, natsMsg *msg)
{
	(void)s;
	natsMsg_Destroy(msg);
}
