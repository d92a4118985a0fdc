/*
 * ctnet-front: the `ctnet` command (bin/ctnet). Starting Node and loading the CLI costs 45–60 ms of
 * every command; for `ctnet run` that is a third of the whole container's life. When a runner
 * daemon (`ctnet daemon`) serves the caller's network namespace and state root, this program hands
 * `run` to it and waits for the container's exit code, as the docker CLI does with dockerd.
 * Everything else, and any `run` the daemon declines, execs the Node CLI (bin/ctnet-node beside
 * this file) with the same arguments: a command never depends on the daemon being there.
 *
 * The daemon listens on an abstract unix socket, CTNET_RUN_SOCKET "-" FNV-1a-64(state root) in hex,
 * the state root being CTNET_ROOT or, when that is unset or empty, CTNET_DEFAULT_ROOT.
 * Abstract names belong to a network namespace, so a daemon found is one whose "host" namespace is
 * the caller's. This program talks only to a daemon running as root (SO_PEERCRED); the daemon in
 * turn serves only root callers in its own mount, pid and root directory with the environment it
 * was started with (runner/daemon/server.ts), and declines anything else before doing anything.
 * It takes this process's stdout and stderr with pidfd_getfd(2) and gives them to the container.
 *
 * Wire format (little-endian u32):
 *   request:  "CTNETRUN" u32 version=1, u32 length of the rest, then u32 start time (CLOCK_MONOTONIC
 *             ms, low and high u32) and three fields, each u32 length + bytes: working directory,
 *             arguments after argv[0] (each NUL-terminated), environment (entries NUL-terminated)
 *   then:     u32 1, u32 signal: a signal this process received, for the container
 *   answers:  u32 1 (declined, nothing done) | u32 2, u32 exit code (the command is over)
 * A connection that closes without an answer ends this program with 125, Docker's code for "the
 * run command itself failed": the daemon may have done part of the command, it is not retried.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctnet-wire.h"

#ifndef CTNET_RUN_SOCKET
#error "build with -DCTNET_RUN_SOCKET=\"ctnet-run-<build id>\""
#endif

#ifndef CTNET_DEFAULT_ROOT
#define CTNET_DEFAULT_ROOT "/var/lib/ctnet"
#endif

#define MAX_REQUEST (8u << 20)

extern char **environ;

/* Runs the Node CLI in this process's place. */
static int fall_back(char **argv) {
  char self[PATH_MAX], path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n < 0) {
    fprintf(stderr, "ctnet: failed to find the ctnet program: %s\n", strerror(errno));
    return 125;
  }
  self[n] = 0;
  char *slash = strrchr(self, '/');
  if (slash) *slash = 0;
  if (snprintf(path, sizeof path, "%s/ctnet-node", slash ? self : ".") >= (int)sizeof path) return 125;
  execv(path, argv);
  fprintf(stderr, "ctnet: failed to run %s: %s\n", path, strerror(errno));
  return 125;
}

static uint64_t fnv1a64(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 0x100000001b3ull;
  }
  return h;
}

static int connect_daemon(void) {
  const char *root = getenv("CTNET_ROOT");
  if (!root || !*root) root = CTNET_DEFAULT_ROOT; /* as inspect/paths.ts ctnetRoot() */
  char name[108];
  int len = snprintf(name, sizeof name, "%s-%016llx", CTNET_RUN_SOCKET, (unsigned long long)fnv1a64(root));
  if (len < 0 || (size_t)len >= sizeof name) return -1;
  return connect_daemon_socket(name);
}

/* Reads exactly n bytes; 0 on success, -1 on error or end of stream. */
static int read_exact(int fd, unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r == 0) return -1;
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static volatile int daemon_fd = -1;
static volatile sig_atomic_t last_signal = 0;

/* Passes the signal on as a frame; one 8-byte write to a stream socket, async-signal-safe. */
static void forward_signal(int sig) {
  unsigned char frame[8];
  int saved = errno;
  last_signal = sig;
  le32(frame, 1);
  le32(frame + 4, (uint32_t)sig);
  if (daemon_fd >= 0 && write(daemon_fd, frame, sizeof frame) < 0) { /* the answer read notices */
  }
  errno = saved;
}

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

static int build_request(struct buf *req, int argc, char **argv) {
  struct buf rest = {0};
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  uint64_t ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
  struct buf args = {0}, env = {0};
  for (int i = 1; i < argc; i++)
    if (put(&args, argv[i], strlen(argv[i]) + 1)) return -1;
  for (char **e = environ; *e; e++)
    if (put(&env, *e, strlen(*e) + 1)) return -1;
  if (put_u32(&rest, (uint32_t)ms) || put_u32(&rest, (uint32_t)(ms >> 32)) || put_field(&rest, cwd, strlen(cwd)) ||
      put_field(&rest, args.data, args.len) || put_field(&rest, env.data, env.len))
    return -1;
  if (rest.len > MAX_REQUEST) return -1;
  return put(req, "CTNETRUN", 8) || put_u32(req, 1) || put_u32(req, (uint32_t)rest.len) || put(req, rest.data, rest.len);
}

int main(int argc, char **argv) {
  const char *off = getenv("CTNET_DAEMON");
  if (argc < 2 || strcmp(argv[1], "run") != 0 || (off && strcmp(off, "0") == 0)) return fall_back(argv);
  int fd = connect_daemon();
  if (fd < 0) return fall_back(argv);

  struct buf req = {0};
  if (build_request(&req, argc, argv)) {
    close(fd);
    return fall_back(argv);
  }
  signal(SIGPIPE, SIG_IGN);
  daemon_fd = fd;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaction(forwarded[i], &sa, NULL);
  if (write_all(fd, req.data, req.len) < 0) {
    /* The daemon acts only on a whole request: nothing was done, so run the command here. */
    daemon_fd = -1;
    close(fd);
    return fall_back(argv);
  }
  unsigned char answer[8];
  if (read_exact(fd, answer, 4) == 0) {
    uint32_t kind = from_le32(answer);
    if (kind == 1) {
      daemon_fd = -1;
      close(fd);
      /* Declined before anything was done: the Node CLI runs the command with the default signals. */
      sa.sa_handler = SIG_DFL;
      for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaction(forwarded[i], &sa, NULL);
      signal(SIGPIPE, SIG_DFL);
      if (last_signal) raise(last_signal); /* what arrived meanwhile was meant for this command */
      return fall_back(argv);
    }
    if (kind == 2 && read_exact(fd, answer + 4, 4) == 0) return (int)(from_le32(answer + 4) & 0xff);
  }
  fprintf(stderr, "ctnet: the ctnet daemon closed the connection before the container's end: %s\n",
          errno ? strerror(errno) : "no answer");
  return 125;
}
