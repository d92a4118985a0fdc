/*
 * ctnet-init: the small privileged helper of ctnet's container runner.
 *
 * Node cannot create mount or pid namespaces for itself (unshare(CLONE_NEWNS) fails in a
 * multithreaded process, and CLONE_NEWPID only affects children), so the runner computes a plan
 * (mounts, namespaces, cgroup files, user, capabilities) and this program carries it out. It
 * makes no decisions of its own: every path comes from the command line.
 *
 *   ctnet-init run  [options] -- CMD… monitor + init (PID 1) + workload, see run_main
 *   ctnet-init exec [options] -- CMD… join a running container (namespaces and cgroup)
 *
 * Process tree of `run`:   monitor (host pid/mount ns: waits, writes the exit file, runs the
 *                          exit command)  └─ init (PID 1: reaps zombies, forwards signals)
 *                                                └─ workload (caps dropped, no_new_privs, exec)
 * Protocol: on --status-fd the monitor writes "pid <host pid of init>\n" once the workload has
 * been exec'd, or "error <message>\n" if any setup step failed, then closes it. With --wait-fd,
 * init first writes "ready\n" (network namespace made; it joins its cgroup next) and waits for "go" on that
 * fd, so the runtime can run CNI ADD against the namespace before anything of the workload runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "isolation.h"
#include "tty.h"

#define MAX_ITEMS 128

/* Docker's default capability set (moby daemon/pkg/oci/caps/defaults.go). */
static const int default_caps[] = {
    CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,     CAP_MKNOD,
    CAP_NET_RAW, CAP_SETGID,      CAP_SETUID,           CAP_SETFCAP,    CAP_SETPCAP,
    CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL,     CAP_AUDIT_WRITE,
};
static const int n_default_caps = sizeof default_caps / sizeof default_caps[0];

/* Docker's masked and read-only paths (moby oci/defaults.go), with Podman's where it masks more
   (/sys/dev/block, /sys/fs/selinux); every CPU's thermal_throttle is masked too (mask_cpu_files). */
static const char *masked_paths[] = {
    "/proc/asound", "/proc/acpi",         "/proc/interrupts", "/proc/kcore",   "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap", "/sys/dev/block", "/sys/fs/selinux", NULL,
};
static const char *readonly_paths[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL};

struct overlay { const char *lower, *upper, *work, *target; };
struct bind { const char *src, *dst; int ro; };

struct plan {
  int status_fd;
  const char *netns;             /* setns into this network namespace (NULL: keep ours) */
  const char *netns_create;      /* or make a new one, bind-mounted here (in the host mount ns) */
  int netns_remove_on_exit;      /* the monitor unmounts and removes netns_create at the end */
  int wait_fd;                   /* after "ready", wait for "go" here (the runtime runs CNI ADD) */
  const char *cgroup_procs[MAX_ITEMS]; int n_cgroup;
  const char *rootfs;            /* where the root overlay is mounted and pivoted into */
  struct overlay overlays[MAX_ITEMS]; int n_overlay;
  struct bind binds[MAX_ITEMS]; int n_bind;
  const char *hostname;
  const char *env[MAX_ITEMS * 2]; int n_env;
  const char *cwd;
  uid_t uid; gid_t gid; int set_user;
  const char *exit_file;
  const char *exit_cmd[MAX_ITEMS]; int n_exit_cmd;
  int target_pid;                /* exec: the container's init */
  int no_new_privs_off;          /* reserved for a future --privileged */
  const char *seccomp;           /* the compiled profile (runner/seccomp/profile.ts); NULL: unconfined */
  const char *seccomp_cache;     /* the BPF program made from it, kept across containers */
  const char *device_cgroup;     /* cgroup v2 dir that gets the devices program */
  struct device_rule device_rules[MAX_DEVICE_RULES]; int n_device_rules;
  int preserve_fds;              /* fds 3 .. 3+N-1 reach the workload */
  int tty;                       /* a pty of the container's devpts, relayed by the monitor (tty.c) */
  char **cmd;
};

static int err_fd = -1; /* where a failing child reports its error (CLOEXEC pipe) */

void die(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
  if (err_fd >= 0) {
    if (write(err_fd, buf, (size_t)n) < 0) { /* nothing left to tell */ }
  } else {
    fprintf(stderr, "ctnet-init: %s\n", buf);
  }
  _exit(err_fd >= 0 ? 126 : 125);
}

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("failed to open %s: %s", path, strerror(errno));
  if (write(fd, text, strlen(text)) < 0) die("failed to write %s to %s: %s", text, path, strerror(errno));
  close(fd);
}

static void mkdir_p(const char *path, mode_t mode) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, mode) < 0 && errno != EEXIST) die("failed to create directory %s: %s", tmp, strerror(errno));
    *p = '/';
  }
  if (mkdir(tmp, mode) < 0 && errno != EEXIST) die("failed to create directory %s: %s", tmp, strerror(errno));
}

/* Creates an empty file (and its parents) so that a file can be bind-mounted on it. */
static void touch(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0) return;
  char parent[4096];
  snprintf(parent, sizeof parent, "%s", path);
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) { *slash = 0; mkdir_p(parent, 0755); }
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) die("failed to create %s: %s", path, strerror(errno));
  close(fd);
}

static void do_mount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
  if (mount(src, dst, type, flags, data) < 0)
    die("failed to mount %s on %s (%s): %s", src ? src : "none", dst, type ? type : "bind", strerror(errno));
}

static void bring_lo_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("failed to open socket: %s", strerror(errno));
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) die("failed to read lo flags: %s", strerror(errno));
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) die("failed to set lo up: %s", strerror(errno));
  close(s);
}

/* ---- network namespace ----------------------------------------------------------------------- */

/*
 * As Docker does for a container with a network namespace of its own: any user may bind ports
 * below 1024 there (an image whose User is not root still serves on :80). The sysctl belongs to
 * the namespace this process is now in.
 */
static void allow_unprivileged_ports(void) {
  int fd = open("/proc/sys/net/ipv4/ip_unprivileged_port_start", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return; /* a kernel without it: nothing to relax */
  if (write(fd, "0", 1) < 0) { /* left as it is: only low ports stay root's */ }
  close(fd);
}

static void make_netns(const char *path) {
  int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) die("failed to create netns file %s: %s", path, strerror(errno));
  close(fd);
  if (unshare(CLONE_NEWNET) < 0) { unlink(path); die("failed to create network namespace: %s", strerror(errno)); }
  if (mount("/proc/self/ns/net", path, NULL, MS_BIND, NULL) < 0) {
    int e = errno;
    unlink(path);
    die("failed to bind-mount network namespace on %s: %s", path, strerror(e));
  }
  bring_lo_up();
  allow_unprivileged_ports();
}


/* ---- isolation steps ----------------------------------------------------------------------- */

static void join_cgroups(const struct plan *p) {
  /* "0" means the writing process; everything it forks afterwards starts inside the cgroup. */
  for (int i = 0; i < p->n_cgroup; i++) write_file(p->cgroup_procs[i], "0");
}

static void join_netns(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("failed to open network namespace %s: %s", path, strerror(errno));
  if (setns(fd, CLONE_NEWNET) < 0) die("failed to join network namespace %s: %s", path, strerror(errno));
  close(fd);
}

static void path_in(char *out, size_t n, const char *root, const char *path) {
  snprintf(out, n, "%s/%s", root, path[0] == '/' ? path + 1 : path);
}

static void make_dev(const char *rootfs) {
  char dev[4096], path[4200];
  path_in(dev, sizeof dev, rootfs, "/dev");
  mkdir_p(dev, 0755);
  do_mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
  static const struct { const char *name; unsigned maj, min; } nodes[] = {
      {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
  };
  for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dev, nodes[i].name);
    if (mknod(path, S_IFCHR | 0666, makedev(nodes[i].maj, nodes[i].min)) < 0)
      die("failed to create %s: %s", path, strerror(errno));
    chmod(path, 0666); /* mknod honours the umask */
  }
  snprintf(path, sizeof path, "%s/pts", dev);
  mkdir_p(path, 0755);
  do_mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5");
  snprintf(path, sizeof path, "%s/shm", dev);
  mkdir_p(path, 01777);
  do_mount("shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
  snprintf(path, sizeof path, "%s/mqueue", dev);
  mkdir_p(path, 0755);
  do_mount("mqueue", path, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  static const struct { const char *name, *target; } links[] = {
      {"ptmx", "pts/ptmx"}, {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
      {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}, {"core", "/proc/kcore"},
  };
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dev, links[i].name);
    if (symlink(links[i].target, path) < 0) die("failed to create %s: %s", path, strerror(errno));
  }
}

static void mask_path(const char *path) {
  struct stat st;
  if (stat(path, &st) < 0) return;
  if (S_ISDIR(st.st_mode)) do_mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0");
  else do_mount("/dev/null", path, NULL, MS_BIND, NULL);
}

/* /sys/devices/system/cpu/cpu<N>/thermal_throttle for every CPU that has one. */
static void mask_cpu_files(void) {
  char path[128];
  for (int cpu = 0; cpu < 4096; cpu++) {
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d", cpu);
    if (access(path, F_OK) < 0) break;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/thermal_throttle", cpu);
    mask_path(path);
  }
}

static void setup_rootfs(const struct plan *p) {
  char path[4096];
  /* Nothing we mount from here on may propagate back to the host. */
  do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
  for (int i = 0; i < p->n_overlay; i++) {
    const struct overlay *o = &p->overlays[i];
    char opts[8192];
    snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", o->lower, o->upper, o->work);
    if (i > 0) mkdir_p(o->target, 0755);
    do_mount("overlay", o->target, "overlay", 0, opts);
  }
  for (int i = 0; i < p->n_bind; i++) {
    const struct bind *b = &p->binds[i];
    struct stat st;
    if (stat(b->src, &st) < 0) die("failed to bind %s: %s", b->src, strerror(errno));
    path_in(path, sizeof path, p->rootfs, b->dst);
    if (S_ISDIR(st.st_mode)) mkdir_p(path, 0755); else touch(path);
    do_mount(b->src, path, NULL, MS_BIND | MS_REC, NULL);
    if (b->ro) do_mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, NULL);
  }
  path_in(path, sizeof path, p->rootfs, "/proc");
  mkdir_p(path, 0555);
  do_mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  path_in(path, sizeof path, p->rootfs, "/sys");
  mkdir_p(path, 0555);
  do_mount("sysfs", path, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL);
  make_dev(p->rootfs);

  if (chdir(p->rootfs) < 0) die("failed to enter %s: %s", p->rootfs, strerror(errno));
  if (syscall(SYS_pivot_root, ".", ".") < 0) die("failed to pivot_root into %s: %s", p->rootfs, strerror(errno));
  /* The old root is now stacked under the new one: detach it, so no host mount stays visible. */
  if (umount2(".", MNT_DETACH) < 0) die("failed to detach the old root: %s", strerror(errno));
  if (chdir("/") < 0) die("failed to enter /: %s", strerror(errno));

  for (int i = 0; masked_paths[i]; i++) mask_path(masked_paths[i]);
  mask_cpu_files();
  for (int i = 0; readonly_paths[i]; i++) {
    struct stat st;
    if (stat(readonly_paths[i], &st) < 0) continue;
    do_mount(readonly_paths[i], readonly_paths[i], NULL, MS_BIND | MS_REC, NULL);
    do_mount(NULL, readonly_paths[i], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  }
}


/* no_new_privs, bounding set, user, then the capability sets (root keeps Docker's default set). */
static void drop_privileges(const struct plan *p) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("failed to set no_new_privs: %s", strerror(errno));
  drop_bounding_set(default_caps, n_default_caps);
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (p->set_user) {
    gid_t groups[1] = {p->gid};
    if (setgroups(1, groups) < 0) die("failed to set groups: %s", strerror(errno));
    if (setgid(p->gid) < 0) die("failed to set gid %u: %s", p->gid, strerror(errno));
    if (setuid(p->uid) < 0) die("failed to set uid %u: %s", p->uid, strerror(errno));
  }
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (!p->set_user || p->uid == 0) {
    for (size_t i = 0; i < sizeof default_caps / sizeof default_caps[0]; i++) {
      int c = default_caps[i];
      data[c / 32].effective |= 1u << (c % 32);
      data[c / 32].permitted |= 1u << (c % 32);
    }
  }
  if (syscall(SYS_capset, &hdr, data) < 0) die("failed to set capabilities: %s", strerror(errno));
}

static char *lookup_env(const struct plan *p, const char *name) {
  size_t n = strlen(name);
  for (int i = 0; i < p->n_env; i++)
    if (strncmp(p->env[i], name, n) == 0 && p->env[i][n] == '=') return (char *)p->env[i] + n + 1;
  return NULL;
}

/* execvpe with the container's PATH (the workload's environment, not ours). */
static void exec_workload(const struct plan *p) {
  char *envp[MAX_ITEMS * 2 + 1];
  for (int i = 0; i < p->n_env; i++) envp[i] = (char *)p->env[i];
  envp[p->n_env] = NULL;
  const char *path = lookup_env(p, "PATH");
  if (path) setenv("PATH", path, 1);
  else setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
  execvpe(p->cmd[0], p->cmd, envp);
  die("failed to exec %s: %s", p->cmd[0], strerror(errno));
}

/* Last steps before exec: only 0-2 and the preserved fds stay open, and the seccomp filter goes in. */
static void confine_workload(const struct plan *p, const struct sock_fprog *filter) {
  cloexec_from(3 + p->preserve_fds);
  if (filter) seccomp_install(filter);
}

static void enter_workdir(const struct plan *p) {
  if (!p->cwd) return;
  mkdir_p(p->cwd, 0755);
  if (chdir(p->cwd) < 0) die("failed to enter working directory %s: %s", p->cwd, strerror(errno));
}

/* ---- init: PID 1 of the container ---------------------------------------------------------- */

static volatile pid_t forward_to = -1;
static void forward_signal(int sig) {
  if (forward_to > 0) kill(forward_to, sig);
}

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM};

static void install_forwarding(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward_signal;
  sa.sa_flags = SA_RESTART;
  for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaction(forwarded[i], &sa, NULL);
}

static void reset_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaction(forwarded[i], &sa, NULL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

static int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

/* Reaps every child; returns the workload's exit code once it is gone. */
static int reap_until(pid_t workload) {
  for (;;) {
    int status;
    pid_t got = waitpid(-1, &status, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return 255;
    }
    if (got == workload) return status_code(status);
  }
}

/* ---- run ----------------------------------------------------------------------------------- */

static void report(int fd, const char *fmt, ...) {
  if (fd < 0) return;
  char buf[1200];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0 && write(fd, buf, (size_t)n) < 0) { /* the CLI went away; the container runs on */ }
}

static void write_exit_file(const char *path, int code) {
  if (!path) return;
  char tmp[4096], text[64];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  int n = snprintf(text, sizeof text, "%d\n", code);
  if (write(fd, text, (size_t)n) == n) { fsync(fd); close(fd); rename(tmp, path); }
  else close(fd);
}

static pid_t monitored = -1;
static void monitor_forward(int sig) {
  if (monitored > 0) kill(monitored, sig);
}

static int run_main(struct plan *p) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) die("failed to create pipe: %s", strerror(errno));
  int tty_sock[2] = {-1, -1}; /* init hands the pty's master to the monitor here */
  if (p->tty && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tty_sock) < 0)
    die("failed to create socketpair: %s", strerror(errno));
  /* unshare(CLONE_NEWPID) only moves our future children; we move back right after the fork,
     or the exit command (and its threads) could not be created once the container's ns is dead. */
  int own_pid_ns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
  if (own_pid_ns < 0) die("failed to open /proc/self/ns/pid: %s", strerror(errno));
  if (unshare(CLONE_NEWPID) < 0) die("failed to create pid namespace: %s", strerror(errno));
  pid_t init = fork();
  if (init < 0) die("failed to fork: %s", strerror(errno));
  if (init > 0) {
    if (setns(own_pid_ns, CLONE_NEWPID) < 0) fprintf(stderr, "ctnet-init: failed to return to our pid namespace: %s\n", strerror(errno));
    close(own_pid_ns);
  }
  if (init == 0) {
    close(pipefd[0]);
    if (p->tty) close(tty_sock[0]);
    err_fd = pipefd[1];
    if (p->netns_create) make_netns(p->netns_create);
    else if (p->netns) join_netns(p->netns);
    if (p->wait_fd >= 0) {
      /* The namespace exists: the runtime attaches networks to it, then says go (EOF: give up).
         The cgroup is joined meanwhile: the first move into a cgroup waits for an RCU grace
         period (~9 ms here), which would otherwise delay the network setup. */
      report(p->status_fd, "ready\n");
      join_cgroups(p);
      char go[4] = {0};
      ssize_t n;
      while ((n = read(p->wait_fd, go, 3)) < 0 && errno == EINTR) {}
      if (n < 2 || strncmp(go, "go", 2) != 0) die("aborted by the runtime before start");
      close(p->wait_fd);
    } else {
      join_cgroups(p);
    }
    if (p->device_cgroup) attach_device_filter(p->device_cgroup, p->device_rules, p->n_device_rules);
    struct sock_fprog filter = {0, NULL};
    if (p->seccomp) filter = seccomp_compile_cached(p->seccomp, p->seccomp_cache);
    if (p->status_fd >= 0) close(p->status_fd);
    if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC) < 0) die("failed to create namespaces: %s", strerror(errno));
    if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
      die("failed to set hostname %s: %s", p->hostname, strerror(errno));
    setup_rootfs(p);
    char slave[64] = "";
    if (p->tty) tty_create(tty_sock[1], slave, sizeof slave);
    /* The workload waits at this gate until init has dropped what it must not keep. */
    int gate[2];
    if (pipe2(gate, O_CLOEXEC) < 0) die("failed to create pipe: %s", strerror(errno));
    pid_t workload = fork();
    if (workload < 0) die("failed to fork the workload: %s", strerror(errno));
    if (workload == 0) {
      close(gate[1]);
      char go;
      if (read(gate[0], &go, 1) != 1) _exit(127); /* init failed, and said why */
      close(gate[0]);
      /* Without -t the caller's terminal (if any) stays the workload's: no session of its own. */
      if (p->tty) tty_attach(slave, p->set_user, p->uid);
      enter_workdir(p);
      drop_privileges(p);
      confine_workload(p, filter.filter ? &filter : NULL);
      exec_workload(p);
    }
    close(gate[0]);
    forward_to = workload;
    install_forwarding();
    harden_init(default_caps, n_default_caps);
    if (write(gate[1], "g", 1) != 1) die("failed to start the workload: %s", strerror(errno));
    close(gate[1]);
    close(pipefd[1]);
    /* Nothing the caller or the runtime opened stays open in the container's PID 1. */
    syscall(SYS_close_range, 3U, ~0U, 0U);
    if (filter.filter) seccomp_install(&filter);
    _exit(reap_until(workload));
  }
  close(pipefd[1]);
  monitored = init;
  int master = -1;
  if (p->tty) {
    close(tty_sock[1]);
    master = tty_receive(tty_sock[0]);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = monitor_forward;
  sa.sa_flags = SA_RESTART;
  for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaction(forwarded[i], &sa, NULL);

  char msg[1100];
  ssize_t n, total = 0;
  while ((n = read(pipefd[0], msg + total, sizeof msg - 1 - (size_t)total)) != 0) {
    if (n < 0) { if (errno == EINTR) continue; break; }
    total += n;
    if ((size_t)total >= sizeof msg - 1) break;
  }
  close(pipefd[0]);
  msg[total] = 0;
  int status = 0;
  if (total > 0) {
    report(p->status_fd, "error %s\n", msg);
    if (p->status_fd < 0) fprintf(stderr, "ctnet-init: %s\n", msg);
    while (waitpid(init, &status, 0) < 0 && errno == EINTR) {}
    kill(init, SIGKILL);
    if (master >= 0) close(master);
    return 127;
  }
  report(p->status_fd, "pid %d\n", init);
  if (p->status_fd >= 0) close(p->status_fd);
  if (master >= 0) tty_relay(master);
  while (waitpid(init, &status, 0) < 0) if (errno != EINTR) break;
  int code = status_code(status);
  if (p->netns_create && p->netns_remove_on_exit) {
    umount2(p->netns_create, MNT_DETACH);
    unlink(p->netns_create);
  }
  write_exit_file(p->exit_file, code);
  if (p->n_exit_cmd > 0) {
    p->exit_cmd[p->n_exit_cmd] = NULL;
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) { dup2(devnull, 0); }
    execv(p->exit_cmd[0], (char **)p->exit_cmd);
    fprintf(stderr, "ctnet-init: failed to run the exit command %s: %s\n", p->exit_cmd[0], strerror(errno));
  }
  return code;
}

/* ---- exec ---------------------------------------------------------------------------------- */

static int exec_main(struct plan *p) {
  static const struct { const char *name; int flag; } kinds[] = {
      {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET}, {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS},
  };
  int fds[5];
  char path[256];
  for (int i = 0; i < 5; i++) {
    snprintf(path, sizeof path, "/proc/%d/ns/%s", p->target_pid, kinds[i].name);
    fds[i] = open(path, O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0) die("failed to open %s: %s", path, strerror(errno));
  }
  snprintf(path, sizeof path, "/proc/%d/root", p->target_pid);
  int root = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) die("failed to open %s: %s", path, strerror(errno));
  join_cgroups(p);
  struct sock_fprog filter = {0, NULL};
  if (p->seccomp) filter = seccomp_compile_cached(p->seccomp, p->seccomp_cache);
  for (int i = 0; i < 5; i++)
    if (setns(fds[i], kinds[i].flag) < 0) die("failed to join the %s namespace of %d: %s", kinds[i].name, p->target_pid, strerror(errno));
  if (fchdir(root) < 0 || chroot(".") < 0 || chdir("/") < 0) die("failed to enter the container's root: %s", strerror(errno));
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) die("failed to create pipe: %s", strerror(errno));
  pid_t child = fork(); /* joining a pid namespace takes effect for children only */
  if (child < 0) die("failed to fork: %s", strerror(errno));
  if (child == 0) {
    close(pipefd[0]);
    err_fd = pipefd[1];
    reset_signals();
    enter_workdir(p);
    drop_privileges(p);
    confine_workload(p, filter.filter ? &filter : NULL);
    exec_workload(p);
  }
  close(pipefd[1]);
  monitored = child;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = monitor_forward;
  sa.sa_flags = SA_RESTART;
  for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaction(forwarded[i], &sa, NULL);
  char msg[1100];
  ssize_t n;
  while ((n = read(pipefd[0], msg, sizeof msg - 1)) < 0 && errno == EINTR) {}
  int status = 0;
  while (waitpid(child, &status, 0) < 0) if (errno != EINTR) break;
  if (n > 0) {
    msg[n] = 0;
    fprintf(stderr, "ctnet-init: %s\n", msg);
    return strstr(msg, "No such file") ? 127 : 126;
  }
  return status_code(status);
}

/* ---- command line ---------------------------------------------------------------------------- */

static const char *need(int argc, char **argv, int i) {
  if (i >= argc) die("option %s needs a value", argv[i - 1]);
  return argv[i];
}

static void parse(struct plan *p, int argc, char **argv, int start) {
  memset(p, 0, sizeof *p);
  p->status_fd = -1;
  p->wait_fd = -1;
  int i = start;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) { i++; break; }
#define FULL(n, max) if ((n) >= (max)) die("too many %s options", a)
    if (strcmp(a, "--status-fd") == 0) p->status_fd = atoi(need(argc, argv, ++i));
    else if (strcmp(a, "--netns") == 0) p->netns = need(argc, argv, ++i);
    else if (strcmp(a, "--netns-create") == 0) p->netns_create = need(argc, argv, ++i);
    else if (strcmp(a, "--netns-remove-on-exit") == 0) p->netns_remove_on_exit = 1;
    else if (strcmp(a, "--wait-fd") == 0) p->wait_fd = atoi(need(argc, argv, ++i));
    else if (strcmp(a, "--cgroup-procs") == 0) { FULL(p->n_cgroup, MAX_ITEMS); p->cgroup_procs[p->n_cgroup++] = need(argc, argv, ++i); }
    else if (strcmp(a, "--rootfs") == 0) p->rootfs = need(argc, argv, ++i);
    else if (strcmp(a, "--overlay") == 0) {
      FULL(p->n_overlay, MAX_ITEMS);
      struct overlay *o = &p->overlays[p->n_overlay++];
      o->lower = need(argc, argv, ++i); o->upper = need(argc, argv, ++i);
      o->work = need(argc, argv, ++i); o->target = need(argc, argv, ++i);
    } else if (strcmp(a, "--bind") == 0 || strcmp(a, "--bind-ro") == 0) {
      FULL(p->n_bind, MAX_ITEMS);
      struct bind *b = &p->binds[p->n_bind++];
      b->ro = strcmp(a, "--bind-ro") == 0;
      b->src = need(argc, argv, ++i); b->dst = need(argc, argv, ++i);
    } else if (strcmp(a, "--hostname") == 0) p->hostname = need(argc, argv, ++i);
    else if (strcmp(a, "--env") == 0) { FULL(p->n_env, MAX_ITEMS * 2); p->env[p->n_env++] = need(argc, argv, ++i); }
    else if (strcmp(a, "--cwd") == 0) p->cwd = need(argc, argv, ++i);
    else if (strcmp(a, "--user") == 0) {
      const char *u = need(argc, argv, ++i);
      p->set_user = 1;
      p->uid = (uid_t)strtoul(u, NULL, 10);
      const char *colon = strchr(u, ':');
      p->gid = colon ? (gid_t)strtoul(colon + 1, NULL, 10) : p->uid;
    } else if (strcmp(a, "--exit-file") == 0) p->exit_file = need(argc, argv, ++i);
    else if (strcmp(a, "--exit-command") == 0) { FULL(p->n_exit_cmd, MAX_ITEMS - 1); p->exit_cmd[p->n_exit_cmd++] = need(argc, argv, ++i); }
    else if (strcmp(a, "--pid") == 0) p->target_pid = atoi(need(argc, argv, ++i));
    else if (strcmp(a, "--seccomp") == 0) p->seccomp = need(argc, argv, ++i);
    else if (strcmp(a, "--seccomp-cache") == 0) p->seccomp_cache = need(argc, argv, ++i);
    else if (strcmp(a, "--device-cgroup") == 0) p->device_cgroup = need(argc, argv, ++i);
    else if (strcmp(a, "--device-allow") == 0) {
      FULL(p->n_device_rules, MAX_DEVICE_RULES);
      parse_device_rule(need(argc, argv, ++i), &p->device_rules[p->n_device_rules++]);
    } else if (strcmp(a, "--preserve-fds") == 0) p->preserve_fds = atoi(need(argc, argv, ++i));
    else if (strcmp(a, "--tty") == 0) p->tty = 1;
    else die("unknown option %s", a);
  }
  if (i >= argc) die("no command given (expected -- CMD ...)");
  p->cmd = argv + i;
}

int main(int argc, char **argv, char **envp) {
  static struct plan p;
  remember_process_args(argc, argv, envp);
  if (argc >= 2 && strcmp(argv[1], "run") == 0) {
    parse(&p, argc, argv, 2);
    if (!p.rootfs || p.n_overlay == 0) die("run needs --rootfs and at least one --overlay");
    if (p.status_fd >= 0) fcntl(p.status_fd, F_SETFD, FD_CLOEXEC);
    if (p.wait_fd >= 0) fcntl(p.wait_fd, F_SETFD, FD_CLOEXEC);
    return run_main(&p);
  }
  if (argc >= 2 && strcmp(argv[1], "exec") == 0) {
    parse(&p, argc, argv, 2);
    if (p.target_pid <= 0) die("exec needs --pid");
    return exec_main(&p);
  }
  fprintf(stderr, "usage: ctnet-init netns-create PATH | netns-delete PATH | run OPTIONS -- CMD | exec OPTIONS -- CMD\n");
  return 2;
}
