//! Latency summaries: exact percentiles over every sample (nearest rank), no histogram.

use std::time::Duration;

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// Nearest-rank percentile of sorted samples (`p` in 0..=1).
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let n = sorted.len();
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// Summarises samples given in microseconds.
pub fn summarise_us(mut us: Vec<u64>) -> Summary {
    us.sort_unstable();
    let ms = |v: u64| v as f64 / 1000.0;
    let sum: u128 = us.iter().map(|&v| u128::from(v)).sum();
    Summary {
        count: us.len(),
        p50_ms: ms(percentile(&us, 0.50)),
        p99_ms: ms(percentile(&us, 0.99)),
        p999_ms: ms(percentile(&us, 0.999)),
        max_ms: ms(us.last().copied().unwrap_or(0)),
        mean_ms: if us.is_empty() {
            0.0
        } else {
            sum as f64 / us.len() as f64 / 1000.0
        },
    }
}

/// Summarises samples given in milliseconds (integers, e.g. expiry lags).
pub fn summarise_ms(ms: &[i64]) -> Summary {
    summarise_us(
        ms.iter()
            .map(|&v| u64::try_from(v.max(0)).unwrap_or(0) * 1000)
            .collect(),
    )
}

/// A duration in whole microseconds.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
