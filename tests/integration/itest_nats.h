/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the C integration tests that start their own nats-server share: finding the program, a
 * free loopback port, removing the store afterwards. (Each test starts the server with the
 * options it needs itself.)
 */
#ifndef EVD_ITEST_NATS_H
#define EVD_ITEST_NATS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* nats-server on PATH, else /usr/sbin (Debian puts it there, off an ordinary user's PATH). */
static inline bool itest_find_nats_server(char *bin, size_t len)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL;
	bool found = false;

	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
	copy = strdup(path);
	for (dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
		snprintf(bin, len, "%s/nats-server", dir);
		found = access(bin, X_OK) == 0;
	}
	if (!found && access("/usr/sbin/nats-server", X_OK) == 0) {
		snprintf(bin, len, "/usr/sbin/nats-server");
		found = true;
	}
	free(copy);
	return found;
}

/* A port nothing listens on right now (bound on 127.0.0.1 and released). Exits on failure. */
static inline int itest_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		perror("free port");
		exit(1);
	}
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* rm -rf of a test's own temporary directory (its nats-server store). */
static inline void itest_remove_tree(const char *dir)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

#endif
