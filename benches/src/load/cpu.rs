//! CPU time used by a process (the tool itself, or the server it spawned), read from
//! `/proc/<pid>/stat`, which sums every thread of the process.

use std::time::Duration;

use serde::Serialize;

use super::stats::round;

/// User and system CPU time a process has used since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// Time spent running the process's own code.
    pub user: Duration,
    /// Time the kernel spent on its behalf (system calls: sockets, files).
    pub system: Duration,
}

impl std::iter::Sum for CpuTime {
    fn sum<I: Iterator<Item = CpuTime>>(times: I) -> CpuTime {
        times.fold(CpuTime::default(), |sum, t| CpuTime { user: sum.user + t.user, system: sum.system + t.system })
    }
}

impl CpuTime {
    /// This process's CPU time; `None` where `/proc` is not available.
    pub fn of_self() -> Option<CpuTime> {
        Self::read("/proc/self/stat")
    }

    /// The CPU time of process `pid`; `None` once it has exited, or without `/proc`.
    pub fn of_process(pid: u32) -> Option<CpuTime> {
        Self::read(&format!("/proc/{pid}/stat"))
    }

    fn read(path: &str) -> Option<CpuTime> {
        let text = std::fs::read_to_string(path).ok()?;
        parse_stat(&text, clock_ticks_per_second())
    }

    /// The CPU time used between `earlier` and `self`, as a report entry over `wall` seconds
    /// of elapsed time.
    pub fn since(self, earlier: CpuTime, wall: Duration) -> CpuUse {
        let user = self.user.saturating_sub(earlier.user).as_secs_f64();
        let sys = self.system.saturating_sub(earlier.system).as_secs_f64();
        let wall = wall.as_secs_f64();
        let percent = if wall > 0.0 { (user + sys) / wall * 100.0 } else { 0.0 };
        CpuUse {
            user_s: round(user, 3),
            sys_s: round(sys, 3),
            total_s: round(user + sys, 3),
            percent_of_one_core: round(percent, 1),
        }
    }
}

/// CPU used over the measured period, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CpuUse {
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// `user_s + sys_s`.
    pub total_s: f64,
    /// `total_s` over the elapsed time, in percent of one core (200 = two cores busy).
    pub percent_of_one_core: f64,
}

/// `utime` and `stime` (fields 14 and 15, in clock ticks) of a `/proc/<pid>/stat` line. The
/// command name (field 2) is in parentheses and may hold spaces or parentheses itself, so
/// fields are counted from the last `)`.
fn parse_stat(text: &str, ticks_per_second: u64) -> Option<CpuTime> {
    if ticks_per_second == 0 {
        return None;
    }
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = |n: u64| {
        Duration::from_secs(n / ticks_per_second)
            + Duration::from_nanos((n % ticks_per_second) * 1_000_000_000 / ticks_per_second)
    };
    Some(CpuTime { user: ticks(utime), system: ticks(stime) })
}

#[cfg(unix)]
fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// Unknown: no `/proc` to read either.
#[cfg(not(unix))]
fn clock_ticks_per_second() -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (omni (load) gen) S 1 4242 4242 0 -1 4194560 1180 0 0 0 \
                    250 37 0 0 20 0 3 0 123456 1000000 500 18446744073709551615";
        let cpu = parse_stat(line, 100).unwrap();
        assert_eq!(cpu.user, Duration::from_millis(2500));
        assert_eq!(cpu.system, Duration::from_millis(370));
        assert_eq!(parse_stat(line, 0), None);
        assert_eq!(parse_stat("4242 (cut short) S 1 2", 100), None);
    }

    #[test]
    fn use_is_a_difference_over_the_elapsed_time() {
        let before = CpuTime { user: Duration::from_secs(1), system: Duration::from_millis(500) };
        let after = CpuTime { user: Duration::from_secs(3), system: Duration::from_millis(1500) };
        let used = after.since(before, Duration::from_secs(4));
        assert!((used.user_s - 2.0).abs() < 1e-9 && (used.sys_s - 1.0).abs() < 1e-9);
        assert!((used.percent_of_one_core - 75.0).abs() < 1e-9);
        assert!(after.since(before, Duration::ZERO).percent_of_one_core.abs() < f64::EPSILON);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_used_some_cpu() {
        // Spins until at least one clock tick has been charged (10 ms on Linux), for at most 5 s.
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        loop {
            let cpu = CpuTime::of_self().unwrap();
            if cpu.user + cpu.system > Duration::ZERO {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "no CPU time charged after 5 s of spinning");
            for i in 0..100_000u64 {
                spin = std::hint::black_box(spin.wrapping_add(i));
            }
        }
        assert!(CpuTime::of_process(std::process::id()).is_some());
    }
}
