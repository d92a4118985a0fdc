/*
 * The container's isolation steps that are more than a mount or a namespace: inherited
 * descriptors, the seccomp filter, the devices allow-list as a cgroup v2 BPF program, and the
 * hardening of the init that stays in the container as PID 1. ctnet-init.c calls these; the
 * runner (runner/isolation.ts) decides every value that reaches them.
 */
#ifndef CTNET_ISOLATION_H
#define CTNET_ISOLATION_H

#include <linux/filter.h>

/* Every descriptor from `first` up is closed on exec (the workload sees 0-2 and what
   --preserve-fds names). CLOEXEC, not close: a failing exec still reports through its pipe. */
void cloexec_from(int first);

/* Reads the runner's compiled profile (see runner/seccomp/profile.ts for its lines) and builds the BPF
   program once; the container's processes each install it with seccomp_install. */
struct sock_fprog seccomp_compile_file(const char *path);
/* The same through a cache: `cache` (the program libseccomp made from these very rules, named by
   the runner after their hash) is read when it exists, else written after compiling. */
struct sock_fprog seccomp_compile_cached(const char *path, const char *cache);
void seccomp_install(const struct sock_fprog *prog);

/* A devices rule "c:1:3:rwm" ('*' for any major or minor): what a cgroup v2 program allows. */
#define MAX_DEVICE_RULES 64
struct device_rule { int type; int major, minor; int access; };
void parse_device_rule(const char *text, struct device_rule *out);
/* Loads the allow-list as a BPF_CGROUP_DEVICE program and attaches it to the cgroup dir. */
void attach_device_filter(const char *cgroup_dir, const struct device_rule *rules, int n);

/* What PID 1 of the container keeps after the workload is forked: `keep` capabilities (bounding,
   permitted, effective), no_new_privs, not dumpable (its /proc entries are not the container's
   to read), and no host path in its command line or environment. */
void drop_bounding_set(const int *keep, int n_keep);
void remember_process_args(int argc, char **argv, char **envp);
void harden_init(const int *keep, int n_keep);

/* Reports a failure the way ctnet-init.c's die does (defined there). */
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif
