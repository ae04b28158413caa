//! `HOTPOOL_CONF=stats_signal:SIGUSR2`: a child process (this test binary
//! again, running `child_allocates_until_stdin_closes`) with pools and
//! handles in use on several threads gets the signal 20 times, each after
//! the previous report's end marker, prints 20 complete reports to stderr
//! and exits normally.
//!
//! The binary keeps the system allocator, like the router example: its
//! pools take their chunks straight from the OS, so nothing starts the
//! arena before the first report, and the pool layer must start the
//! report itself. `scripts/preload-test.sh` checks the arena's own start
//! (a C program under `LD_PRELOAD`).

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hotpool::{Pool, PoolConfig, Shared};

static TICKETS: Pool<[u64; 6]> = Pool::with_config(PoolConfig::new().name("signal_tickets"));

const END: &str = "___ end of hotpool statistics ___";

#[test]
#[ignore = "the child process of every_signal_prints_one_complete_report"]
fn child_allocates_until_stdin_closes() {
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![t as u8; 8 + i * 97]).collect();
                    let tickets: Vec<_> = (0..32).map(|i| TICKETS.alloc([i; 6])).collect();
                    let shared = Shared::new(blocks.len());
                    rounds += (blocks.len() + tickets.len() + *shared) as u64;
                }
                rounds
            })
        })
        .collect();
    let kept: Vec<_> = (0..5).map(|i| TICKETS.alloc([i; 6])).collect();
    let link = Shared::new(7u32);
    println!("ready");
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest).unwrap();
    stop.store(true, Ordering::Relaxed);
    let rounds: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(rounds > 0);
    drop((kept, link));
}

#[test]
fn every_signal_prints_one_complete_report() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_allocates_until_stdin_closes",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("HOTPOOL_CONF", "stats_signal:SIGUSR2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        stdout.any(|l| l.unwrap() == "ready"),
        "the child ended before it was ready"
    );
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    for n in 0..20 {
        // SAFETY: `pid` is our child, not yet waited for.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR2) }, 0);
        let mut report = Vec::new();
        loop {
            let line = stderr
                .next()
                .unwrap_or_else(|| panic!("report {n}: stderr ended: {report:#?}"))
                .unwrap();
            if line == END {
                break;
            }
            report.push(line);
        }
        assert_eq!(report[0], "___ hotpool arena statistics ___", "report {n}");
        let at = |title: &str| report.iter().position(|l| l == title);
        let (pools, handles) = (at("pools:").unwrap(), at("handles:").unwrap());
        assert!(pools < handles, "report {n}: {report:#?}");
        assert!(
            report[pools..handles]
                .iter()
                .any(|l| l.starts_with("signal_tickets ")),
            "report {n}: {report:#?}"
        );
        assert_eq!(handles + 2, report.len(), "report {n}: one handle line");
        assert!(
            report[handles + 1].starts_with("slots in use "),
            "report {n}"
        );
    }
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    let rest: Vec<String> = stderr.map(Result::unwrap).collect();
    assert!(status.success(), "{status}: {rest:#?}");
    assert!(!rest.iter().any(|l| l == END), "a 21st report: {rest:#?}");
}
