/*
 * What the agent's two C clients share (agent/ctnet-cni-shim.c, bin/cni/<type>; agent/ctnet-front.c,
 * bin/ctnet): reaching the agent on its abstract unix socket and speaking its API (agent/protocol.ts
 * is the reference):
 *
 *   frame     u32 length of what follows, u32 kind, payload (u32s little-endian)
 *   client    REQUEST (1): JSON {"api":1,"kind":"cni"|"run",...}; a run's carries fds 0, 1, 2 (SCM_RIGHTS)
 *             SIGNAL (2): u32 signal number
 *   agent     DECLINED (1): reason; CNI (2): u32 exit code, u32 stdout length, stdout, stderr;
 *             EXIT (3): u32 exit code
 *
 * Header-only: each program is one translation unit, compiled with -I core/c.
 */
#ifndef CTNET_WIRE_H
#define CTNET_WIRE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { FRAME_REQUEST = 1, FRAME_SIGNAL = 2 };
enum { REPLY_DECLINED = 1, REPLY_CNI = 2, REPLY_EXIT = 3 };
#define MAX_REPLY (64u << 20)

/*
 * Connects to the agent's abstract socket `name`; -1 when there is none, or when the process
 * listening is not root (SO_PEERCRED): abstract sockets have no file permissions, and any user could
 * otherwise bind the name first and pose as the agent.
 */
static int connect_agent(const char *name) {
  struct sockaddr_un addr;
  size_t n = strlen(name);
  if (n + 1 > sizeof addr.sun_path) return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path + 1, name, n); /* sun_path[0] = 0: abstract namespace; the name's exact bytes */
  if (connect(fd, (struct sockaddr *)&addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) < 0) {
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

static int puts_(struct buf *b, const char *s) {
  return put(b, s, strlen(s));
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

/* A JSON string: quotes, backslashes and control bytes escaped; other bytes as they are (UTF-8). */
static int put_json_str(struct buf *b, const char *s, size_t n) {
  if (put(b, "\"", 1)) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    char esc[8];
    if (ch == '"' || ch == '\\') {
      esc[0] = '\\';
      esc[1] = (char)ch;
      if (put(b, esc, 2)) return -1;
    } else if (ch < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", ch);
      if (put(b, esc, 6)) return -1;
    } else if (put(b, &s[i], 1)) {
      return -1;
    }
  }
  return put(b, "\"", 1);
}

/* `"env":[...]` of the entries of `envp` whose name starts with `prefix` ("" for all). */
static int put_json_env(struct buf *b, char **envp, const char *prefix) {
  size_t pn = strlen(prefix);
  int first = 1;
  if (puts_(b, "\"env\":[")) return -1;
  for (char **e = envp; *e; e++) {
    if (strncmp(*e, prefix, pn) != 0) continue;
    if ((!first && put(b, ",", 1)) || put_json_str(b, *e, strlen(*e))) return -1;
    first = 0;
  }
  return put(b, "]", 1);
}

/* A REQUEST frame around a JSON payload. */
static int request_frame(struct buf *out, const struct buf *json) {
  return put_u32(out, (uint32_t)json->len + 4) || put_u32(out, FRAME_REQUEST) || put(out, json->data, json->len);
}

static inline int write_all(int fd, const char *p, size_t n) {
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

/* Sends `p` with the descriptors `fds` attached to its first byte, then the rest. */
static int send_with_fds(int sock, const char *p, size_t n, const int *fds, int nfds) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * 3)];
    struct cmsghdr align;
  } control;
  if (nfds > 3) return -1;
  struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
  }
  /* MSG_NOSIGNAL: an agent gone meanwhile is an error to handle, not a SIGPIPE. */
  for (;;) {
    ssize_t sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += sent;
    n -= (size_t)sent;
    if (n == 0) return 0;
    iov.iov_base = (void *)p;
    iov.iov_len = n;
    msg.msg_control = NULL; /* the descriptors went with the first byte */
    msg.msg_controllen = 0;
  }
}

/* Reads exactly n bytes; 0 on success, -1 on error or end of stream (errno 0 then). */
static int read_exact(int fd, void *buf, size_t n) {
  unsigned char *p = buf;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r == 0) {
      errno = 0;
      return -1;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Reads one frame from the agent: its kind, and its payload in `payload` (malloc'd). */
static int read_frame(int fd, uint32_t *kind, struct buf *payload) {
  unsigned char head[8];
  if (read_exact(fd, head, 8)) return -1;
  uint32_t length = from_le32(head);
  if (length < 4 || length - 4 > MAX_REPLY) {
    errno = EPROTO;
    return -1;
  }
  *kind = from_le32(head + 4);
  payload->len = 0;
  size_t n = length - 4;
  if (payload->cap < n + 1) {
    char *d = realloc(payload->data, n + 1);
    if (!d) return -1;
    payload->data = d;
    payload->cap = n + 1;
  }
  if (read_exact(fd, payload->data, n)) return -1;
  payload->len = n;
  payload->data[n] = 0;
  return 0;
}

#endif
