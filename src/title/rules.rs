//! The kernel's report formats: for each kind of report, the line that
//! starts it (`header`), what it must not be mistaken for, and the
//! formats that turn it into a title (`{N}` is the N-th capture of the
//! report pattern, then the guilty frames in order).
//!
//! Order matters twice: reports are tried in this order on each console
//! line, and within a report the format whose title pattern matches
//! earliest wins (the first listed on a tie), so specific formats come
//! before general ones.

use std::sync::LazyLock;

use regex::Regex;

use super::frames;
use super::re;

pub(super) struct Oops {
    /// A line holding this starts a report of this kind...
    pub header: &'static str,
    /// ...unless it matches one of these.
    pub suppressions: Vec<Regex>,
    pub formats: Vec<Format>,
}

pub(super) struct Format {
    pub title: Regex,
    /// The whole report's pattern (captures the title's words); when the
    /// title matches but this does not, the report is corrupted.
    pub report: Option<Regex>,
    pub fmt: &'static str,
    pub stack: Option<StackFmt>,
    /// The report has no stack trace by nature (not a sign of corruption).
    pub no_stack_trace: bool,
    /// The format only matches mangled reports.
    pub corrupted: bool,
}

/// How to find the guilty frame: `parts` are matched line by line in
/// order; a pattern part skips to the first line it matches (and yields a
/// frame when it captures one), [`Part::Stack`] reads frames until the
/// stack ends. `parts2` is tried when `parts` finds nothing.
pub(super) struct StackFmt {
    pub parts: Vec<Part>,
    pub parts2: Vec<Part>,
    pub skip: frames::Skip,
    pub extractor: fn(&[String]) -> Option<String>,
}

pub(super) enum Part {
    Re(Regex),
    Stack,
}

fn p(pattern: &str) -> Part {
    Part::Re(re(pattern))
}

/// The faulting instruction's line: x86 `RIP:`, powerpc `NIP:`, arm
/// `PC is at` / `pc :`.
const RIP: &str = r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:{{PC}} +){0,2}{{FUNC}}|(?:[0-9]+:)?0x[0-9a-f]+|(?:[0-9]+:)?{{PC}} +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))";
const CALL_TRACE: &str = r"(?:Call (?:T|t)race:)|(?:Backtrace:)";

fn rip() -> Part {
    p(RIP)
}

fn call_trace() -> Part {
    p(CALL_TRACE)
}

fn stack(parts: Vec<Part>) -> StackFmt {
    StackFmt {
        parts,
        parts2: Vec::new(),
        skip: frames::Skip::new(&[]),
        extractor: frames::first,
    }
}

/// The stack after the faulting instruction (RIP line, then the trace).
fn fault_stack() -> StackFmt {
    stack(vec![rip(), call_trace(), Part::Stack])
}

fn trace_stack() -> StackFmt {
    stack(vec![call_trace(), Part::Stack])
}

/// A WARNING's stack: after the RIP line in newer kernels (the warning
/// traps), after `Call Trace:` in older ones.
fn warning_stack(skip: &[&str]) -> StackFmt {
    stack(vec![
        p(&format!("(?:{RIP}|--- interrupt: [0-9]+ at {{{{FUNC}}}})")),
        Part::Stack,
    ])
    .parts2(vec![call_trace(), Part::Stack])
    .skip(skip)
}

impl StackFmt {
    fn parts2(mut self, parts: Vec<Part>) -> Self {
        self.parts2 = parts;
        self
    }

    fn skip(mut self, extra: &[&str]) -> Self {
        self.skip = frames::Skip::new(extra);
        self
    }

    fn extractor(mut self, f: fn(&[String]) -> Option<String>) -> Self {
        self.extractor = f;
        self
    }
}

fn f(title: &str, fmt: &'static str) -> Format {
    Format {
        title: re(title),
        report: None,
        fmt,
        stack: None,
        no_stack_trace: false,
        corrupted: false,
    }
}

impl Format {
    fn report(mut self, pattern: &str) -> Self {
        self.report = Some(re(pattern));
        self
    }

    fn stack(mut self, s: StackFmt) -> Self {
        self.stack = Some(s);
        self
    }

    fn no_stack(mut self) -> Self {
        self.no_stack_trace = true;
        self
    }

    fn corrupted(mut self) -> Self {
        self.corrupted = true;
        self
    }
}

fn oops(header: &'static str, formats: Vec<Format>, suppressions: &[&str]) -> Oops {
    Oops {
        header,
        suppressions: suppressions.iter().map(|s| re(s)).collect(),
        formats,
    }
}

pub(super) static OOPSES: LazyLock<Vec<Oops>> = LazyLock::new(|| {
    let mut all = vec![bug(), warning(), info()];
    all.extend(faults());
    all.extend(panics());
    all.extend(others());
    all
});

/// Any report's header: most console lines hold none, and one search
/// tells (instead of one per report kind).
pub(super) static ANY_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    let headers: Vec<String> = OOPSES.iter().map(|o| regex::escape(o.header)).collect();
    re(&headers.join("|"))
});

/// Crypto algorithms compute on what their callers hand them: uninit
/// data found inside them is the caller's bug.
const CRYPTO_INTERNALS: &str = "^(?:crypto_|cipher_|aes|xts_|ecb_|cbc_|ctr_|gcm_|drbg_|rng_)";

fn bug() -> Oops {
    let kasan_access = r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}(?:.*\n)+?.*(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)";
    let kasan_free = r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in {{FUNC}}";
    let kmsan_stack = || {
        stack(vec![
            Part::Stack,
            p("(Local variable .* created at:|Uninit was created at:)"),
            Part::Stack,
        ])
    };
    let kfence_stack = || stack(vec![p(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}"), Part::Stack]);
    oops(
        "BUG:",
        vec![
            f("BUG: KASAN:", "KASAN: {1} {3} in {4}").report(kasan_access).stack(
                stack(vec![p(r"BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}"), call_trace(), Part::Stack])
                    // KASAN_HW_TAGS reports come through the fault handler.
                    .skip(&["kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_"]),
            ),
            f("BUG: KASAN:", "KASAN: invalid-free in {2}")
                .report(kasan_free)
                .stack(stack(vec![p(kasan_free), call_trace(), Part::Stack]).skip(&["slab_", "kfree", "vunmap", "vfree"])),
            f(r"BUG: KASAN: ([a-z\-]+) on address(?:.*\n)+?.*(Read|Write) of size ([0-9]+)", "KASAN: {1} {2}"),
            f("BUG: KASAN: (.*)", "KASAN: {1}").corrupted(),
            f("BUG: KMSAN: kernel-usb-infoleak", "KMSAN: kernel-usb-infoleak in {2}")
                .report("BUG: KMSAN: kernel-usb-infoleak in {{FUNC}}")
                .stack(kmsan_stack().skip(&[
                    "alloc_skb",
                    "usb_submit_urb",
                    "usb_start_wait_urb",
                    "usb_bulk_msg",
                    "usb_interrupt_msg",
                    "usb_control_msg",
                ]))
                .no_stack(),
            f("BUG: KMSAN:", "KMSAN: {1} in {3}")
                .report(r"BUG: KMSAN: ([a-z\-]+) in {{FUNC}}")
                .stack(kmsan_stack().skip(&["alloc_skb", "netlink_ack", "netlink_rcv_skb", "_encrypt$", CRYPTO_INTERNALS]))
                .no_stack(),
            f("BUG: KCSAN: data-race", "KCSAN: {1}").report("BUG: KCSAN: (.*)").no_stack(),
            f("BUG: KCSAN:", "KCSAN: {1}").report("BUG: KCSAN: (.*)").no_stack(),
            f(r"BUG: KFENCE: (use-after-free|out-of-bounds) ([a-z\-]+) in {{FUNC}}", "KFENCE: {1} {2} in {4}")
                .stack(kfence_stack()),
            f("BUG: KFENCE: invalid free in {{FUNC}}", "KFENCE: invalid free in {2}")
                .stack(kfence_stack())
                .no_stack(),
            f("BUG: KFENCE: invalid (read|write) in {{FUNC}}", "KFENCE: invalid {1} in {3}").stack(kfence_stack()),
            f("BUG: KFENCE: memory corruption in {{FUNC}}", "KFENCE: memory corruption in {2}")
                .stack(kfence_stack())
                .no_stack(),
            f(
                "BUG: (?:unable to handle kernel paging request|unable to handle page fault for address|Unable to handle kernel data access)",
                "BUG: unable to handle kernel paging request in {1}",
            )
            .stack(fault_stack()),
            f(
                "BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer dereference|Kernel NULL pointer dereference)",
                "BUG: unable to handle kernel NULL pointer dereference in {1}",
            )
            .stack(fault_stack()),
            // The header's second half is a separate printk that may be lost.
            f("BUG: (?:unable to handle kernel|Unable to handle kernel)", "BUG: unable to handle kernel").corrupted(),
            f(
                "BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion|bad magic|wrong owner|wrong CPU|trylock failure on UP)",
                "BUG: {1} {2} in {3}",
            )
            .stack(trace_stack().skip(&["spin_", "_lock", "_unlock"])),
            f("BUG: soft lockup", "BUG: soft lockup in {1}").stack(fault_stack().extractor(frames::stall)),
            f("BUG: .*still has locks held!", "BUG: still has locks held in {1}")
                .report(r"BUG: .*still has locks held!(?:.*\n)+?.*{{PC}} +{{FUNC}}"),
            f("BUG: scheduling while atomic", "BUG: scheduling while atomic in {1}")
                .stack(trace_stack().skip(&["schedule"])),
            f("BUG: lock held when returning to user space", "BUG: lock held when returning to user space in {1}")
                .report(r"BUG: lock held when returning to user space(?:.*\n)+?.*leaving the kernel with locks still held(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}")
                .no_stack(),
            f("BUG: bad unlock balance detected!", "BUG: bad unlock balance in {1}")
                .stack(stack(vec![p("{{PC}} +{{FUNC}}"), call_trace(), Part::Stack])),
            f("BUG: held lock freed!", "BUG: held lock freed in {1}")
                .report(r"BUG: held lock freed!(?:.*\n)+?.*{{PC}} +{{FUNC}}"),
            f("BUG: Bad rss-counter state", "BUG: Bad rss-counter state").no_stack(),
            f("BUG: non-zero nr_ptes on freeing mm", "BUG: non-zero nr_ptes on freeing mm").no_stack(),
            f("BUG: non-zero nr_pmds on freeing mm", "BUG: non-zero nr_pmds on freeing mm").no_stack(),
            // Filesystem type and block device (loop0, loop1...) would
            // split one bug into many: left out.
            f("BUG: Dentry .* still in use", "BUG: Dentry still in use in {1}")
                .report(r"BUG: Dentry .* still in use \([0-9]+\) \[(unmount) of ([^\]]+)\]"),
            // Named after who allocated the page (page_owner's stack),
            // past the page allocator.
            f("BUG: Bad page (state|cache)", "BUG: Bad page {1} in {2}").stack(
                stack(vec![p("page last allocated"), Part::Stack]).skip(&[
                    "(free|put|get|update|release)_page",
                    "free_unref",
                    "^_*folio",
                    "truncate_inode_pages",
                    "page_frag_free",
                    "alloc",
                    "vmap",
                    "page_owner",
                    "get_page_from_freelist",
                    "prep_new_page",
                ]),
            ),
            f("BUG: Bad page map", "BUG: Bad page map"),
            // Newer kernels show the stalled pools' busy workers: the first
            // one's work function names the lockup.
            f("BUG: workqueue lockup", "BUG: workqueue lockup in {1}")
                .report(r"BUG: workqueue lockup(?:.*\n)+?.*Showing backtraces of busy workers in stalled worker pools:(?:.*\n)+?.*Workqueue: [^ \n]+ ([a-zA-Z0-9_]+)")
                .no_stack(),
            f("BUG: workqueue lockup", "BUG: workqueue lockup").no_stack(),
            f(
                r"BUG: Address [^ ]+ on device ([^ ]+) is missing its host route",
                "BUG: Address IPV6ADDR on device {1} is missing its host route.",
            )
            .no_stack(),
            f(
                "BUG: sleeping function called from invalid context at (.*)",
                "BUG: sleeping function called from invalid context in {2}",
            )
            .stack(trace_stack()),
            f(r"BUG: using ([a-z_]+)\(\) in preemptible", "BUG: using {1}() in preemptible code in {2}").stack(
                trace_stack().skip(&["dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu"]),
            ),
            f("BUG: workqueue leaked lock or atomic", "BUG: workqueue leaked lock or atomic in {1}")
                .report(r"BUG: workqueue leaked lock or atomic(?:.*\n)+?.*last function: ([a-zA-Z0-9_]+)\n")
                .no_stack(),
            f("BUG: memory leak", "memory leak in {1}").stack(stack(vec![p(r"backtrace(?: \(crc [0-9a-f]+\))?:"), Part::Stack]).skip(&[
                "kmemleak",
                "mmap",
                "kmem",
                "slab",
                "alloc",
                "create_object",
                "idr_get",
                "list_lru_init",
                "kasprintf",
                "kvasprintf",
                "pcpu_create",
                "strdup",
                "strndup",
                "memdup",
            ])),
            f("BUG: .*stack guard page was hit at", "BUG: stack guard page was hit in {1}")
                .stack(fault_stack().extractor(frames::stall)),
            // arm's way of reporting what amd64 reports as a locking bug.
            f("BUG: Invalid wait context", "WARNING: locking bug in {1}")
                .stack(trace_stack().skip(&["lock_sock", "release_sock"])),
            f(r"BUG:[[:space:]]*(?:\n|$)", "BUG: corrupted").corrupted(),
        ],
        &[
            "ODEBUG:",
            "Boot_DEBUG:",
            "xlog_status:",
            "DEBUG:",
            "BUG: no syscalls can create resource",
        ],
    )
}

/// A WARNING of a kind named by its header (`header`: the file and
/// function it points at) or, where WARN prints its message after the
/// header, by a message line within the next three starting with
/// `message`.
fn warning_kind(header: &str, message: &str) -> String {
    format!(r"WARNING: .*(?:{header}|\n(?:[^\n]*\n){{0,2}}{message})")
}

fn warning() -> Oops {
    oops(
        "WARNING:",
        vec![
            // The kind is in the header's file or function; in kernels
            // whose WARN prints its message after the header, also on
            // the next lines (`ODEBUG: free active ...`).
            f(&warning_kind(r"lib/debugobjects\.c.* (?:debug_print|debug_check|at)", "ODEBUG: "), "WARNING: ODEBUG bug in {1}").stack(
                warning_stack(&[
                    "debug_",
                    "rcu",
                    "hrtimer_",
                    "timer_",
                    "work_",
                    "percpu_",
                    "vunmap",
                    "vfree",
                    "__free_",
                    "debug_check",
                    "kobject_",
                ]),
            ),
            f(r"WARNING: .*mm/usercopy\.c.* (?:usercopy_warn|at)", "WARNING: bad usercopy in {1}")
                .stack(warning_stack(&["usercopy", "__check"])),
            f(r"WARNING: .*lib/kobject\.c.* (?:kobject_|at)", "WARNING: kobject bug in {1}")
                .stack(warning_stack(&["kobject_"])),
            f(r"WARNING: .*fs/proc/generic\.c.* (?:proc_register|at)", "WARNING: proc registration bug in {1}")
                .stack(warning_stack(&["proc_"])),
            f(&warning_kind(r"lib/refcount\.c.* (?:refcount_|at)", "refcount_t: "), "WARNING: refcount bug in {1}")
                .stack(warning_stack(&["refcount", "kobject_"])),
            f(r"WARNING: .*kernel/locking/lockdep\.c.*lock_", "WARNING: locking bug in {1}")
                .stack(warning_stack(&["lock_sock", "release_sock"])),
            f("WARNING: .*still has locks held!", "WARNING: still has locks held in {1}")
                .report(r"WARNING: .*still has locks held!(?:.*\n)+?.*at: {{FUNC}}"),
            f("WARNING: Nested lock was not taken", "WARNING: nested lock was not taken in {1}")
                .stack(warning_stack(&[])),
            f("WARNING: lock held when returning to user space", "WARNING: lock held when returning to user space in {1}")
                .report(r"WARNING: lock held when returning to user space(?:.*\n)+?.*leaving the kernel with locks still held(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}")
                .no_stack(),
            f(r"WARNING: .*mm/.*\.c.* k?.?malloc", "WARNING: kmalloc bug in {1}")
                .stack(warning_stack(&["kmalloc", "krealloc", "slab", "kmem"])),
            f(r"WARNING: .*mm/vmalloc.c.*__vmalloc_node", "WARNING: zero-size vmalloc in {1}")
                .stack(warning_stack(&[])),
            f("WARNING: .* usb_submit_urb", "WARNING in {1}/usb_submit_urb").stack(warning_stack(&[
                "usb_submit_urb",
                "usb_start_wait_urb",
                "usb_bulk_msg",
                "usb_interrupt_msg",
                "usb_control_msg",
            ])),
            f("WARNING: .* at {{SRC}} {{FUNC}}", "WARNING in {3}").stack(warning_stack(&[])),
            // Newer kernels: `WARNING: [cond] file.c:LINE at func, CPU: ...`.
            f(r"WARNING: (?:\[.*\] )?{{SRC}} at ([a-zA-Z0-9_]+)", "WARNING in {3}").stack(warning_stack(&[])),
            // Kernels without CONFIG_DEBUG_BUGVERBOSE name no file.
            f(r"WARNING: CPU: [0-9]+ PID: [0-9]+ at {{FUNC}}", "WARNING in {2}").stack(warning_stack(&[])),
            f("WARNING: possible circular locking dependency detected", "possible deadlock in {1}")
                .report(r"WARNING: possible circular locking dependency detected(?:.*\n)+?.*is trying to acquire lock")
                .stack(
                    stack(vec![p("at: (?:{{PC}} +)?{{FUNC}}"), p("at: (?:{{PC}} +)?{{FUNC}}"), Part::Stack])
                        // Locks of work items: the workqueue is not the bug.
                        .skip(&["process_one_work", "flush_workqueue", "drain_workqueue", "destroy_workqueue"]),
                ),
            f("WARNING: possible irq lock inversion dependency detected", "possible deadlock in {1}")
                .report(r"WARNING: possible irq lock inversion dependency detected(?:.*\n)+?.*just changed the state of lock(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}"),
            f("WARNING: .*-safe -> .*-unsafe lock order detected", "possible deadlock in {1}")
                .stack(stack(vec![p("which became (?:.*) at:"), Part::Stack])),
            f("WARNING: possible recursive locking detected", "possible deadlock in {1}")
                .report(r"WARNING: possible recursive locking detected(?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}"),
            f("WARNING: inconsistent lock state", "inconsistent lock state in {2}")
                .report(r"WARNING: inconsistent lock state(?:.*\n)+?.*takes(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}")
                .stack(trace_stack()),
            f("WARNING: suspicious RCU usage", "WARNING: suspicious RCU usage in {2}")
                .report(r"WARNING: suspicious RCU usage(?:.*\n)+?.*?{{SRC}}")
                .stack(trace_stack().skip(&["rcu", "kmem", "slab"])),
            f(
                "WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value",
                "WARNING: kernel stack regs has bad '{1}' value",
            )
            .no_stack(),
            f(
                "WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value",
                "WARNING: kernel stack frame pointer has bad value",
            )
            .no_stack(),
            f("WARNING: bad unlock balance detected!", "WARNING: bad unlock balance in {1}")
                .stack(stack(vec![p("{{PC}} +{{FUNC}}"), call_trace(), Part::Stack])),
            f("WARNING: held lock freed!", "WARNING: held lock freed in {1}")
                .report(r"WARNING: held lock freed!(?:.*\n)+?.*at:(?: {{PC}})? +{{FUNC}}"),
            f("WARNING: kernel stack regs .* has bad 'bp' value", "WARNING: kernel stack regs has bad value").no_stack(),
            f("WARNING: kernel stack frame pointer .* has bad value", "WARNING: kernel stack regs has bad value")
                .no_stack(),
            f(r"WARNING:[[:space:]]*(?:\n|$)", "WARNING: corrupted").corrupted(),
        ],
        &[
            "WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
            "WARNING: workqueue cpumask: online intersect > possible intersect",
            // Also when the console cut the line short.
            "WARNING: [Tt]he mand mount option",
            r"WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1",
            // Spectre notices: "... with eIBRS", "..., data leaks possible via
            // Spectre v2 BHB attacks!".
            "WARNING: Unprivileged eBPF is enabled",
            r"WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size",
            "WARNING: See https.* for mitigation options.",
            "WARNING: kernel not compiled with CPU_SRSO",
            // Deprecation notices and filesystem repair messages.
            "(?i)uses deprecated v2 capabilities",
            "(?i)uses wireless extensions",
            r"(?i)XFS \(.*\): WARNING",
            // ext4's own messages (`__ext4_msg`) may say "warning".
            r"EXT4-[Ff][Ss](?: \(.*\))?:",
        ],
    )
}

fn info() -> Oops {
    let lockdep =
        |what: &str, then: &str| format!(r"INFO: {what} \](?:.*\n)+?.*{then}(?:.*\n)+?.*at: {{{{PC}}}} +{{{{FUNC}}}}");
    oops(
        "INFO:",
        vec![
            f(
                "INFO: possible circular locking dependency detected",
                "possible deadlock in {1}",
            )
            .report(&lockdep(
                "possible circular locking dependency detected",
                "is trying to acquire lock",
            )),
            f(
                "INFO: possible irq lock inversion dependency detected",
                "possible deadlock in {1}",
            )
            .report(&lockdep(
                "possible irq lock inversion dependency detected",
                "just changed the state of lock",
            )),
            f(
                "INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected",
                "possible deadlock in {1}",
            )
            .report(&lockdep(
                "SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected",
                "is trying to acquire",
            )),
            f("INFO: possible recursive locking detected", "possible deadlock in {1}").report(&lockdep(
                "possible recursive locking detected",
                "is trying to acquire lock",
            )),
            f("INFO: inconsistent lock state", "inconsistent lock state in {1}")
                .report(&lockdep("inconsistent lock state", "takes")),
            f(
                "INFO: rcu_(?:preempt|sched|bh) (?:self-)?detected(?: expedited)? stall",
                "INFO: rcu detected stall in {1}",
            )
            .stack(
                stack(vec![p("apic_timer_interrupt"), rip(), Part::Stack])
                    .parts2(vec![
                        p("(?:apic_timer_interrupt|Exception stack|el1h_64_irq)"),
                        Part::Stack,
                    ])
                    .skip(&["apic_timer_interrupt", "rcu"])
                    .extractor(frames::stall),
            ),
            // RCU Tasks flavours name the stalled tasks and show their
            // stacks (no interrupt frame): named like an RCU stall, after
            // the frame above where the task's work was dispatched.
            f(
                "INFO: rcu_tasks(?:_trace|_rude)? detected stalls? on tasks",
                "INFO: rcu detected stall in {1}",
            )
            .stack(
                trace_stack()
                    .skip(&["schedule", "preempt", "rcu", "apic_timer_interrupt"])
                    .extractor(frames::stall),
            ),
            f(
                "INFO: trying to register non-static key",
                "INFO: trying to register non-static key in {1}",
            )
            .stack(trace_stack().skip(&["stack", "lock", "IRQ"])),
            f("INFO: suspicious RCU usage", "INFO: suspicious RCU usage in {2}")
                .report(r"INFO: suspicious RCU usage(?:.*\n)+?.*?{{SRC}}")
                .stack(trace_stack().skip(&["rcu", "kmem", "slab"])),
            f(
                // Newer kernels tell a task waiting for I/O apart; a task
                // name with a line break in it spans two lines.
                r"INFO: task [^\n]*(?:\n[^\n]*)? blocked (?:in I/O wait )?for more than [0-9]+ seconds",
                "INFO: task hung in {1}",
            )
            .stack(trace_stack().extractor(frames::hung_task)),
            f(
                "INFO: task .* can't die for more than .* seconds",
                "INFO: task can't die in {1}",
            )
            .stack(trace_stack().skip(&["schedule"])),
            // What is left of a mangled old-style KASAN report.
            f("INFO: (Freed|Allocated) in (.*)", "INFO: {1} in {2}").corrupted(),
            f(r"INFO:[[:space:]]*(?:\n|$)", "INFO: corrupted").corrupted(),
        ],
        &[
            "INFO: lockdep is turned off",
            "INFO: Stall ended before state dump start",
            "INFO: NMI handler",
            "INFO: recovery required on readonly filesystem",
            "(handler|interrupt).*took too long",
            // `INVALID BTF_INFO:NUM` and the like.
            "_INFO:",
            "INFO: sys_.* is not present in /proc/kallsyms",
            "INFO: no syscalls can create resource",
            "CAM_INFO:",
            "rmt_storage:INFO:",
        ],
    )
}

fn faults() -> Vec<Oops> {
    let simple = |header: &'static str, title: &str, fmt: &'static str, s: StackFmt| {
        oops(header, vec![f(title, fmt).stack(s)], &[])
    };
    vec![
        oops(
            "Unable to handle kernel",
            vec![f(
                "Unable to handle kernel (paging request|NULL pointer dereference|access to user memory)",
                "BUG: unable to handle kernel {1} in {2}",
            )
            .stack(fault_stack())],
            &[],
        ),
        oops(
            "general protection fault",
            vec![f("general protection fault.*:", "general protection fault in {1}").stack(fault_stack())],
            // A user-space fault, reported with the binary it happened in.
            &[r"general protection fault .* error:\d+ in "],
        ),
        simple(
            "stack segment: ",
            "stack segment: ",
            "stack segment fault in {1}",
            fault_stack(),
        ),
    ]
}

fn panics() -> Vec<Oops> {
    vec![
        oops(
            "Kernel panic",
            vec![
                f(
                    "Kernel panic - not syncing: stack-protector:",
                    "kernel panic: stack is corrupted in {1}",
                )
                .report("Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {{FUNC}}")
                .no_stack(),
                f(
                    "Kernel panic - not syncing: stack-protector:",
                    "kernel panic: stack is corrupted in {1}",
                )
                .report("Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: [a-f0-9]+")
                .stack(trace_stack().skip(&["stack_chk"])),
                f(
                    "Kernel panic - not syncing: corrupted stack end",
                    "kernel panic: corrupted stack end in {1}",
                )
                .report("Kernel panic - not syncing: corrupted stack end detected inside scheduler")
                .stack(
                    trace_stack()
                        .skip(&["schedule", "retint_kernel"])
                        .extractor(frames::stall),
                ),
                f(
                    "Kernel panic - not syncing: kernel stack overflow",
                    "kernel stack overflow in {1}",
                )
                .stack(trace_stack().skip(&["bad_stack"]).extractor(frames::stall)),
                f(
                    "Kernel panic - not syncing: Attempted to kill init!",
                    "kernel panic: Attempted to kill init!",
                ),
                f(
                    "Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+",
                    "kernel panic: Couldn't open N_TTY ldisc",
                ),
                // These follow another report: alone, its header was lost.
                f(
                    "Kernel panic - not syncing: Fatal exception",
                    "kernel panic: Fatal exception",
                )
                .corrupted(),
                f(
                    "Kernel panic - not syncing: panic_on_warn set",
                    "kernel panic: panic_on_warn set",
                )
                .corrupted(),
                f(
                    "Kernel panic - not syncing: hung_task: blocked tasks",
                    "kernel panic: hung_task: blocked tasks",
                )
                .corrupted(),
                f("Kernel panic - not syncing: (.*)", "kernel panic: {1}"),
            ],
            &[],
        ),
        oops(
            "PANIC: double fault",
            vec![f("PANIC: double fault", "PANIC: double fault in {1}").stack(stack(vec![rip()]))],
            &[],
        ),
    ]
}

fn others() -> Vec<Oops> {
    let rip_only = |header: &'static str, fmt: &'static str| {
        oops(
            header,
            vec![f(&regex::escape(header), fmt).stack(stack(vec![rip()]))],
            &[],
        )
    };
    let arm_fault = |header: &'static str, fmt: &'static str| {
        oops(header, vec![f(&regex::escape(header), fmt).stack(fault_stack())], &[])
    };
    vec![
        oops(
            "kernel BUG",
            vec![
                f("kernel BUG at mm/usercopy.c", "BUG: bad usercopy in {1}")
                    .stack(trace_stack().skip(&["usercopy", "__check"])),
                f("kernel BUG at lib/list_debug.c", "BUG: corrupted list in {1}").stack(trace_stack()),
                // skb helpers BUG_ON their callers' mistakes.
                f("kernel BUG at (.*)", "kernel BUG in {2}").stack(fault_stack().skip(&["^skb_"])),
            ],
            &[],
        ),
        oops("Kernel BUG", vec![f("Kernel BUG (.*)", "kernel BUG {1}")], &[]),
        oops(
            "BUG kmalloc-",
            vec![f("BUG kmalloc-.*: Object already free", "BUG: Object already free")],
            &[],
        ),
        rip_only("divide error:", "divide error in {1}"),
        // The spelling of kernels after the IDTENTRY conversion.
        rip_only("divide_error:", "divide error in {1}"),
        rip_only("invalid opcode:", "invalid opcode in {1}"),
        arm_fault("int3:", "int3 in {1}"),
        oops(
            "UBSAN:",
            vec![
                f("UBSAN:", "UBSAN: undefined-behaviour in {1}")
                    .report("UBSAN: Undefined behaviour in")
                    .stack(trace_stack().skip(&["ubsan", "overflow"])),
                f(
                    "UBSAN: array-index-out-of-bounds in",
                    "UBSAN: array-index-out-of-bounds in {1}",
                )
                .stack(trace_stack().skip(&["ubsan", "overflow"])),
                f("UBSAN:", "UBSAN: {1} in {2}")
                    .report("UBSAN: (.*?) in")
                    .stack(trace_stack().skip(&["ubsan", "overflow"])),
            ],
            &[],
        ),
        oops(
            "Booting the kernel.",
            vec![f("Booting the kernel.", "unexpected kernel reboot").no_stack()],
            // Boot messages echoed back by the kernel as a bad mount option.
            &["Parsing ELF|Decompressing Linux|Unknown parameter '"],
        ),
        oops(
            "unregister_netdevice: waiting for",
            vec![f(
                "unregister_netdevice: waiting for (?:.*) to become free",
                "unregister_netdevice: waiting for DEV to become free",
            )
            .no_stack()],
            &[],
        ),
        oops(
            "VFS: Close: file count is 0",
            vec![f(
                "VFS: Close: file count is 0",
                "VFS: Close: file count is zero (use-after-free)",
            )
            .no_stack()],
            &[],
        ),
        oops(
            "VFS: Busy inodes after unmount",
            vec![f(
                "VFS: Busy inodes after unmount",
                "VFS: Busy inodes after unmount (use-after-free)",
            )
            .no_stack()],
            &[],
        ),
        arm_fault("Internal error:", "Internal error in {1}"),
        arm_fault("Unhandled fault:", "Unhandled fault in {1}"),
        arm_fault("Alignment trap:", "Alignment trap in {1}"),
        oops(
            "trusty: panic",
            vec![
                f(r"trusty: panic.* ASSERT FAILED", "trusty: ASSERT FAILED: {1}")
                    .report(r"trusty: panic \(.*?\):(?: DEBUG)? ASSERT FAILED at \(.*?\): (.+)")
                    .no_stack(),
                f(r"trusty: panic.* ASSERT FAILED.*: *(.*)", "trusty: ASSERT FAILED: {1}").corrupted(),
                f("trusty: panic", "trusty: panic: {1}")
                    .report(r"trusty: panic \(.*?\): (.+)")
                    .no_stack(),
            ],
            &[],
        ),
        // Rust code's panic: the message on the next line, then the frame
        // past the panic machinery (names are demangled).
        oops(
            "rust_kernel: panicked at",
            vec![f("rust_kernel: panicked at", "{1} in {2}")
                .report(r"rust_kernel: panicked at [^\n]*\n(?:\[[^\]]*\](?:\[[^\]]*\])? )?([^\n]+)")
                .stack(trace_stack().skip(&["rust_begin_unwind", "rust_helper_BUG", "__rustc"]))],
            &[],
        ),
        // syzkaller's own failures (executor and tools).
        oops("SYZFAIL:", vec![f("SYZFAIL:(.*)", "SYZFAIL:{1}").no_stack()], &[]),
        oops("SYZFATAL:", vec![f("SYZFATAL:(.*)()", "SYZFATAL:{1}").no_stack()], &[]),
        oops(
            "panic:",
            vec![
                f(
                    "panic: Sentry detected .* stuck task",
                    "panic: Sentry detected stuck tasks",
                )
                .no_stack(),
                f("panic:(.*)", "panic:{1}").no_stack(),
            ],
            // Kernel functions (skb_panic...), paths and names that end in
            // "panic" (`.../parameters/panic: -2`), Android boot chatter:
            // a Go panic's word stands alone.
            &[r"\Spanic:", "xlog_status:", r"ddb\.onpanic:", "evtlog_status:"],
        ),
        // A Go program on the machine died (`fatal error: ...` then
        // `goroutine 1 [running]:`): the fuzzer or a tool, not the kernel.
        // Its title is suppressed (see [`super::SUPPRESSED_TITLES`]).
        oops(
            "fatal error:",
            vec![f("fatal error:", super::GO_RUNTIME_ERROR).no_stack()],
            // Sound drivers print "fatal error:"; a timer the runtime
            // could not create is the machine's state, not a crash.
            &["ALSA", "fatal error: cannot create timer"],
        ),
    ]
}
