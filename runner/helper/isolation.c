/* See isolation.h. */
#define _GNU_SOURCE
#include "isolation.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- inherited descriptors ------------------------------------------------------------------ */

void cloexec_from(int first) {
  if (syscall(SYS_close_range, (unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  /* Kernels before 5.11: walk the table. */
  long max = sysconf(_SC_OPEN_MAX);
  for (long fd = first; fd < max && fd < 1 << 20; fd++) fcntl((int)fd, F_SETFD, FD_CLOEXEC);
}

/* ---- seccomp ---------------------------------------------------------------------------------- */

static uint32_t seccomp_action(const char *name, int errno_ret, const char *where) {
  if (strcmp(name, "allow") == 0) return SCMP_ACT_ALLOW;
  if (strcmp(name, "errno") == 0) return SCMP_ACT_ERRNO((uint16_t)errno_ret);
  if (strcmp(name, "kill_thread") == 0) return SCMP_ACT_KILL_THREAD;
  if (strcmp(name, "kill_process") == 0) return SCMP_ACT_KILL_PROCESS;
  if (strcmp(name, "trap") == 0) return SCMP_ACT_TRAP;
  if (strcmp(name, "log") == 0) return SCMP_ACT_LOG;
  if (strcmp(name, "trace") == 0) return SCMP_ACT_TRACE((uint16_t)errno_ret);
  die("seccomp profile %s: unknown action %s", where, name);
}

static enum scmp_compare seccomp_op(const char *name, const char *where) {
  static const struct { const char *name; enum scmp_compare op; } ops[] = {
      {"ne", SCMP_CMP_NE}, {"lt", SCMP_CMP_LT}, {"le", SCMP_CMP_LE}, {"eq", SCMP_CMP_EQ},
      {"ge", SCMP_CMP_GE}, {"gt", SCMP_CMP_GT}, {"masked_eq", SCMP_CMP_MASKED_EQ},
  };
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (strcmp(ops[i].name, name) == 0) return ops[i].op;
  die("seccomp profile %s: unknown operator %s", where, name);
}

/* One rule line: "rule ACTION ERRNO SYSCALL N [INDEX OP VALUE VALUE2]×N". Conditions on one
   argument index twice cannot be one libseccomp rule: each becomes a rule of its own (either
   matching allows), as the reference runtime does. */
static void add_rule(scmp_filter_ctx ctx, uint32_t def, char *line, const char *path) {
  char *save = NULL;
  strtok_r(line, " \n", &save);
  const char *action = strtok_r(NULL, " \n", &save);
  const char *err = strtok_r(NULL, " \n", &save);
  const char *name = strtok_r(NULL, " \n", &save);
  const char *count = strtok_r(NULL, " \n", &save);
  if (!action || !err || !name || !count) die("seccomp profile %s: malformed rule", path);
  uint32_t act = seccomp_action(action, atoi(err), path);
  if (act == def) return; /* libseccomp refuses a rule that repeats the default */
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return; /* a name this architecture does not have */
  int n = atoi(count);
  if (n < 0 || n > 6) die("seccomp profile %s: %s has %d conditions", path, name, n);
  struct scmp_arg_cmp args[6];
  int seen[6] = {0}, repeated = 0;
  for (int i = 0; i < n; i++) {
    const char *idx = strtok_r(NULL, " \n", &save), *op = strtok_r(NULL, " \n", &save);
    const char *v1 = strtok_r(NULL, " \n", &save), *v2 = strtok_r(NULL, " \n", &save);
    if (!idx || !op || !v1 || !v2) die("seccomp profile %s: malformed condition of %s", path, name);
    unsigned a = (unsigned)atoi(idx);
    if (a > 5) die("seccomp profile %s: %s compares argument %u", path, name, a);
    if (seen[a]++) repeated = 1;
    args[i] = (struct scmp_arg_cmp){a, seccomp_op(op, path), strtoull(v1, NULL, 0), strtoull(v2, NULL, 0)};
  }
  int rc = 0;
  if (!repeated) rc = seccomp_rule_add_array(ctx, act, nr, (unsigned)n, args);
  else for (int i = 0; i < n && rc == 0; i++) rc = seccomp_rule_add_array(ctx, act, nr, 1, &args[i]);
  if (rc < 0) die("seccomp profile %s: failed to add the rule for %s: %s", path, name, strerror(-rc));
}

struct sock_fprog seccomp_compile_file(const char *path) {
  FILE *f = fopen(path, "re");
  if (!f) die("failed to open seccomp profile %s: %s", path, strerror(errno));
  char line[1024];
  if (!fgets(line, sizeof line, f)) die("seccomp profile %s is empty", path);
  char action[32];
  int errno_ret = 0;
  if (sscanf(line, "default %31s %d", action, &errno_ret) != 2) die("seccomp profile %s: no default line", path);
  uint32_t def = seccomp_action(action, errno_ret, path);
  scmp_filter_ctx ctx = seccomp_init(def);
  if (!ctx) die("failed to create the seccomp filter");
  /* no_new_privs is set by us, before the filter goes in. */
  seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "arch ", 5) == 0) {
      line[strcspn(line, "\n")] = 0;
      uint32_t arch = seccomp_arch_resolve_name(line + 5);
      if (arch == 0) continue;
      int rc = seccomp_arch_add(ctx, arch);
      if (rc < 0 && rc != -EEXIST) die("seccomp profile %s: failed to add architecture %s: %s", path, line + 5, strerror(-rc));
    } else if (strncmp(line, "rule ", 5) == 0) {
      add_rule(ctx, def, line, path);
    } else if (line[0] != '\n' && line[0] != '#') {
      die("seccomp profile %s: unexpected line %s", path, line);
    }
  }
  fclose(f);
  /* Exported once, installed by init and by the workload without compiling it again. */
  int mem = memfd_create("seccomp", MFD_CLOEXEC);
  if (mem < 0) die("failed to create a memfd: %s", strerror(errno));
  int rc = seccomp_export_bpf(ctx, mem);
  if (rc < 0) die("failed to export the seccomp filter: %s", strerror(-rc));
  seccomp_release(ctx);
  off_t size = lseek(mem, 0, SEEK_END);
  struct sock_filter *code = malloc((size_t)size);
  if (!code || pread(mem, code, (size_t)size, 0) != size) die("failed to read the seccomp filter back");
  close(mem);
  return (struct sock_fprog){(unsigned short)(size / (off_t)sizeof(struct sock_filter)), code};
}

struct sock_fprog seccomp_compile_cached(const char *path, const char *cache) {
  if (!cache) return seccomp_compile_file(path);
  int fd = open(cache, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size % (off_t)sizeof(struct sock_filter) == 0 &&
      st.st_size <= (off_t)(BPF_MAXINSNS * sizeof(struct sock_filter))) {
    struct sock_filter *code = malloc((size_t)st.st_size);
    if (code && pread(fd, code, (size_t)st.st_size, 0) == st.st_size) {
      close(fd);
      return (struct sock_fprog){(unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter)), code};
    }
    free(code);
  }
  if (fd >= 0) close(fd);
  struct sock_fprog prog = seccomp_compile_file(path);
  /* Written whole, then renamed: a reader sees the old state or the complete program. A cache
     that cannot be written costs the next container the compile again, nothing else. */
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.%d.tmp", cache, (int)getpid());
  int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out >= 0) {
    size_t size = prog.len * sizeof(struct sock_filter);
    int ok = write(out, prog.filter, size) == (ssize_t)size && fsync(out) == 0;
    close(out);
    if (!ok || rename(tmp, cache) < 0) unlink(tmp);
  }
  return prog;
}

void seccomp_install(const struct sock_fprog *prog) {
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
    die("failed to install the seccomp filter: %s", strerror(errno));
}

/* ---- devices: cgroup v2 BPF program ------------------------------------------------------------ */

void parse_device_rule(const char *text, struct device_rule *out) {
  char type, major[16], minor[16], access[8];
  if (sscanf(text, "%c:%15[0-9*]:%15[0-9*]:%7[rwm]", &type, major, minor, access) != 4 || (type != 'c' && type != 'b'))
    die("invalid device rule %s (expected c|b:MAJOR:MINOR:rwm)", text);
  out->type = type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
  out->major = major[0] == '*' ? -1 : atoi(major);
  out->minor = minor[0] == '*' ? -1 : atoi(minor);
  out->access = 0;
  if (strchr(access, 'r')) out->access |= BPF_DEVCG_ACC_READ;
  if (strchr(access, 'w')) out->access |= BPF_DEVCG_ACC_WRITE;
  if (strchr(access, 'm')) out->access |= BPF_DEVCG_ACC_MKNOD;
}

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

/* r2 = access, r3 = type, r4 = major, r5 = minor; one block per rule that returns 1 (allow) when
   every field matches, else jumps to the next block; the end returns 0 (deny). */
static int device_program(const struct device_rule *rules, int n, struct bpf_insn *out) {
  int k = 0;
  out[k++] = INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 0, 0);
  out[k++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, 3, 2, 0, 0);
  out[k++] = INSN(BPF_ALU64 | BPF_AND | BPF_K, 3, 0, 0, 0xffff);
  out[k++] = INSN(BPF_ALU64 | BPF_RSH | BPF_K, 2, 0, 0, 16);
  out[k++] = INSN(BPF_LDX | BPF_MEM | BPF_W, 4, 1, 4, 0);
  out[k++] = INSN(BPF_LDX | BPF_MEM | BPF_W, 5, 1, 8, 0);
  for (int i = 0; i < n; i++) {
    const struct device_rule *r = &rules[i];
    int jumps[4], nj = 0;
    jumps[nj++] = k;
    out[k++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 3, 0, 0, r->type);
    out[k++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, 6, 2, 0, 0);
    out[k++] = INSN(BPF_ALU64 | BPF_AND | BPF_K, 6, 0, 0, ~r->access & 7);
    jumps[nj++] = k;
    out[k++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 6, 0, 0, 0);
    if (r->major >= 0) { jumps[nj++] = k; out[k++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 4, 0, 0, r->major); }
    if (r->minor >= 0) { jumps[nj++] = k; out[k++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 5, 0, 0, r->minor); }
    out[k++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1);
    out[k++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    for (int j = 0; j < nj; j++) out[jumps[j]].off = (short)(k - jumps[j] - 1);
  }
  out[k++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
  out[k++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  return k;
}

void attach_device_filter(const char *cgroup_dir, const struct device_rule *rules, int n) {
  struct bpf_insn insns[8 + MAX_DEVICE_RULES * 9];
  int count = device_program(rules, n, insns);
  static char log[16384];
  union bpf_attr load;
  memset(&load, 0, sizeof load);
  load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  load.insns = (uintptr_t)insns;
  load.insn_cnt = (unsigned)count;
  load.license = (uintptr_t) "Apache";
  load.log_buf = (uintptr_t)log;
  load.log_size = sizeof log;
  load.log_level = 1;
  int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
  if (prog < 0) die("failed to load the devices program: %s %s", strerror(errno), log);
  int dir = open(cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) die("failed to open cgroup %s: %s", cgroup_dir, strerror(errno));
  union bpf_attr attach;
  memset(&attach, 0, sizeof attach);
  attach.target_fd = (unsigned)dir;
  attach.attach_bpf_fd = (unsigned)prog;
  attach.attach_type = BPF_CGROUP_DEVICE;
  attach.attach_flags = BPF_F_ALLOW_MULTI;
  if (syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach) < 0)
    die("failed to attach the devices program to %s: %s", cgroup_dir, strerror(errno));
  /* The attachment holds the program for as long as the cgroup lives. */
  close(dir);
  close(prog);
}

/* ---- PID 1 -------------------------------------------------------------------------------------- */

static char *args_start, *args_end, *env_start, *env_end;

void remember_process_args(int argc, char **argv, char **envp) {
  args_start = argv[0];
  args_end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
  int n = 0;
  while (envp[n]) n++;
  env_start = n ? envp[0] : args_end;
  env_end = n ? envp[n - 1] + strlen(envp[n - 1]) + 1 : args_end;
}

static int last_cap(void) {
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return CAP_LAST_CAP;
  char buf[16] = {0};
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  return n > 0 ? atoi(buf) : CAP_LAST_CAP;
}

static int kept(const int *keep, int n_keep, int cap) {
  for (int i = 0; i < n_keep; i++)
    if (keep[i] == cap) return 1;
  return 0;
}

void drop_bounding_set(const int *keep, int n_keep) {
  int last = last_cap();
  for (int cap = 0; cap <= last; cap++)
    if (!kept(keep, n_keep, cap) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      die("failed to drop capability %d: %s", cap, strerror(errno));
}

void harden_init(const int *keep, int n_keep) {
  /* The command line named the helper's host path and the container's state dir; the
     environment was the caller's. Both go: "ctnet-init" is all that /proc/1/cmdline shows. */
  static const char name[] = "ctnet-init";
  size_t area = (size_t)(args_end - args_start);
  memset(args_start, 0, area);
  memcpy(args_start, name, sizeof name);
  /* A last byte that is not NUL makes the kernel read the arguments as a process title: up to
     the first NUL, so /proc/1/cmdline is the name alone, not the name and a run of NULs. */
  if (area > sizeof name) args_end[-1] = ' ';
  if (env_end > env_start && env_start >= args_end) memset(env_start, 0, (size_t)(env_end - env_start));
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die("failed to make init not dumpable: %s", strerror(errno));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("failed to set no_new_privs: %s", strerror(errno));
  drop_bounding_set(keep, n_keep);
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  for (int i = 0; i < n_keep; i++) {
    data[keep[i] / 32].effective |= 1u << (keep[i] % 32);
    data[keep[i] / 32].permitted |= 1u << (keep[i] % 32);
  }
  if (syscall(SYS_capset, &hdr, data) < 0) die("failed to set init's capabilities: %s", strerror(errno));
}
