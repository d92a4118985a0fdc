/*
 * ctnet-cni-shim: the executable an orchestrator runs as a ctnet CNI plugin (bin/cni/<type>).
 *
 * Starting Node costs ~40 ms per plugin call, four calls per container with bridge + portmap. When
 * a ctnet agent (`ctnet agent`) runs in the caller's network namespace, this program sends it the
 * call (the plugin type, the CNI_* variables, the configuration from stdin) and prints its answer:
 * the plugin code runs already loaded and compiled. Otherwise it execs the Node plugin
 * (CTNET_NODE_DIR/<type>), so a call never depends on the agent being there.
 *
 * The agent listens on an abstract unix socket, CTNET_SOCKET. Abstract names belong to a network
 * namespace, so the agent found is always the one of the caller's namespace, the "host" namespace a
 * CNI plugin works in. The shim talks only to an agent running as root (SO_PEERCRED). The agent
 * declines callers it must not serve (not root, another mount namespace or root directory), and an
 * agent out of service declines what it has not started: the shim then runs the plugin itself.
 *
 * The API is agent/protocol.ts's (frames in core/c/ctnet-wire.h). A connection that breaks after
 * the request was sent is reported as CNI error 11 ("try again later"), not retried: the agent may
 * have carried out part of the command, and the runtime's DEL cleans up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctnet-wire.h"

#ifndef CTNET_NODE_DIR
#error "build with -DCTNET_NODE_DIR=\"/path/to/bin/cni-node\""
#endif
#ifndef CTNET_SOCKET
#error "build with -DCTNET_SOCKET=\"ctnet-agent-<build id>\""
#endif

#define MAX_STDIN (16u << 20)

extern char **environ;

static const char *plugin_type(const char *argv0) {
  const char *slash = strrchr(argv0, '/');
  return slash ? slash + 1 : argv0;
}

/*
 * Runs the Node plugin in this process's place; returns only if that is impossible. It runs `node <loader>` itself,
 * as the loader's `#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node` line would (node found on PATH, that variable
 * dropped), without the env process between: one exec fewer on every call made without the agent.
 */
static int fall_back(const char *type, char **argv) {
  (void)argv; /* a CNI plugin takes no arguments */
  char path[PATH_MAX];
  if (strchr(type, '/') || snprintf(path, sizeof path, "%s/%s", CTNET_NODE_DIR, type) >= (int)sizeof path) {
    fprintf(stderr, "ctnet-cni-shim: bad plugin name %s\n", type);
    return 1;
  }
  unsetenv("NODE_EXTRA_CA_CERTS");
  char *node_argv[] = {"node", path, NULL};
  execvp("node", node_argv);
  fprintf(stderr, "ctnet-cni-shim: failed to run node %s: %s\n", path, strerror(errno));
  return 1;
}

static int read_stdin(struct buf *b) {
  char chunk[65536];
  for (;;) {
    ssize_t n = read(0, chunk, sizeof chunk);
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EBADF ? 0 : -1; /* no stdin at all: an empty one, as for VERSION */
    }
    if (b->len + (size_t)n > MAX_STDIN || put(b, chunk, (size_t)n)) return -1;
  }
}

/* The plugin run in our place must read the stdin we already consumed: serve it from memory. */
static int refill_stdin(const struct buf *in) {
  int fd = memfd_create("ctnet-cni-stdin", 0);
  if (fd < 0 || write_all(fd, in->data, in->len) < 0 || lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, 0) < 0) {
    fprintf(stderr, "ctnet-cni-shim: failed to pass stdin on: %s\n", strerror(errno));
    return -1;
  }
  close(fd);
  return 0;
}

/* After the request went out, nothing can be retried: report a CNI error the runtime understands. */
static int lost_agent(const char *what) {
  printf("{\"cniVersion\":\"1.1.0\",\"code\":11,\"msg\":\"the ctnet agent %s\",\"details\":\"%s\"}\n", what,
         errno ? strerror(errno) : "end of stream");
  fflush(stdout);
  return 1;
}

int main(int argc, char **argv) {
  (void)argc;
  const char *type = plugin_type(argv[0]);
  int fd = connect_agent(CTNET_SOCKET);
  if (fd < 0) return fall_back(type, argv);

  struct buf in = {0}, json = {0}, req = {0};
  if (read_stdin(&in) < 0) {
    fprintf(stderr, "ctnet-cni-shim: failed to read stdin: %s\n", strerror(errno));
    return 1;
  }
  if (puts_(&json, "{\"api\":1,\"kind\":\"cni\",\"plugin\":") || put_json_str(&json, type, strlen(type)) ||
      put(&json, ",", 1) || put_json_env(&json, environ, "CNI_") || puts_(&json, ",\"config\":") ||
      put_json_str(&json, in.data ? in.data : "", in.len) || put(&json, "}", 1) || request_frame(&req, &json)) {
    fprintf(stderr, "ctnet-cni-shim: out of memory\n");
    return 1;
  }
  if (send_with_fds(fd, req.data, req.len, NULL, 0) < 0) {
    /* The agent acts only on a whole request: nothing was done, so run the plugin here. */
    close(fd);
    return refill_stdin(&in) ? 1 : fall_back(type, argv);
  }

  uint32_t kind;
  struct buf reply = {0};
  if (read_frame(fd, &kind, &reply) < 0) return lost_agent("closed the connection without an answer");
  close(fd);
  if (kind == REPLY_DECLINED) return refill_stdin(&in) ? 1 : fall_back(type, argv); /* nothing done */
  if (kind != REPLY_CNI || reply.len < 8) {
    errno = EPROTO;
    return lost_agent("sent a malformed answer");
  }
  uint32_t code = from_le32((unsigned char *)reply.data), outn = from_le32((unsigned char *)reply.data + 4);
  if (outn > reply.len - 8) {
    errno = EPROTO;
    return lost_agent("sent a malformed answer");
  }
  const char *out = reply.data + 8, *err = out + outn;
  size_t errn = reply.len - 8 - outn;
  if (write_all(2, err, errn) < 0 && errno != EBADF) return 1;
  if (write_all(1, out, outn) < 0) return 1;
  return (int)code;
}
