/*
 * kcache's init for reproducer VMs (PID 1 of the initramfs; see src/vm/mod.rs).
 *
 * Mounts what a syzkaller C reproducer expects (proc, sys, devtmpfs, a tmpfs
 * on /tmp, debugfs when the kernel has it), runs /repro as root in /tmp with
 * the time budget given on the kernel command line (kcache.budget=SECONDS),
 * kills everything it left when the budget is used up, waits a moment for
 * reports the kernel prints late (a WARNING from a worker), says on the
 * console how it ended, and reboots: QEMU runs with -no-reboot, so that ends
 * the VM. A reboot works without ACPI, unlike a power-off.
 *
 * Its lines go through /dev/kmsg, the kernel's log: printed on the console
 * synchronously and in order with the kernel's own messages. A write to the
 * console tty is buffered and drained by the UART interrupt, and on an
 * overloaded TCG host the reboot came before the drain: the lines were lost.
 * The host reads these lines; their words are part of the harness:
 *   kcache-init: start budget=N
 *   kcache-init: repro exited status=N | killed signal=N | budget used up
 *   kcache-init: done
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_BUDGET 60
/* Reports the kernel prints after the reproducer ended still count. */
#define GRACE_MS 1500

static int kmsg = -1;

static void say(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	/* <2>: critical, shown whatever loglevel= the user adds. */
	n = snprintf(line, sizeof(line), "<2>kcache-init: ");
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (kmsg < 0)
		kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (kmsg >= 0 && write(kmsg, line, n) == n)
		return;
	/* No /dev/kmsg: the console tty, without the level prefix. */
	if (write(1, line + 3, n - 3) < 0)
		;
}

static void try_mount(const char *src, const char *dir, const char *type)
{
	mkdir(dir, 0755);
	if (mount(src, dir, type, 0, NULL) && errno != EBUSY)
		say("mount %s on %s: %s", type, dir, strerror(errno));
}

static long budget_from_cmdline(void)
{
	char buf[4096];
	long budget = DEFAULT_BUDGET;
	int fd = open("/proc/cmdline", O_RDONLY);
	ssize_t n;
	char *p;

	if (fd < 0)
		return budget;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return budget;
	buf[n] = 0;
	for (p = strstr(buf, "kcache.budget="); p; p = strstr(p + 1, "kcache.budget=")) {
		if (p == buf || p[-1] == ' ')
			budget = strtol(p + strlen("kcache.budget="), NULL, 10);
	}
	return budget > 0 ? budget : DEFAULT_BUDGET;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* Reaps every exited process (PID 1 inherits the reproducer's orphans);
 * returns 1 and sets *status when `repro` is among them. */
static int reap(pid_t repro, int *status)
{
	int st, found = 0;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid == repro) {
			*status = st;
			found = 1;
		}
	}
	return found;
}

int main(void)
{
	long budget, start;
	int status = 0, ended = 0;
	pid_t repro;

	try_mount("devtmpfs", "/dev", "devtmpfs");
	try_mount("proc", "/proc", "proc");
	try_mount("sysfs", "/sys", "sysfs");
	try_mount("tmpfs", "/tmp", "tmpfs");
	/* Optional: fault injection and other debug knobs live here. */
	mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	mkdir("/dev/shm", 01777);
	mount("tmpfs", "/dev/shm", "tmpfs", 0, NULL);
	setenv("PATH", "/bin:/sbin:/usr/bin:/usr/sbin", 1);
	setenv("HOME", "/tmp", 1);

	budget = budget_from_cmdline();
	say("start budget=%ld", budget);
	start = now_ms();
	repro = fork();
	if (repro == 0) {
		char *argv[] = {"/repro", NULL};

		setsid();
		if (chdir("/tmp"))
			;
		execv("/repro", argv);
		say("cannot run /repro: %s", strerror(errno));
		_exit(127);
	}
	if (repro < 0) {
		say("fork: %s", strerror(errno));
	} else {
		while (!(ended = reap(repro, &status)) && now_ms() - start < budget * 1000)
			sleep_ms(50);
		if (!ended) {
			say("budget used up");
		} else if (WIFEXITED(status)) {
			say("repro exited status=%d", WEXITSTATUS(status));
		} else if (WIFSIGNALED(status)) {
			say("repro killed signal=%d", WTERMSIG(status));
		}
	}
	/* Whatever the reproducer started goes (init itself is spared). */
	kill(-1, SIGKILL);
	sleep_ms(GRACE_MS);
	reap(0, &status);
	/* What the reproducer printed reaches the console before the reboot. */
	tcdrain(1);
	say("done");
	sync();
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}
