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
