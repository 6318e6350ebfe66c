//! Stack traces in kernel reports: what a frame line looks like, where a
//! stack starts, which frames belong to the report machinery (skipped when
//! choosing the guilty frame), and the anchors that pick a representative
//! frame for stalls and hung tasks.

use std::sync::LazyLock;

use regex::Regex;

use super::re;

/// A frame line: x86/arm64 `  func+0x12/0x34` (maybe after one or two
/// `[<addr>]`), or arm's `[<pc>] (func) from [<pc>] (caller+0x..)`.
pub(super) static FRAME_RES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    vec![
        re(r"^ *(?:{{PC}} ){0,2}{{FUNC}}"),
        re(r"^ *{{PC}} \(([a-zA-Z0-9_.]+)\) from {{PC}} \({{FUNC}}"),
    ]
});

/// riscv's show_regs() ends with this line, and the stack follows it
/// without a header (when there is one: its absence is no corruption).
pub(super) const RISCV_STACK_START: &str = r"status: [0-9a-f]{16} badaddr: [0-9a-f]{16} cause: [0-9a-f]{16}";

/// Lines that start a stack trace (so also end the one before).
pub(super) static STACK_STARTS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r"Call (?:T|t)race",
        r"Allocated:",
        r"Allocated by task [0-9]+:",
        r"Freed:",
        r"Freed by task [0-9]+:",
        // `backtrace:` of kmemleak, not lockdep's `stack backtrace:`.
        r"[^k] backtrace(?: \(crc [0-9a-f]*\))?:",
        r"Backtrace:",
        r"Uninit was stored to memory at",
        RISCV_STACK_START,
    ]
    .iter()
    .map(|p| re(p))
    .collect()
});

pub(super) fn starts_stack(line: &str) -> bool {
    STACK_STARTS.iter().any(|r| r.is_match(line))
}

/// Fault injection prints its own stack, often in the middle of a report.
static CORRUPTING_LINE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^( \[<?(?:0x)?[0-9a-f]+>?\])? should_fail(slab)?(\.[a-z0-9.]+)?\+0x"));

pub(super) fn is_corrupting_line(line: &str) -> bool {
    CORRUPTING_LINE.is_match(line)
}

/// Frames of the machinery that reports, allocates, locks, copies or
/// prints: never the guilty frame. Matched anywhere in the function name.
pub(super) const SKIP: &[&str] = &[
    "__sanitizer",
    "__asan",
    "kasan",
    "__msan",
    "kmsan",
    "kcsan_setup_watchpoint",
    "check_memory_region",
    "check_heap_object",
    "check_object",
    "read_word_at_a_time",
    "(read|write)_once_.*nocheck",
    "print_address_description",
    "panic",
    "invalid_op",
    "report_bug",
    "fixup_bug",
    "print_report",
    "print_usage_bug",
    "do_error",
    "_trap$|do_trap",
    "show_stack",
    "dump_stack",
    "walk_stack",
    "dump_backtrace",
    "warn_slowpath",
    "warn_alloc",
    "warn_bogus",
    "__warn",
    "alloc_page",
    "k?v?(?:m|z|c)alloc",
    "krealloc",
    "kmem_cache",
    "allocate_slab",
    "folio_alloc",
    "filemap_alloc_folio",
    "__filemap_get_folio",
    "find_or_create_page",
    "do_read_cache_folio",
    "read_cache_page",
    "pagecache_get_page",
    "grab_cache_page_write_begin",
    "slab_",
    "debug_object",
    "timer_is_static_object",
    "work_is_static_object",
    "__might_fault",
    "print_unlock",
    "imbalance_bug",
    "lockdep",
    "bh_enable",
    "bh_disable",
    "perf_trace",
    "lock_acquire",
    "lock_release",
    "lock_class",
    "mark_lock",
    "(reacquire|mark)_held_locks",
    "raw_spin_rq",
    "spin_lock",
    "spin_trylock",
    "spin_unlock",
    "read_lock",
    "read_trylock",
    "write_lock",
    "write_trylock",
    "read_unlock",
    "write_unlock",
    "^down$",
    "down_read",
    "down_write",
    "down_read_trylock",
    "down_write_trylock",
    "down_trylock",
    "up_read",
    "up_write",
    "^mutex_",
    "^__mutex_",
    "^rt_mutex_",
    "owner_on_cpu",
    "osq_lock",
    "osq_unlock",
    "atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)",
    "(set|clear|change|test)_bit",
    "__wake_up",
    "^refcount_",
    "^kref_",
    "ref_tracker",
    "seqprop_assert",
    "memcpy",
    "memcmp",
    "memset",
    "memchr",
    "memmove",
    "memdup",
    "strcmp",
    "strncmp",
    "strcpy",
    "strlcpy",
    "strncpy",
    "strscpy",
    "strlen",
    "strstr",
    "strnstr",
    "strnlen",
    "strchr",
    "strdup",
    "strndup",
    "copy_to_user",
    "copy_from_user",
    "copy_to_iter",
    "copy_from_iter",
    "copy_page_to_iter",
    "copy_page_from_iter",
    "copy_folio_to_iter",
    "^copyin$",
    "^copyout$",
    "put_user",
    "get_user",
    "might_fault",
    "might_sleep",
    "list_add",
    "list_del",
    "list_replace",
    "list_move",
    "list_splice",
    "^rb_",
    "^__rb_",
    "_indirect_thunk_",
    "string",
    "pointer",
    "snprintf",
    "scnprintf",
    "kasprintf",
    "kvasprintf",
    "printk",
    "va_format",
    "dev_info",
    "dev_notice",
    "dev_warn",
    "dev_err",
    "dev_alert",
    "dev_crit",
    "dev_emerg",
    "program_check_exception",
    "program_check_common",
    "del_timer",
    "flush_work",
    "__cancel_work_timer",
    "cancel_work_sync",
    "try_to_grab_pending",
    "flush_workqueue",
    "drain_workqueue",
    "destroy_workqueue",
    "queue_work",
    "finish_wait",
    "kthread_stop",
    "kobject_",
    "add_uevent_var",
    "get_device_parent",
    "device_add",
    "device_del",
    "device_unregister",
    "device_destroy",
    "device_release",
    "devres_release_all",
    "hwrng_unregister",
    "i2c_del_adapter",
    "__unregister_client",
    "device_for_each_child",
    "rollback_registered",
    "unregister_netdev",
    "sysfs_remove",
    "device_remove_file",
    "tty_unregister_device",
    "dummy_urb_enqueue",
    "usb_kill_urb",
    "usb_kill_anchored_urbs",
    "usb_control_msg",
    "usb_hcd_submit_urb",
    "usb_submit_urb",
    "^complete$",
    "wait_for_completion",
    "^kv?free$",
    "kfree_skb",
    "readb$",
    "readw$",
    "readl$",
    "readq$",
    "writeb$",
    "writew$",
    "writel$",
    "writeq$",
    "logic_in",
    "logic_out",
    r"^crc\d+",
    "crc_itu_t",
    "__might_resched",
    "assertfail",
    "^iput$",
    "^iput_final$",
    "^ihold$",
    "hex_dump_to_buffer",
    "print_hex_dump",
    "^klist_",
    "(trace|lockdep)_(hard|soft)irq",
    "^(un)?lock_page",
    "stack_trace_consume_entry",
    "arch_stack_walk",
    "stack_trace_save",
    "insert_work",
    "__queue_delayed_work",
    "queue_delayed_work_on",
    // arm64 exception entry.
    "do_(kernel|translation)_fault",
    "do_mem_abort",
    "el1_abort",
    "el1h_64_sync(?:_handler)?",
    "print_tainted",
    "xas_(?:start|load|find)",
    "find_lock_entries",
    "truncate_inode_pages_range",
    // Helpers that check their callers' arguments.
    "fortify",
    "__phys_addr",
    "hwasan",
    "cleanup_srcu_struct",
    "alloc_frozen_pages",
    // Helpers of recent kernels that WARN, BUG or fault on their callers'
    // mistakes: page cache and folios, IDs, hash tables, scatterlists,
    // dentries, inodes, buffers, devices, timers.
    "folio_unlock",
    "ida_free",
    "rhashtable_lookup",
    "extract_(user|iter)_to_sg",
    "drop_nlink",
    "^get_taint$",
    "^put_device$",
    "lock_timer_base",
    "__timer_delete_sync",
    "sk_stop_timer_sync",
    "__mod_timer",
    "fast_dput",
    "dput",
    "mark_buffer_dirty",
    "debug_check_no_obj_freed",
    // iomap's per-folio state, checked when the page cache drops a folio.
    "^ifs_free$",
    "truncate_cleanup_folio",
];

static COMMON_SKIP: LazyLock<Regex> = LazyLock::new(|| re(&SKIP.join("|")));

/// Frames a format skips: the common list plus the format's own (compiled
/// apart: the common list is large and compiled once).
pub(super) struct Skip(Option<Regex>);

impl Skip {
    pub(super) fn new(extra: &[&str]) -> Skip {
        Skip((!extra.is_empty()).then(|| re(&extra.join("|"))))
    }

    pub(super) fn is_match(&self, frame: &str) -> bool {
        COMMON_SKIP.is_match(frame) || self.0.as_ref().is_some_and(|r| r.is_match(frame))
    }
}

/// Syscall entry wrappers differ by architecture and version; the syscall
/// is the same (`__x64_sys_sendfile64` and `SyS_sendfile64` name one
/// frame). Of these prefixes, the one that leaves the shortest name goes.
const SYSCALL_PREFIXES: &[&str] = &[
    "SYSC_",
    "SyS_",
    "sys_",
    "__x64_",
    "__ia32_",
    "__arm64_",
    "____sys_",
    "___sys_",
    "__sys_",
    "__se_",
    "__se_sys_",
    "__do_sys_",
    "compat_SYSC_",
    "compat_SyS_",
    "ksys_",
];

pub(super) fn strip_syscall_prefixes(frame: &str) -> &str {
    SYSCALL_PREFIXES
        .iter()
        .filter_map(|p| frame.strip_prefix(p))
        .filter(|f| !f.is_empty())
        .min_by_key(|f| f.len())
        .unwrap_or(frame)
}

/// A frame as people write it: Rust symbols demangled (without their
/// hash), C++ ones to their plain name (`_Z8fakeNameiii` -> `fakeName`).
pub(super) fn demangle(frame: &str) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(frame) {
        return format!("{d:#}");
    }
    if let Some(rest) = frame.strip_prefix("_Z") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Ok(len) = rest[..digits].parse::<usize>() {
            if let Some(name) = rest.get(digits..digits + len) {
                return name.to_string();
            }
        }
    }
    frame.to_string()
}

/// The first frame: the default choice.
pub(super) fn first(frames: &[String]) -> Option<String> {
    frames.first().cloned()
}

/// Where work is dispatched (syscall entry, workqueue, softirq, timers,
/// file and socket operations, page faults): a stall's representative
/// frame is the one just above the first of these, so stalls looping in
/// different places of the same call are one bug.
static STALL_ANCHORS: LazyLock<Regex> = LazyLock::new(|| {
    let anchors = [
        "process_one_work",
        "do_syscall_",
        "do_fast_syscall_",
        "sysenter_dispatch",
        "tracesys_phase2",
        "el0_svc_handler",
        "invoke_syscall",
        "ret_fast_syscall",
        "netif_receive_skb",
        "do_softirq",
        "call_timer_fn",
        "_run_timers",
        "run_timer_softirq",
        "hrtimer_run",
        "run_ksoftirqd",
        "smpboot_thread_fn",
        "^kthread$",
        "start_secondary",
        "cpu_startup_entry",
        "ret_from_fork",
        "vfs_write",
        "vfs_read",
        "vfs_iter_read",
        "vfs_iter_write",
        "do_iter_read",
        "do_iter_write",
        "call_read_iter",
        "call_write_iter",
        "new_sync_read",
        "new_sync_write",
        "vfs_ioctl",
        "ksys_ioctl",
        "compat_ioctl",
        "compat_sys_ioctl",
        "blkdev_driver_ioctl",
        "blkdev_ioctl",
        "do_iter_readv_writev",
        "^call_mmap",
        "mmap_region",
        "do_mmap",
        "do_dentry_open",
        "vfs_open",
        "^sock_sendmsg",
        "^sock_recvmsg",
        "^sock_release",
        "^__sock_release",
        "^setsockopt$",
        "kernel_setsockopt",
        "sock_common_setsockopt",
        "^listen$",
        "kernel_listen",
        "sk_common_release",
        "^sock_mmap",
        "^accept$",
        "kernel_accept",
        "^sock_do_ioctl",
        "^sock_ioctl",
        "^compat_sock_ioctl",
        "^nfnetlink_rcv_msg",
        "^rtnetlink_rcv_msg",
        "^netlink_dump",
        "^(sys_)?(socketpair|connect|ioctl)",
        "__do_fault",
        "do_page_fault",
        "^page_fault$",
        "__fput",
        "task_work_run",
        "exit_to_usermode",
        "smp_call_function",
        "tasklet_action",
        "tasklet_hi_action",
    ];
    re(&anchors.join("|"))
});

/// For stalls and lockups: the frame above the first dispatching anchor.
pub(super) fn stall(frames: &[String]) -> Option<String> {
    let mut prev = frames.first()?.as_str();
    for f in frames {
        if STALL_ANCHORS.is_match(f) {
            if f.contains("smp_call_function") {
                return Some("smp_call_function".to_string());
            }
            return Some(prev.to_string());
        }
        prev = f;
    }
    None
}

/// For hung tasks: hangs in `rtnl_lock` and in RCU synchronization are
/// grouped (the victims are many, the cause is one); otherwise the first
/// frame that is not scheduling, locking or waiting.
pub(super) fn hung_task(frames: &[String]) -> Option<String> {
    const ANCHORS: [(&str, &str); 5] = [
        ("rtnl_lock", ""),
        ("synchronize_rcu", "synchronize_rcu"),
        ("synchronize_srcu", "synchronize_rcu"),
        ("synchronize_net", "synchronize_rcu"),
        ("synchronize_sched", "synchronize_rcu"),
    ];
    for f in frames {
        for (anchor, with) in ANCHORS {
            if f.contains(anchor) {
                return Some(if with.is_empty() { f.clone() } else { with.to_string() });
            }
        }
    }
    const SKIP_HANG: [&str; 13] = [
        "sched",
        "_lock",
        "_slowlock",
        "down",
        "rwsem",
        "completion",
        "kthread",
        "wait",
        "synchronize",
        "context_switch",
        "__switch_to",
        "cancel_delayed_work",
        "rcu_barrier",
    ];
    frames
        .iter()
        .find(|f| !SKIP_HANG.iter().any(|s| f.contains(s)))
        .cloned()
}
