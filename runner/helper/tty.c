/*
 * `ctnet run -t`: the container gets a terminal of its own, a pty of the devpts instance mounted in
 * its /dev/pts (newinstance, so /dev/pts/0 is the first and the host's ptys are not visible).
 *
 * init opens /dev/ptmx once the root is pivoted, so the pty belongs to the container's devpts; the
 * master goes to the monitor (host pid and mount namespaces, out of the container's reach) over a
 * socketpair with SCM_RIGHTS before init closes every fd above 2. The monitor relays between the
 * caller's stdio and the master; the caller's terminal, when stdin is one, is put in raw mode so
 * that ^C, ^Z and ^\ reach the container's line discipline (and its foreground process group) as
 * bytes. SIGWINCH (from the terminal, or forwarded by the CLI or the agent) copies the caller's
 * window size onto the master, which signals the container's foreground process group in turn.
 */
#define _GNU_SOURCE
#include "tty.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "isolation.h" /* die */

static void send_fd(int sock, int fd) {
  char byte = 't';
  struct iovec iov = {&byte, 1};
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
  memset(&u, 0, sizeof u);
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = u.buf;
  msg.msg_controllen = sizeof u.buf;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  while (sendmsg(sock, &msg, 0) < 0)
    if (errno != EINTR) die("failed to hand over the terminal: %s", strerror(errno));
}

void tty_create(int sock, char *slave, size_t len) {
  int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) die("failed to open /dev/ptmx: %s", strerror(errno));
  if (unlockpt(master) < 0 || ptsname_r(master, slave, len) != 0) die("failed to unlock the terminal: %s", strerror(errno));
  /* /dev/console is the container's terminal too (as Docker with -t). */
  int fd = open("/dev/console", O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) close(fd);
  if (mount(slave, "/dev/console", NULL, MS_BIND, NULL) < 0) die("failed to bind %s on /dev/console: %s", slave, strerror(errno));
  send_fd(sock, master);
  close(master);
  char ack;
  ssize_t n;
  while ((n = read(sock, &ack, 1)) < 0 && errno == EINTR) {}
  if (n != 1) die("the monitor did not take the terminal");
  close(sock);
}

void tty_attach(const char *slave, int set_user, uid_t uid) {
  if (setsid() < 0) die("failed to create a session: %s", strerror(errno));
  int fd = open(slave, O_RDWR);
  if (fd < 0) die("failed to open %s: %s", slave, strerror(errno));
  if (ioctl(fd, TIOCSCTTY, 0) < 0) die("failed to make %s the controlling terminal: %s", slave, strerror(errno));
  if (set_user && fchown(fd, uid, (gid_t)-1) < 0) die("failed to give %s to uid %u: %s", slave, (unsigned)uid, strerror(errno));
  for (int i = 0; i < 3; i++)
    if (dup2(fd, i) < 0) die("failed to attach the terminal: %s", strerror(errno));
  if (fd > 2) close(fd);
}

/* The caller's window size: from stdin, else stdout (a terminal on either). */
static void copy_window_size(int master) {
  struct winsize ws;
  if (ioctl(0, TIOCGWINSZ, &ws) == 0 || ioctl(1, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
}

int tty_receive(int sock) {
  char byte;
  struct iovec iov = {&byte, 1};
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = u.buf;
  msg.msg_controllen = sizeof u.buf;
  ssize_t n;
  while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {}
  struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
  if (!c || c->cmsg_type != SCM_RIGHTS) { close(sock); return -1; } /* init failed first, and says why */
  int master;
  memcpy(&master, CMSG_DATA(c), sizeof master);
  copy_window_size(master);
  if (write(sock, "k", 1) != 1) { /* init is gone; its error pipe says why */ }
  close(sock);
  return master;
}

static volatile sig_atomic_t resized;
static void on_winch(int sig) { (void)sig; resized = 1; }

/* Writes all of buf; 0 on success. */
static int write_all(int fd, const char *buf, ssize_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, (size_t)n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) { struct pollfd p = {fd, POLLOUT, 0}; poll(&p, 1, -1); continue; }
      return -1;
    }
    buf += w; n -= w;
  }
  return 0;
}

void tty_relay(int master) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_winch; /* no SA_RESTART: poll returns and the size is copied at once */
  sigaction(SIGWINCH, &sa, NULL);
  /* A caller that closed its end must not kill the monitor (the exit file and cleanup are its job). */
  signal(SIGPIPE, SIG_IGN);
  struct termios saved;
  int raw = isatty(0) && tcgetattr(0, &saved) == 0;
  if (raw) {
    struct termios t = saved;
    cfmakeraw(&t);
    tcsetattr(0, TCSADRAIN, &t);
  }
  copy_window_size(master); /* a resize between the hand-over and now */
  int in_open = 1;
  char buf[16384];
  for (;;) {
    if (resized) { resized = 0; copy_window_size(master); }
    struct pollfd fds[2] = {{master, POLLIN, 0}, {in_open ? 0 : -1, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) { if (errno == EINTR) continue; break; }
    if (fds[0].revents) {
      ssize_t n = read(master, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break; /* EIO: no process of the container holds the terminal any more */
      if (write_all(1, buf, n) < 0) { /* the caller went away: keep draining so the container never blocks */ }
    }
    if (fds[1].revents) {
      ssize_t n = read(0, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      /* At the end of stdin the terminal stays open (as Docker's -t): the container decides when it ends. */
      if (n <= 0) { in_open = 0; continue; }
      if (write_all(master, buf, n) < 0) break;
    }
  }
  if (raw) tcsetattr(0, TCSADRAIN, &saved);
  close(master);
  signal(SIGPIPE, SIG_DFL); /* as the exit command expects it */
}
