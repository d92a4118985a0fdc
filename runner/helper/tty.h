/* The container's terminal (`run -t`): a pty of the container's own devpts, see tty.c. */
#ifndef CTNET_TTY_H
#define CTNET_TTY_H
#include <sys/types.h>

/* init, after the root is pivoted: opens a master in /dev/pts, bind-mounts its slave on
   /dev/console and hands the master to the monitor over `sock`; returns once the monitor has set
   the window size. The slave's path is written to `slave`. init keeps no copy of the master. */
void tty_create(int sock, char *slave, size_t len);
/* The workload, before it drops privileges: a session of its own with the slave as its controlling
   terminal and as fds 0, 1 and 2 (owned by `uid` when one is set, as runc does). */
void tty_attach(const char *slave, int set_user, uid_t uid);
/* The monitor: receives the master (-1 when init failed before sending it), copies the caller's
   window size onto it and lets init go on. */
int tty_receive(int sock);
/* The monitor: copies caller stdin -> master and master -> stdout until the container's last
   holder of the slave is gone; caller's terminal in raw mode meanwhile; SIGWINCH resizes. */
void tty_relay(int master);
#endif
