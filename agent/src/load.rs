//! Load reports: a fixed weight, or the load average as a percentage of the CPUs.

use crate::config::{LoadConfig, LoadSource};
use crate::messages::LoadReport;

/// The load percentage of a `/proc/loadavg` line on a machine with `cpus` CPUs: the
/// 1-minute average per CPU, capped at 100. `None` when the line is not understood.
pub fn load_percent(loadavg: &str, cpus: usize) -> Option<u8> {
    let one_minute: f64 = loadavg.split_whitespace().next()?.parse().ok()?;
    if !one_minute.is_finite() || one_minute < 0.0 || cpus == 0 {
        return None;
    }
    let percent = (one_minute / cpus as f64 * 100.0).round();
    Some(percent.min(100.0) as u8)
}

/// The current report for `config` (reads /proc/loadavg for [`LoadSource::Loadavg`]).
/// An unreadable load average gives no report rather than a made-up one.
pub fn current(config: &LoadConfig) -> Option<LoadReport> {
    match config.source {
        LoadSource::Fixed => Some(LoadReport::Weight(config.weight)),
        LoadSource::None => None,
        LoadSource::Loadavg => {
            let text = std::fs::read_to_string("/proc/loadavg").ok()?;
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            load_percent(&text, cpus).map(LoadReport::LoadPercent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadavg_lines() {
        assert_eq!(load_percent("0.50 0.40 0.30 1/123 4567\n", 2), Some(25));
        assert_eq!(load_percent("3.00 1.00 1.00 1/123 4567", 2), Some(100));
        assert_eq!(load_percent("0.00 0.00 0.00 1/1 1", 4), Some(0));
        assert_eq!(load_percent("", 2), None);
        assert_eq!(load_percent("abc", 2), None);
        assert_eq!(load_percent("-1 0 0", 2), None);
        assert_eq!(load_percent("NaN 0 0", 2), None);
        assert_eq!(load_percent("1.0", 0), None);
    }

    #[test]
    fn sources() {
        let mut c = LoadConfig {
            source: LoadSource::Fixed,
            weight: 42,
            interval: std::time::Duration::from_secs(1),
            update_step: 10,
        };
        assert_eq!(current(&c), Some(LoadReport::Weight(42)));
        c.source = LoadSource::None;
        assert_eq!(current(&c), None);
        c.source = LoadSource::Loadavg;
        assert!(matches!(current(&c), Some(LoadReport::LoadPercent(p)) if p <= 100));
    }
}
