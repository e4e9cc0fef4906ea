//! Wall-clock time as text (UTC), without a date crate: run-directory stamps and the
//! timestamps of records.

use std::time::{SystemTime, UNIX_EPOCH};

/// Year, month, day, hour, minute, second (UTC) of `secs` since 1970-01-01.
pub fn utc(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `YYYYMMDD-HHMMSS` (UTC), as run directories are named.
pub fn stamp() -> String {
    let (y, m, d, h, min, s) = utc(now_secs());
    format!("{y:04}{m:02}{d:02}-{h:02}{min:02}{s:02}")
}

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC) of now.
pub fn rfc3339_now() -> String {
    rfc3339(now_secs())
}

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC) of `secs` since 1970-01-01.
pub fn rfc3339(secs: u64) -> String {
    let (y, m, d, h, min, s) = utc(secs);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}Z")
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        // 2026-11-26 01:02:03 UTC.
        assert_eq!(rfc3339(1_795_654_923), "2026-11-26T01:02:03Z");
    }
}
