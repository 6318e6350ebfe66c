/*
 * A reproducer for the real-kernel benchmark's regression, for
 * `kcache bisect --kbuild --repro` (scripts/bench-kernel.sh --maintainer-repro).
 *
 * Debian's "yama: Disable by default" sets Yama's ptrace_scope to 0: any
 * process may then PTRACE_ATTACH to another of the same user. Upstream's
 * default (1, "relational") lets a process attach only to its descendants.
 * This program observes that from inside the booted kernel, by behaviour
 * rather than by reading the sysctl: an unprivileged process tries to attach
 * to its sibling (same uid, dumpable, not a descendant). Refused with EPERM:
 * Yama guards ptrace, the kernel is good, exit 0. Allowed: the regression is
 * there, and the program crashes the kernel through /proc/sysrq-trigger so
 * the harness sees (and titles) a crash, as a syzbot reproducer would.
 * Anything else (the probe could not be set up) exits non-zero without a
 * crash: no verdict is faked.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOBODY 65534

enum { ATTACHED = 10, REFUSED = 11, PROBE_FAILED = 12 };

static void become_nobody(void)
{
	if (setgid(NOBODY) || setuid(NOBODY)) {
		perror("yama-repro: setuid");
		_exit(PROBE_FAILED);
	}
	/* A uid change clears "dumpable"; without it ptrace is refused whatever Yama says. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)) {
		perror("yama-repro: PR_SET_DUMPABLE");
		_exit(PROBE_FAILED);
	}
}

static int probe(void)
{
	int ready[2];
	char c;
	pid_t target, tracer;
	int status;

	if (pipe(ready)) {
		perror("yama-repro: pipe");
		return PROBE_FAILED;
	}
	target = fork();
	if (target == 0) {
		become_nobody();
		if (write(ready[1], "r", 1) != 1)
			_exit(PROBE_FAILED);
		for (;;)
			pause();
	}
	if (target < 0 || read(ready[0], &c, 1) != 1) {
		perror("yama-repro: target");
		return PROBE_FAILED;
	}
	tracer = fork();
	if (tracer == 0) {
		become_nobody();
		if (ptrace(PTRACE_ATTACH, target, 0, 0) == 0)
			_exit(ATTACHED);
		printf("yama-repro: PTRACE_ATTACH to sibling: %s\n", strerror(errno));
		_exit(errno == EPERM ? REFUSED : PROBE_FAILED);
	}
	if (tracer < 0 || waitpid(tracer, &status, 0) != tracer) {
		perror("yama-repro: tracer");
		return PROBE_FAILED;
	}
	kill(target, SIGKILL);
	waitpid(target, NULL, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : PROBE_FAILED;
}

int main(void)
{
	int fd;

	switch (probe()) {
	case REFUSED:
		printf("yama-repro: ptrace to a non-descendant refused: Yama is on\n");
		return 0;
	case ATTACHED:
		printf("yama-repro: ptrace to a non-descendant allowed: Yama is off, crashing\n");
		fflush(stdout);
		fd = open("/proc/sysrq-trigger", O_WRONLY);
		if (fd < 0 || write(fd, "c", 1) != 1)
			perror("yama-repro: /proc/sysrq-trigger");
		return 1;
	default:
		printf("yama-repro: the probe could not run\n");
		return 2;
	}
}
