//! Support shared by the criterion benchmarks of every crate (a
//! dev-dependency only, never linked into a service or the binary).
//!
//! [`CpuTime`] measures the benchmark thread's CPU time instead of wall
//! time, so that time spent descheduled by other processes on a shared
//! machine is not counted: a figure measures the work done. Work done on
//! other threads (a runtime's workers, a server task) is not counted
//! either; benches of whole paths across threads keep wall time.
#![forbid(unsafe_code)]

use std::time::Duration;

use cpu_time::ThreadTime;
use criterion::Criterion;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// The benchmark thread's CPU time as a criterion measurement, shown as
/// durations the way wall time is.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime;

impl Measurement for CpuTime {
    type Intermediate = ThreadTime;
    type Value = Duration;
    fn start(&self) -> ThreadTime {
        ThreadTime::now()
    }
    fn end(&self, i: ThreadTime) -> Duration {
        i.elapsed()
    }
    fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
        *v1 + *v2
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WallTime.formatter()
    }
}

/// Criterion's default configuration, measuring [`CpuTime`].
pub fn criterion() -> Criterion<CpuTime> {
    Criterion::default().with_measurement(CpuTime)
}
