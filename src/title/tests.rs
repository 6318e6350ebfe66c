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
