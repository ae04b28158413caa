//! Waiting for a forked child with a deadline (shared through `#[path]` by
//! the tests that fork).

use std::time::{Duration, Instant};

/// Waits for `pid` up to 10 s; `Some(exit status)`, or `None` if it hung
/// (it is then killed and reaped). A child killed by a signal fails the
/// test.
pub fn wait_child(pid: libc::pid_t) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our child; `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
            return Some(libc::WEXITSTATUS(status));
        }
        assert_eq!(r, 0, "waitpid failed");
        if Instant::now() > deadline {
            eprintln!("child {pid} hung:\n{}", where_stuck(pid));
            // SAFETY: signalling and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Where the live process `pid` is stuck, for the test's output: its
/// kernel wait channel and system call, and its user stack from gdb where
/// gdb is installed (CI's machines have it). A hang that happens once in
/// thousands of forks is then diagnosed from the log that shows it.
fn where_stuck(pid: libc::pid_t) -> String {
    let read = |what: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{what}")).unwrap_or_else(|e| format!("({e})"))
    };
    let mut out = format!("wchan: {}\nsyscall: {}", read("wchan"), read("syscall"));
    match std::process::Command::new("gdb")
        .args(["-p", &pid.to_string(), "-batch", "-ex", "bt"])
        .output()
    {
        Ok(gdb) => out.push_str(&String::from_utf8_lossy(&gdb.stdout)),
        Err(e) => out.push_str(&format!("(no gdb: {e})")),
    }
    out
}
