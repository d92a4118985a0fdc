/*
 * What the two C clients of ctnet's resident daemons share (plugins/daemon/ctnet-cni-shim.c, the CNI
 * daemon's; runner/daemon/ctnet-front.c, the runner daemon's): reaching a daemon on an abstract unix
 * socket, and building requests of little-endian u32 lengths and bytes. Header-only: each program is
 * one translation unit, compiled with -I core/c.
 */
#ifndef CTNET_WIRE_H
#define CTNET_WIRE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * Connects to the abstract socket `name`; -1 when there is none, or when the process listening is
 * not root (SO_PEERCRED), so another user cannot pose as a daemon.
 */
static int connect_daemon_socket(const char *name) {
  struct sockaddr_un addr;
  size_t n = strlen(name);
  if (n + 1 > sizeof addr.sun_path) return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path + 1, name, n); /* sun_path[0] = 0: abstract namespace */
  /* An abstract name is its exact bytes up to the address length. Node 20 (libuv) binds the whole
     zero-padded sun_path; later versions may bind only the name: try both. */
  if (connect(fd, (struct sockaddr *)&addr, (socklen_t)sizeof addr) < 0 &&
      connect(fd, (struct sockaddr *)&addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) < 0) {
    close(fd);
    return -1;
  }
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

struct buf {
  char *data;
  size_t len, cap;
};

static int put(struct buf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static void le32(unsigned char *out, uint32_t v) {
  out[0] = v & 0xff;
  out[1] = (v >> 8) & 0xff;
  out[2] = (v >> 16) & 0xff;
  out[3] = (v >> 24) & 0xff;
}

static uint32_t from_le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int put_u32(struct buf *b, uint32_t v) {
  unsigned char le[4];
  le32(le, v);
  return put(b, le, 4);
}

static int put_field(struct buf *b, const void *p, size_t n) {
  return put_u32(b, (uint32_t)n) || put(b, p, n);
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

#endif
