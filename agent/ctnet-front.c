/*
 * ctnet-front: the `ctnet` command (bin/ctnet). Starting Node and loading the CLI costs 45–60 ms of
 * every command; for `ctnet run` that is a third of the whole container's life. When a ctnet agent
 * (`ctnet agent`) serves the caller's network namespace, this program hands `run` to it and waits
 * for the container's exit code, as the docker CLI does with dockerd. Everything else, any `run` the
 * agent declines, and every command with CTNET_AGENT=0, execs the Node CLI (bin/ctnet-node beside
 * this file) with the same arguments: a command never depends on the agent being there.
 *
 * The agent listens on an abstract unix socket, CTNET_AGENT_SOCKET; abstract names belong to a network
 * namespace, so the agent found is the one whose "host" namespace is the caller's. This program
 * talks only to an agent running as root (SO_PEERCRED). The agent serves only root callers in its
 * own mount and pid namespaces and root directory with the ctnet environment it was started with
 * (agent/run.ts), and declines anything else before doing anything.
 *
 * The request (agent/protocol.ts; frames in core/c/ctnet-wire.h) is the command line, the working
 * directory and the environment, with this process's stdin, stdout and stderr attached as
 * descriptors: the container gets the caller's own open files, a terminal included. Signals this
 * process receives (SIGWINCH included) follow as frames. The terminal's modes are saved before the
 * request and restored when the run ends, also when the agent dies. A connection that closes without
 * an answer ends this program with 125, Docker's code for "the run command itself failed": the
 * agent may have done part of the command, it is not retried.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctnet-wire.h"

#ifndef CTNET_AGENT_SOCKET
#error "build with -DCTNET_AGENT_SOCKET=\"ctnet-agent-<build id>\""
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

static volatile int agent_fd = -1;
static volatile sig_atomic_t last_signal = 0;

/* Passes the signal on as a SIGNAL frame: one 12-byte write to a stream socket, async-signal-safe. */
static void forward_signal(int sig) {
  unsigned char frame[12];
  int saved = errno;
  last_signal = sig;
  le32(frame, 8);
  le32(frame + 4, FRAME_SIGNAL);
  le32(frame + 8, (uint32_t)sig);
  if (agent_fd >= 0 && send(agent_fd, frame, sizeof frame, MSG_NOSIGNAL) < 0) { /* the answer read notices */
  }
  errno = saved;
}

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
#define N_FORWARDED (sizeof forwarded / sizeof forwarded[0])

static int build_request(struct buf *req, int argc, char **argv) {
  struct buf json = {0};
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  unsigned long long ms = (unsigned long long)now.tv_sec * 1000u + (unsigned long long)now.tv_nsec / 1000000u;
  char started[48];
  snprintf(started, sizeof started, ",\"startedMs\":%llu,", ms);
  if (puts_(&json, "{\"api\":1,\"kind\":\"run\",\"args\":[")) return -1;
  for (int i = 1; i < argc; i++)
    if ((i > 1 && put(&json, ",", 1)) || put_json_str(&json, argv[i], strlen(argv[i]))) return -1;
  if (puts_(&json, "],\"cwd\":") || put_json_str(&json, cwd, strlen(cwd)) || puts_(&json, started) ||
      put_json_env(&json, environ, "") || put(&json, "}", 1))
    return -1;
  if (json.len > MAX_REQUEST) return -1;
  return request_frame(req, &json);
}

int main(int argc, char **argv) {
  const char *off = getenv("CTNET_AGENT");
  if (!off || !*off) off = getenv("CTNET_DAEMON");
  if (argc < 2 || strcmp(argv[1], "run") != 0 || (off && strcmp(off, "0") == 0)) return fall_back(argv);
  int fd = connect_agent(CTNET_AGENT_SOCKET);
  if (fd < 0) return fall_back(argv);

  struct buf req = {0};
  if (build_request(&req, argc, argv)) {
    close(fd);
    return fall_back(argv);
  }
  /* stdin, stdout, stderr as they are; a closed one is handed over as /dev/null. */
  int stdio[3];
  for (int i = 0; i < 3; i++) {
    stdio[i] = i;
    if (fcntl(i, F_GETFD) < 0) stdio[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (stdio[i] < 0) {
      close(fd);
      return fall_back(argv);
    }
  }
  struct termios saved_tty;
  int tty = tcgetattr(0, &saved_tty) == 0;

  /* Signals wait until the request is out (a frame must not land inside it), then go as frames. */
  sigset_t block, old;
  sigemptyset(&block);
  for (size_t i = 0; i < N_FORWARDED; i++) sigaddset(&block, forwarded[i]);
  sigprocmask(SIG_BLOCK, &block, &old);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < N_FORWARDED; i++) sigaction(forwarded[i], &sa, NULL);
  int sent = send_with_fds(fd, req.data, req.len, stdio, 3);
  agent_fd = fd;
  for (int i = 0; i < 3; i++)
    if (stdio[i] != i) close(stdio[i]);
  if (sent < 0) {
    /* The agent acts only on a whole request: nothing was done, so run the command here. */
    agent_fd = -1;
    close(fd);
    sa.sa_handler = SIG_DFL;
    for (size_t i = 0; i < N_FORWARDED; i++) sigaction(forwarded[i], &sa, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return fall_back(argv);
  }
  sigprocmask(SIG_SETMASK, &old, NULL);

  uint32_t kind;
  struct buf reply = {0};
  int got = read_frame(fd, &kind, &reply);
  agent_fd = -1;
  if (tty) tcsetattr(0, TCSADRAIN, &saved_tty);
  if (got == 0 && kind == REPLY_DECLINED) {
    close(fd);
    /* Declined before anything was done: the Node CLI runs the command with the default signals. */
    sa.sa_handler = SIG_DFL;
    for (size_t i = 0; i < N_FORWARDED; i++) sigaction(forwarded[i], &sa, NULL);
    if (last_signal && last_signal != SIGWINCH) raise(last_signal); /* what arrived meanwhile was meant for this command */
    return fall_back(argv);
  }
  if (got == 0 && kind == REPLY_EXIT && reply.len >= 4) return (int)(from_le32((unsigned char *)reply.data) & 0xff);
  fprintf(stderr, "ctnet: the ctnet agent closed the connection before the container's end: %s\n",
          errno ? strerror(errno) : "no answer");
  return 125;
}
