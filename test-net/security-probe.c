/*
 * A static probe for the runner's isolation tests: each check named on the command line makes one
 * attempt and prints "NAME=ok" or "NAME=ERRNONAME", so a test compares the container's answers
 * with what Docker's defaults give.
 *
 *   security-probe CHECK...      checks: keyctl unshare-user clone-newuser clone3 personality-ok
 *                                personality-bad vsock finit-module mount sethostname sysctl-host
 *                                ptrace-me open:PATH mknod:PATH:MAJOR:MINOR connect:@ABSTRACT
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *name, long rc) {
  if (rc >= 0) printf("%s=ok\n", name);
  else printf("%s=%s\n", name, strerrorname_np(errno) ? strerrorname_np(errno) : "unknown");
}

static long clone_newuser(void) {
  long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid((pid_t)pid, NULL, 0);
  return pid;
}

/* An abstract name is bytes up to the address length: tried as the exact name and as the name
   padded with NULs to the whole sun_path (as Node binds it). */
static long connect_abstract(const char *name) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t n = strlen(name);
  if (n >= sizeof addr.sun_path) n = sizeof addr.sun_path - 1;
  memcpy(addr.sun_path + 1, name, n);
  socklen_t lengths[] = {(socklen_t)sizeof addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)};
  long rc = -1;
  for (int i = 0; i < 2 && rc < 0; i++) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) return -1;
    rc = connect(s, (struct sockaddr *)&addr, lengths[i]);
    int e = errno;
    close(s);
    errno = e;
  }
  return rc;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (int i = 1; i < argc; i++) {
    const char *c = argv[i];
    errno = 0;
    if (strcmp(c, "keyctl") == 0) report(c, syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0));
    else if (strcmp(c, "unshare-user") == 0) report(c, unshare(CLONE_NEWUSER));
    else if (strcmp(c, "clone-newuser") == 0) report(c, clone_newuser());
    else if (strcmp(c, "clone3") == 0) report(c, syscall(SYS_clone3, NULL, 0));
    else if (strcmp(c, "personality-ok") == 0) report(c, personality(0xffffffff));
    else if (strcmp(c, "personality-bad") == 0) report(c, personality(READ_IMPLIES_EXEC));
    else if (strcmp(c, "vsock") == 0) report(c, socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
    else if (strcmp(c, "finit-module") == 0) report(c, syscall(SYS_finit_module, 0, "", 0));
    else if (strcmp(c, "mount") == 0) report(c, mount("none", "/tmp", "tmpfs", 0, NULL));
    else if (strcmp(c, "sethostname") == 0) report(c, sethostname("probe", 5));
    else if (strcmp(c, "ptrace-me") == 0) report(c, ptrace(PTRACE_TRACEME, 0, NULL, NULL));
    else if (strcmp(c, "sysctl-host") == 0) {
      /* vm.swappiness: no namespace covers it, it is the host's own. The probe writes back the
         value it read, so even a broken container changes nothing. */
      char value[32] = {0};
      int fd = open("/proc/sys/vm/swappiness", O_RDONLY);
      ssize_t n = fd < 0 ? -1 : read(fd, value, sizeof value - 1);
      if (fd >= 0) close(fd);
      fd = n > 0 ? open("/proc/sys/vm/swappiness", O_WRONLY) : -1;
      report(c, fd < 0 ? -1 : write(fd, value, (size_t)n));
      if (fd >= 0) close(fd);
    } else if (strncmp(c, "mknod:", 6) == 0) {
      char path[256];
      unsigned major, minor;
      if (sscanf(c + 6, "%255[^:]:%u:%u", path, &major, &minor) != 3) printf("%s=bad-check\n", c);
      else report(c, mknod(path, S_IFCHR | 0600, makedev(major, minor)));
    } else if (strncmp(c, "open:", 5) == 0) {
      int fd = open(c + 5, O_RDWR);
      if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EISDIR)) fd = open(c + 5, O_RDONLY);
      report(c, fd);
      if (fd >= 0) close(fd);
    } else if (strncmp(c, "connect:@", 9) == 0) report(c, connect_abstract(c + 9));
    else printf("%s=unknown-check\n", c);
  }
  return 0;
}
