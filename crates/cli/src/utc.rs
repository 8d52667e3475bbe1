//! UTC date formatting without a date library: the bundle's name and the generation list only
//! need "seconds since the epoch → calendar date and time".

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch (0 for times before it).
pub fn epoch_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub use barnabee_service::time::civil;

/// `20261123T193500Z`: for file names.
pub fn compact(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// `2026-11-23 19:35:00 UTC`: for people.
pub fn readable(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(readable(0), "1970-01-01 00:00:00 UTC");
        // 2000-02-29 (a leap day in a century year) 12:34:56
        assert_eq!(readable(951_827_696), "2000-02-29 12:34:56 UTC");
        assert_eq!(compact(1_795_462_500), "20261123T193500Z");
        assert_eq!(readable(-1), "1969-12-31 23:59:59 UTC");
    }
}
