/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listen and connect addresses as users write them: "127.0.0.1:8080", "[::1]:8080",
 * "localhost:8080" (numeric hosts only are resolved here, plus "localhost"; a listener never
 * needs DNS), ":8080" (all interfaces). Pure, any thread.
 */
#ifndef EVD_UTIL_ADDR_H
#define EVD_UTIL_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Returns 0, or -EINVAL with a reason in err (may be NULL). */
int evd_addr_parse(const char *text, struct sockaddr_storage *out, char *err, size_t errlen);
/* "127.0.0.1:8080" / "[::1]:8080" */
void evd_addr_format(const struct sockaddr *sa, char *out, size_t outlen);

#endif
