/*
 * ctnet-cni-shim: the executable an orchestrator runs as a ctnet CNI plugin (bin/cni/<type>).
 *
 * Starting Node costs ~40 ms per plugin call, four calls per container with bridge + portmap. When
 * a ctnet CNI daemon (`ctnet cni-daemon`) runs in the caller's network namespace, this program
 * hands the call to it and prints its answer: the plugin code runs already loaded and compiled.
 * Otherwise it execs the Node plugin (CTNET_NODE_DIR/<type>), so a call never depends on the
 * daemon being there.
 *
 * The daemon listens on an abstract unix socket, CTNET_SOCKET. Abstract names belong to a network
 * namespace, so the daemon found is always one in the caller's namespace, which is the "host"
 * namespace a CNI plugin works in. The shim talks only to a daemon running as root (SO_PEERCRED),
 * so another user cannot pose as one. The daemon in turn serves only root callers in its own mount
 * namespace; it answers "declined" to anything else and the shim runs the plugin itself.
 *
 * Wire format (little-endian u32 lengths), one request per connection:
 *   request:  "CTNETCNI" u32 version=1, then four fields, each u32 length + bytes:
 *             plugin type, working directory, environment (entries separated by NUL), stdin
 *   response: u32 status (0 served, 1 declined); when served: u32 exit code, stdout, stderr
 *             (u32 length + bytes each)
 * A connection that breaks after the request was sent is reported as CNI error 11 ("try again
 * later"), not retried: the daemon may have carried out part of the command.
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
#error "build with -DCTNET_SOCKET=\"ctnet-cni-<build id>\""
#endif

#define MAX_STDIN (16u << 20)
#define MAX_REPLY (64u << 20)

extern char **environ;

static const char *plugin_type(const char *argv0) {
  const char *slash = strrchr(argv0, '/');
  return slash ? slash + 1 : argv0;
}

/* Runs the Node plugin in this process's place; returns only if that is impossible. */
static int fall_back(const char *type, char **argv) {
  char path[PATH_MAX];
  if (strchr(type, '/') || snprintf(path, sizeof path, "%s/%s", CTNET_NODE_DIR, type) >= (int)sizeof path) {
    fprintf(stderr, "ctnet-cni-shim: bad plugin name %s\n", type);
    return 1;
  }
  argv[0] = path;
  execv(path, argv);
  fprintf(stderr, "ctnet-cni-shim: failed to run %s: %s\n", path, strerror(errno));
  return 1;
}

static int connect_daemon(void) {
  return connect_daemon_socket(CTNET_SOCKET);
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

static int read_all(int fd, struct buf *b) {
  char chunk[65536];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (b->len + (size_t)n > MAX_REPLY || put(b, chunk, (size_t)n)) return -1;
  }
}

static int get_u32(const struct buf *b, size_t *at, uint32_t *v) {
  if (b->len - *at < 4) return -1;
  *v = from_le32((const unsigned char *)b->data + *at);
  *at += 4;
  return 0;
}

static int get_field(const struct buf *b, size_t *at, const char **p, uint32_t *n) {
  if (get_u32(b, at, n) || b->len - *at < *n) return -1;
  *p = b->data + *at;
  *at += *n;
  return 0;
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
static int lost_daemon(const char *what) {
  printf("{\"cniVersion\":\"1.1.0\",\"code\":11,\"msg\":\"the ctnet CNI daemon %s\",\"details\":\"%s\"}\n",
         what, strerror(errno));
  fflush(stdout);
  return 1;
}

int main(int argc, char **argv) {
  (void)argc;
  const char *type = plugin_type(argv[0]);
  int fd = connect_daemon();
  if (fd < 0) return fall_back(type, argv);

  struct buf req = {0}, in = {0};
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
  if (read_stdin(&in) < 0) {
    fprintf(stderr, "ctnet-cni-shim: failed to read stdin: %s\n", strerror(errno));
    return 1;
  }
  struct buf env = {0};
  for (char **e = environ; *e; e++)
    if (put(&env, *e, strlen(*e) + 1)) return 1;
  if (put(&req, "CTNETCNI", 8) || put_u32(&req, 1) || put_field(&req, type, strlen(type)) ||
      put_field(&req, cwd, strlen(cwd)) || put_field(&req, env.data, env.len) || put_field(&req, in.data, in.len)) {
    fprintf(stderr, "ctnet-cni-shim: out of memory\n");
    return 1;
  }
  if (write_all(fd, req.data, req.len) < 0) {
    /* The daemon acts only on a whole request: nothing was done, so run the plugin here. */
    close(fd);
    return refill_stdin(&in) ? 1 : fall_back(type, argv);
  }
  shutdown(fd, SHUT_WR);

  struct buf reply = {0};
  if (read_all(fd, &reply) < 0) return lost_daemon("connection failed");
  close(fd);
  size_t at = 0;
  uint32_t status, code, outn, errn;
  const char *out, *err;
  if (get_u32(&reply, &at, &status)) return lost_daemon("closed the connection without an answer");
  if (status == 1) return refill_stdin(&in) ? 1 : fall_back(type, argv); /* declined, nothing done */
  if (status != 0 || get_u32(&reply, &at, &code) || get_field(&reply, &at, &out, &outn) || get_field(&reply, &at, &err, &errn))
    return lost_daemon("sent a malformed answer");
  if (write_all(2, err, errn) < 0 && errno != EBADF) return 1;
  if (write_all(1, out, outn) < 0) return 1;
  return (int)code;
}
