use super::*;

#[test]
fn every_rule_compiles() {
    assert!(rules::OOPSES.len() > 20);
    assert!(!frames::FRAME_RES.is_empty());
}

#[test]
fn no_crash_in_plain_output() {
    assert_eq!(title(b""), None);
    assert_eq!(title(b"[    0.000000] Linux version 6.1\n[    1.0] ok\n"), None);
}

fn console(lines: &[&str]) -> Vec<u8> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("[  {}.{:06}][ T100] {l}\n", 10 + i, i))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn a_warning_is_named_after_the_first_frame_past_the_machinery() {
    let out = console(&[
        "------------[ cut here ]------------",
        "WARNING: CPU: 1 PID: 100 at net/core/dev.c:123 netdev_foo+0x12/0x40",
        "Modules linked in:",
        "RIP: 0010:netdev_foo+0x12/0x40",
        "Call Trace:",
        " <TASK>",
        " ? __warn+0x10/0x20",
        " register_netdevice+0x1/0x2",
        " do_syscall_64+0x1/0x2",
        " </TASK>",
    ]);
    let r = title(&out).unwrap();
    assert_eq!(r.title, "WARNING in netdev_foo");
    assert_eq!(r.class, BugClass::Warning);
    assert_eq!(r.start_line, 2);
    assert_eq!(r.frame.as_deref(), Some("netdev_foo"));
    assert!(!r.corrupted);
}

#[test]
fn a_hung_task_in_rtnl_lock_is_one_bug_whoever_waits() {
    let out = console(&[
        "INFO: task syz-executor.3:4242 blocked for more than 143 seconds.",
        "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.",
        "Call Trace:",
        " __schedule+0x1/0x2",
        " schedule+0x1/0x2",
        " __mutex_lock+0x1/0x2",
        " rtnl_lock+0x1/0x2",
        " tun_chr_close+0x1/0x2",
        " __fput+0x1/0x2",
    ]);
    assert_eq!(title(&out).unwrap().title, "INFO: task hung in rtnl_lock");
}

#[test]
fn a_stall_is_named_after_the_syscall_it_loops_in() {
    let out = console(&[
        "rcu: INFO: rcu_preempt self-detected stall on CPU",
        "Call Trace:",
        " <IRQ>",
        " rcu_sched_clock_irq+0x1/0x2",
        " apic_timer_interrupt+0x1/0x2",
        " </IRQ>",
        " RIP: 0010:find_next_bit+0x1/0x2",
        " do_sys_open+0x1/0x2",
        " __x64_sys_openat+0x1/0x2",
        " do_syscall_64+0x1/0x2",
    ]);
    assert_eq!(title(&out).unwrap().title, "INFO: rcu detected stall in sys_openat");
}

#[test]
fn numbers_and_executor_ids_become_placeholders() {
    assert_eq!(
        canonical("BUG: Bad page state in process syz-executor.3  pfn:1a2b3c4d"),
        "BUG: Bad page state in process syz-executor pfn:ADDR"
    );
    assert_eq!(
        canonical("kernel BUG at fs/inode.c:611!"),
        "kernel BUG at fs/inode.c:LINE!"
    );
}

/// A WARNING of a recent kernel whose trap is in `helper` (called from
/// `caller`), in the `WARNING: file:line at func, CPU#N: comm/pid` form.
fn warning_in_helper(helper: &str, caller: &str) -> Vec<u8> {
    console(&[
        "------------[ cut here ]------------",
        &format!("WARNING: fs/inode.c:417 at {helper}+0x1a3/0x2b0, CPU#1: syz.0.17/5840"),
        "Modules linked in:",
        "CPU: 1 UID: 0 PID: 5840 Comm: syz.0.17 Not tainted 6.18.0-syzkaller #0 PREEMPT(full)",
        "Hardware name: Google Google Compute Engine/Google Compute Engine, BIOS Google 10/02/2025",
        &format!("RIP: 0010:{helper}+0x1a3/0x2b0 fs/inode.c:417"),
        "Code: 0f 0b 90 e9 6e ff ff ff e8 b2 c5 8a ff 90 0f 0b 90 e9 5e ff ff ff",
        "RSP: 0018:ffffc9000412fb48 EFLAGS: 00010293",
        "Call Trace:",
        " <TASK>",
        &format!(" {caller}+0x2c1/0x4a0 fs/ext4/namei.c:3227"),
        " vfs_rmdir+0x520/0x670 fs/namei.c:4464",
        " do_rmdir+0x3a4/0x530 fs/namei.c:4521",
        " do_syscall_64+0xfa/0x3b0 arch/x86/entry/syscall_64.c:94",
        " entry_SYSCALL_64_after_hwframe+0x77/0x7f",
        " </TASK>",
    ])
}

#[test]
fn generic_helpers_are_never_the_guilty_frame() {
    // The helpers syzbot's titles of recent kernels would otherwise name.
    for helper in [
        "fast_dput",
        "dput",
        "folio_unlock",
        "lock_timer_base",
        "__mod_timer",
        "mark_buffer_dirty",
        "drop_nlink",
        "ida_free",
        "rhashtable_lookup_fast",
        "get_taint",
        "put_device",
        "debug_check_no_obj_freed",
        "extract_iter_to_sg",
    ] {
        let r = title(&warning_in_helper(helper, "ext4_rmdir")).unwrap();
        assert_eq!(r.title, "WARNING in ext4_rmdir", "trap in {helper}");
    }
    // A function that only contains a helper's name is its own frame.
    let r = title(&warning_in_helper("ext4_orphan_del", "ext4_rmdir")).unwrap();
    assert_eq!(r.title, "WARNING in ext4_orphan_del");
}

#[test]
fn kasan_bug_and_faults_skip_generic_helpers() {
    let kasan = console(&[
        "==================================================================",
        "BUG: KASAN: slab-use-after-free in rhashtable_lookup_fast include/linux/rhashtable.h:644 [inline]",
        "BUG: KASAN: slab-use-after-free in rhashtable_lookup_fast+0x6c4/0x6e0 include/linux/rhashtable.h:640",
        "Read of size 4 at addr ffff88802b9c1c08 by task syz.2.117/6542",
        "",
        "CPU: 0 UID: 0 PID: 6542 Comm: syz.2.117 Not tainted 6.16.0-syzkaller #0 PREEMPT(full)",
        "Call Trace:",
        " <TASK>",
        " __dump_stack lib/dump_stack.c:94 [inline]",
        " dump_stack_lvl+0x189/0x250 lib/dump_stack.c:120",
        " print_address_description mm/kasan/report.c:378 [inline]",
        " print_report+0xca/0x240 mm/kasan/report.c:482",
        " kasan_report+0x118/0x150 mm/kasan/report.c:595",
        " rhashtable_lookup_fast+0x6c4/0x6e0 include/linux/rhashtable.h:640",
        " nft_rhash_lookup+0x1c5/0x3d0 net/netfilter/nft_set_hash.c:94",
        " nft_lookup_eval+0x1a8/0x520 net/netfilter/nft_lookup.c:34",
        " </TASK>",
    ]);
    assert_eq!(
        title(&kasan).unwrap().title,
        "KASAN: slab-use-after-free Read in nft_rhash_lookup"
    );

    let bug = console(&[
        "------------[ cut here ]------------",
        "kernel BUG at mm/filemap.c:1497!",
        "Oops: invalid opcode: 0000 [#1] SMP KASAN PTI",
        "CPU: 1 UID: 0 PID: 6011 Comm: syz.1.20 Not tainted 6.15.0-syzkaller #0 PREEMPT(full)",
        "RIP: 0010:folio_unlock+0x13d/0x160 mm/filemap.c:1497",
        "Code: 89 ef e8 a5 3e 20 00 e9 15 ff ff ff e8 db 84 c6 ff 48 89 df",
        "Call Trace:",
        " <TASK>",
        " ntfs_write_end+0x4b0/0x6f0 fs/ntfs3/file.c:1160",
        " generic_perform_write+0x5e6/0x920 mm/filemap.c:4123",
        " </TASK>",
    ]);
    assert_eq!(title(&bug).unwrap().title, "kernel BUG in ntfs_write_end");

    let fault = console(&[
        "BUG: unable to handle page fault for address: ffffed100a8d7ab1",
        "#PF: supervisor read access in kernel mode",
        "#PF: error_code(0x0000) - not-present page",
        "Oops: Oops: 0000 [#1] SMP KASAN PTI",
        "CPU: 0 UID: 0 PID: 16 Comm: ksoftirqd/0 Not tainted 6.14.0-syzkaller #0",
        "RIP: 0010:lock_timer_base+0x6a/0x220 kernel/time/timer.c:1007",
        "Code: 48 c1 e8 03 42 80 3c 38 00 74 08 4c 89 e7 e8 bb 3d 7d 00 4d 8b 34 24",
        "Call Trace:",
        " <IRQ>",
        " __mod_timer+0x214/0xf20 kernel/time/timer.c:1111",
        " sk_reset_timer+0x24/0xe0 net/core/sock.c:3522",
        " tcp_send_loss_probe+0x1d4/0x9f0 net/ipv4/tcp_output.c:2960",
        " </IRQ>",
    ]);
    assert_eq!(
        title(&fault).unwrap().title,
        "BUG: unable to handle kernel paging request in sk_reset_timer"
    );
}

#[test]
fn odebug_and_refcount_kinds_said_after_a_generic_warning_line() {
    // WARN's message after the header (kernels whose WARN traps first),
    // and a header that names no file.
    let odebug = console(&[
        "------------[ cut here ]------------",
        "WARNING: CPU: 1 PID: 5840 at debug_print_object+0x1a3/0x2b0",
        "ODEBUG: free active (active state 0) object: ffff88807a2b0b38 object type: timer_list hint: hci_cmd_timeout+0x0/0x1e0",
        "Modules linked in:",
        "RIP: 0010:debug_print_object+0x1a3/0x2b0 lib/debugobjects.c:612",
        "Call Trace:",
        " <TASK>",
        " __debug_check_no_obj_freed lib/debugobjects.c:1099 [inline]",
        " debug_check_no_obj_freed+0x4b7/0x600 lib/debugobjects.c:1129",
        " slab_free_hook mm/slub.c:2284 [inline]",
        " kfree+0x2b4/0x4d0 mm/slub.c:4594",
        " hci_release_dev+0x4d9/0x600 net/bluetooth/hci_core.c:2759",
        " bt_host_release+0x83/0x90 net/bluetooth/hci_sysfs.c:94",
        " </TASK>",
    ]);
    let r = title(&odebug).unwrap();
    assert_eq!(r.title, "WARNING: ODEBUG bug in hci_release_dev");
    assert_eq!(r.class, BugClass::Warning);

    let refcount = console(&[
        "------------[ cut here ]------------",
        "WARNING: CPU: 0 PID: 9 at refcount_warn_saturate+0x13a/0x1d0",
        "refcount_t: underflow; use-after-free.",
        "Modules linked in:",
        "RIP: 0010:refcount_warn_saturate+0x13a/0x1d0 lib/refcount.c:28",
        "Call Trace:",
        " <TASK>",
        " __refcount_sub_and_test include/linux/refcount.h:400 [inline]",
        " __refcount_dec_and_test include/linux/refcount.h:432 [inline]",
        " refcount_dec_and_test include/linux/refcount.h:450 [inline]",
        " sctp_wfree+0x2b1/0x2f0 net/sctp/socket.c:9150",
        " skb_release_head_state+0xfb/0x340 net/core/skbuff.c:1139",
        " </TASK>",
    ]);
    let r = title(&refcount).unwrap();
    assert_eq!(r.title, "WARNING: refcount bug in sctp_wfree");
    assert_eq!(r.class, BugClass::Refcount);

    // The newer header, naming the file and where the trap is.
    let newer = console(&[
        "------------[ cut here ]------------",
        "WARNING: lib/refcount.c:28 at refcount_warn_saturate+0x13a/0x1d0, CPU#0: kworker/0:1/9",
        "refcount_t: underflow; use-after-free.",
        "Modules linked in:",
        "RIP: 0010:refcount_warn_saturate+0x13a/0x1d0 lib/refcount.c:28",
        "Call Trace:",
        " <TASK>",
        " sctp_wfree+0x2b1/0x2f0 net/sctp/socket.c:9150",
        " </TASK>",
    ]);
    assert_eq!(title(&newer).unwrap().title, "WARNING: refcount bug in sctp_wfree");
}

#[test]
fn a_task_blocked_in_io_wait_is_a_hung_task() {
    let out = console(&[
        "INFO: task syz.3.201:7412 blocked in I/O wait for more than 143 seconds.",
        "      Not tainted 6.17.0-syzkaller #0",
        "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.",
        "task:syz.3.201       state:D stack:25160 pid:7412  tgid:7411  ppid:5835   task_flags:0x400140 flags:0x00004006",
        "Call Trace:",
        " <TASK>",
        " context_switch kernel/sched/core.c:5357 [inline]",
        " __schedule+0x16f3/0x4c20 kernel/sched/core.c:6961",
        " schedule+0x165/0x360 kernel/sched/core.c:7058",
        " io_schedule+0x81/0xe0 kernel/sched/core.c:7903",
        " folio_wait_bit_common+0x6b0/0xb80 mm/filemap.c:1317",
        " folio_wait_writeback+0xb0/0x100 mm/page-writeback.c:3193",
        " __filemap_fdatawait_range+0x1f4/0x2b0 mm/filemap.c:538",
        " file_write_and_wait_range+0x2a1/0x320 mm/filemap.c:802",
        " ext4_sync_file+0x2b6/0xb50 fs/ext4/fsync.c:154",
        " vfs_fsync_range+0x137/0x220 fs/sync.c:187",
        " </TASK>",
    ]);
    let r = title(&out).unwrap();
    assert_eq!(r.title, "INFO: task hung in ext4_sync_file");
    assert_eq!(r.class, BugClass::Hang);
}

#[test]
fn an_rcu_tasks_stall_is_an_rcu_stall_in_the_tasks_call() {
    let out = console(&[
        "INFO: rcu_tasks detected stalls on tasks:",
        "00000000858563e2: .. nvcsw: 1/1 holdout: 1 idle_cpu: -1/1",
        "task:syz.0.41        state:R  running task     stack:25304 pid:6102  tgid:6101  ppid:5829   task_flags:0x400140 flags:0x00004004",
        "Call Trace:",
        " <TASK>",
        " ? __schedule+0x1190/0x4c20",
        " preempt_schedule_thunk+0x16/0x30 arch/x86/entry/thunk.S:12",
        " bpf_prog_run_pin_on_cpu include/linux/filter.h:734 [inline]",
        " bpf_prog_test_run_syscall+0x3a1/0x7a0 net/bpf/test_run.c:1548",
        " bpf_prog_test_run kernel/bpf/syscall.c:4433 [inline]",
        " __sys_bpf+0x5d2/0x870 kernel/bpf/syscall.c:5863",
        " __do_sys_bpf kernel/bpf/syscall.c:5952 [inline]",
        " __se_sys_bpf kernel/bpf/syscall.c:5950 [inline]",
        " __x64_sys_bpf+0x7c/0x90 kernel/bpf/syscall.c:5950",
        " do_syscall_64+0xfa/0x3b0 arch/x86/entry/syscall_64.c:94",
        " entry_SYSCALL_64_after_hwframe+0x77/0x7f",
        " </TASK>",
    ]);
    let r = title(&out).unwrap();
    assert_eq!(r.title, "INFO: rcu detected stall in sys_bpf");
    assert_eq!(r.class, BugClass::Hang);
}

#[test]
fn a_line_cut_by_a_console_takeover_is_read_from_its_replay() {
    let out = b"[  143.512011][ T5841] syz.0.17: attempt to access beyond end of device\n\
[  150.112233][   T30] INFO: t\n\
** replaying previous printk message **\n\
[  150.112233][   T30] INFO: task syz.0.17:5841 blocked for more than 143 seconds.\n\
[  150.118500][   T30]       Not tainted 6.18.0-syzkaller #0\n\
[  150.119000][   T30] Call Trace:\n\
[  150.119100][   T30]  <TASK>\n\
[  150.119200][   T30]  __schedule+0x16f3/0x4c20 kernel/sched/core.c:6961\n\
[  150.119300][   T30]  schedule+0x165/0x360 kernel/sched/core.c:7058\n\
[  150.119400][   T30]  __mutex_lock+0x7e6/0x1350 kernel/locking/mutex.c:760\n\
[  150.1194\n\
** replaying previous printk message **\n\
[  150.119500][   T30]  rtnl_lock+0x1/0x2 net/core/rtnetlink.c:80\n\
[  150.119600][   T30]  tun_chr_close+0x3b/0x1c0 drivers/net/tun.c:3394\n\
[  150.119700][   T30]  </TASK>\n";
    let r = title(out).unwrap();
    assert_eq!(r.title, "INFO: task hung in rtnl_lock");
    // The report starts at the replayed line.
    assert_eq!(r.start_line, 4);
    // A cut line and its replay on one line (the cut had no newline).
    let joined = b"[  150.112233][   T30] INFO: t** replaying previous printk message **\n\
[  150.112233][   T30] WARNING: CPU: 0 PID: 30 at net/core/dev.c:123 netdev_foo+0x12/0x40\n\
[  150.112300][   T30] RIP: 0010:netdev_foo+0x12/0x40\n\
[  150.112400][   T30] Call Trace:\n\
[  150.112500][   T30]  register_netdevice+0x1/0x2\n";
    assert_eq!(title(joined).unwrap().title, "WARNING in netdev_foo");
    // The marker alone is no crash.
    assert_eq!(
        title(b"[  1.0] usb 1-2: Prod\n** replaying previous printk message **\n[  1.0] usb 1-2: Product: USB Audio\n"),
        None
    );
}

#[test]
fn a_go_runtime_crash_is_titled_and_suppressed() {
    let out = b"[   98.231000][ T5012] syz-executor: started\n\
fatal error: unexpected signal during runtime execution\n\
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x45c2a1]\n\
\n\
runtime stack:\n\
runtime.throw({0x8f3b2e?, 0x0?})\n\
\t/usr/local/go/src/runtime/panic.go:1047 +0x5d fp=0x7ffd5c1f8e10 sp=0x7ffd5c1f8de0 pc=0x43a7fd\n\
runtime.sigpanic()\n\
\t/usr/local/go/src/runtime/signal_unix.go:819 +0x3e9 fp=0x7ffd5c1f8e70 sp=0x7ffd5c1f8e10 pc=0x450d69\n\
\n\
goroutine 1 [running]:\n\
main.main()\n\
\t/syzkaller/syz-fuzzer/fuzzer.go:200 +0x1a5 fp=0xc000193f80 sp=0xc000193e00 pc=0x7c1a25\n";
    let r = title(out).unwrap();
    assert_eq!(r.title, GO_RUNTIME_ERROR);
    assert!(r.suppressed);
    assert_eq!(r.class, BugClass::Infrastructure);
    assert!(is_suppressed("go runtime error"));
    assert!(!is_suppressed("WARNING in go_runtime_error"));
    // Kernel crashes are never suppressed.
    let r = title(&warning_in_helper("ext4_orphan_del", "ext4_rmdir")).unwrap();
    assert!(!r.suppressed);
    // Sound drivers' "fatal error:" is no crash.
    assert_eq!(
        title(b"[    5.100000] ALSA: hda: fatal error: codec not responding\n"),
        None
    );
}
