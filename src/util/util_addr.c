/* SPDX-License-Identifier: Apache-2.0 */
#include "util/util_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int evd_addr_parse(const char *text, struct sockaddr_storage *out, char *err, size_t errlen)
{
	char host[256];
	const char *port_text;
	memset(out, 0, sizeof(*out));

	if (text[0] == '[') {
		const char *end = strchr(text, ']');
		if (!end || end[1] != ':') {
			if (err)
				snprintf(err, errlen, "expected \"[IPv6]:PORT\"");
			return -EINVAL;
		}
		size_t n = (size_t)(end - text - 1);
		if (n >= sizeof(host))
			goto bad_host;
		memcpy(host, text + 1, n);
		host[n] = '\0';
		port_text = end + 2;
	} else {
		const char *colon = strrchr(text, ':');
		if (!colon) {
			if (err)
				snprintf(err, errlen, "expected \"HOST:PORT\" (for example 127.0.0.1:8080)");
			return -EINVAL;
		}
		size_t n = (size_t)(colon - text);
		if (n >= sizeof(host))
			goto bad_host;
		memcpy(host, text, n);
		host[n] = '\0';
		port_text = colon + 1;
	}

	char *endp;
	errno = 0;
	long port = strtol(port_text, &endp, 10);
	if (!*port_text || *endp || errno || port < 0 || port > 65535) {
		if (err)
			snprintf(err, errlen, "port \"%s\" is not a number from 0 to 65535", port_text);
		return -EINVAL;
	}

	struct sockaddr_in *in4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
	if (host[0] == '\0' || strcmp(host, "*") == 0) {
		in4->sin_family = AF_INET;
		in4->sin_addr.s_addr = htonl(INADDR_ANY);
		in4->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return 0;
	}
bad_host:
	if (err)
		snprintf(err, errlen, "host must be an IP address, \"localhost\" or empty (all interfaces)");
	return -EINVAL;
}

void evd_addr_format(const struct sockaddr *sa, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		/* via void *: sa points at a sockaddr_storage (or a real sockaddr_in), so it is aligned */
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
		snprintf(out, outlen, "%s:%u", host, ntohs(in4->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(out, outlen, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(out, outlen, "?");
	}
}
