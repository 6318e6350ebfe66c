#!/usr/bin/env bash
# Generates a real git history of a small freestanding C "toy kernel" for
# kcache's demo and integration tests.
#
#   scripts/make-demo-repo.sh DIR
#
# The history mixes code changes (new binary), comment-only and
# documentation-only commits (same binary), a stretch where the build is
# broken, and one regression that makes the kernel report a KASAN-style
# BUG when run. Dates and authors are fixed, so the same settings always
# give the same commit ids. Settings (environment):
#   DEMO_COMMITS      total commits after the initial one   (300)
#   DEMO_REGRESSION   commit number of the regression        (211)
#   DEMO_BREAK_FROM   first commit with a broken build       (90)
#   DEMO_BREAK_TO     first commit where it builds again     (104)
#   DEMO_FLAKY        1: the bug fires only when seed%3==0   (0)
#   DEMO_AFTER_REGRESSION  kind of the commit right after the regression:
#                     code, comment or doc (default: cycle)
set -euo pipefail

dir=${1:?usage: make-demo-repo.sh DIR}
commits=${DEMO_COMMITS:-300}
regression=${DEMO_REGRESSION:-211}
break_from=${DEMO_BREAK_FROM:-90}
break_to=${DEMO_BREAK_TO:-104}
flaky=${DEMO_FLAKY:-0}
after_regression=${DEMO_AFTER_REGRESSION:-}

rm -rf "$dir"
mkdir -p "$dir/Documentation"
cd "$dir"
git init -q -b master .
git config user.name "Toy Kernel Developer"
git config user.email "toy@kernel.invalid"
git config commit.gpgsign false
export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"

cat > Makefile <<'EOF'
# The toy kernel: freestanding, static, no libc (x86_64 Linux syscalls).
CC ?= gcc
CFLAGS = -O2 -ffreestanding -fno-stack-protector -fno-asynchronous-unwind-tables \
         -fno-pie -fno-ident -Wall -Werror
SRCS = $(sort $(wildcard *.c))
vmlinux: $(SRCS) $(wildcard *.h)
	$(CC) $(CFLAGS) -nostdlib -static -no-pie -Wl,--build-id=none -o $@ $(SRCS)
EOF
cat > toy.h <<'EOF'
#ifndef TOY_H
#define TOY_H
long sys3(long n, long a, long b, long c);
void toy_write(const char *s);
void toy_exit(int code);
long toy_atol(const char *s);
int mm_init(long seed);
int sched_init(void);
int fs_init(void);
int net_init(void);
#endif
EOF
cat > entry.c <<'EOF'
#include "toy.h"

void kmain(long argc, char **argv);

__asm__(".global _start\n"
        "_start:\n"
        "  mov (%rsp), %rdi\n"
        "  lea 8(%rsp), %rsi\n"
        "  and $-16, %rsp\n"
        "  call kmain\n"
        "  hlt\n");

long sys3(long n, long a, long b, long c)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}

void toy_write(const char *s)
{
	long n = 0;
	while (s[n])
		n++;
	sys3(1, 1, (long)s, n);
}

void toy_exit(int code)
{
	sys3(60, code, 0, 0);
	for (;;)
		;
}

long toy_atol(const char *s)
{
	long v = 0;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	return v;
}

void kmain(long argc, char **argv)
{
	long seed = argc > 1 ? toy_atol(argv[1]) : 1;
	if (mm_init(seed) || sched_init() || fs_init() || net_init())
		toy_exit(2);
	toy_write("toy kernel booted\n");
	toy_exit(0);
}
EOF
cat > mm.c <<'EOF'
#include "toy.h"

#define POOL_SIZE 64
#define POOL_SLACK 0

static char pool[POOL_SIZE];

int mm_init(long seed)
{
	for (int i = 0; i < POOL_SIZE; i++)
		pool[i] = (char)(i + seed);
	return pool[0] == 127;
}
EOF
for sub in sched fs net; do
  cat > "$sub.c" <<EOF
#include "toy.h"

int ${sub}_init(void)
{
	return 0;
}
EOF
done
echo "The toy kernel." > Documentation/README.txt
git add -A
git commit -q -m "toy: initial import"

subsystems=(sched fs net mm)
commit_n() {
  local n=$1 msg=$2
  git add -A
  git commit -q -m "$msg"
}

for ((n = 1; n <= commits; n++)); do
  sub=${subsystems[$((n % 4))]}
  if ((n == regression)); then
    # The regression: an off-by-one in the allocator that KASAN catches.
    if [ "$flaky" = 1 ]; then cond='seed % 3 == 0'; else cond='1'; fi
    sed -i 's/#define POOL_SLACK 0/#define POOL_SLACK 1/' mm.c
    cat >> mm.c <<EOF

int mm_check(long seed)
{
	if (POOL_SLACK && ($cond)) {
		toy_write("BUG: KASAN: slab-out-of-bounds in mm_init\n");
		toy_exit(1);
	}
	return 0;
}
EOF
    sed -i 's/\tif (mm_init(seed) ||/\tif (mm_check(seed) || mm_init(seed) ||/' entry.c
    sed -i 's/^int mm_init(long seed);/int mm_init(long seed);\nint mm_check(long seed);/' toy.h
    commit_n "$n" "mm: grow the pool by one slot"
    continue
  fi
  if ((n == break_from)); then
    printf '\nint net_broken(void) { return undeclared_symbol; }\n' >> net.c
    commit_n "$n" "net: start the new socket layer"
    continue
  fi
  if ((n == break_to)); then
    sed -i 's/return undeclared_symbol;/return 0;/' net.c
    commit_n "$n" "net: fix the build"
    continue
  fi
  kind=$((n % 3))
  if ((n == regression + 1)) && [ -n "$after_regression" ]; then
    case $after_regression in code) kind=0 ;; comment) kind=1 ;; doc) kind=2 ;; esac
  fi
  case $kind in
    0)
      printf '\nint %s_feature_%d(int x)\n{\n\treturn x * %d + %d;\n}\n' "$sub" "$n" "$((n % 7 + 2))" "$n" >> "$sub.c"
      commit_n "$n" "$sub: add feature $n"
      ;;
    1)
      printf '/* %s: note %d about locking */\n' "$sub" "$n" >> "$sub.c"
      commit_n "$n" "$sub: comment on locking ($n)"
      ;;
    2)
      echo "Change $n: describe $sub." >> Documentation/README.txt
      commit_n "$n" "docs: describe $sub ($n)"
      ;;
  esac
done
git log --oneline | wc -l > /dev/null
