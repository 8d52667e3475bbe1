//! Time for every crate, without a date library: Unix milliseconds, the civil (UTC) calendar,
//! RFC 3339 both ways, and the one duration grammar of every operator surface (the
//! replicator's config, `barnabee-watchdog gate --timeout` and its NixOS option
//! `gate.timeout`, `barnabee incident collect --since`).
//!
//! Durations: one or more `<number><unit>` (`1h30m`, `1.5s`, `500ms`, `24h`, `7d`), units `ns`,
//! `us`/`µs`, `ms`, `s`, `m`, `h`, `d`; a bare number is seconds (`300`); `0` is zero. It is Go's
//! `time.ParseDuration` (what litestream.yml uses) plus days and bare seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in Unix milliseconds (0 before the epoch).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day number since 1970-01-01.
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

/// (year, month, day, hour, minute, second) of `secs` since the epoch, in UTC.
pub fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// `2026-12-07 20:41 UTC`: for people.
pub fn utc_minutes(ms: i64) -> String {
    let (y, mo, d, h, mi, _) = civil(ms.div_euclid(1000));
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
}

/// `2026-01-01T00:01:00Z` or `2026-01-01T00:01:00.123Z` (trailing zeros trimmed, like Go).
pub fn format_rfc3339(ms: i64) -> String {
    let (y, m, d, h, mi, s) = civil(ms.div_euclid(1000));
    let frac = ms.rem_euclid(1000);
    let base = format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
    if frac == 0 {
        format!("{base}Z")
    } else {
        let f = format!("{frac:03}");
        format!("{base}.{}Z", f.trim_end_matches('0'))
    }
}

/// Parse RFC 3339 (`Z` or `±hh:mm` offset, optional fraction) into ms since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = s.get(st..i)?;
        if digits.is_empty() {
            return None;
        }
        let mut m3 = digits.chars().take(3).collect::<String>();
        while m3.len() < 3 {
            m3.push('0');
        }
        ms = m3.parse().ok()?;
    }
    let offset_min = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && &tz[3..4] == ":" => {
            let v = tz[1..3].parse::<i64>().ok()? * 60 + tz[4..6].parse::<i64>().ok()?;
            if tz.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60;
    Some(secs * 1000 + ms)
}

/// The one duration grammar (module documentation); the error names the text and what is
/// accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let bad = |why: &str| {
        format!("{text:?} is not a duration ({why}; e.g. 300, 45s, 5m, 1h30m, 500ms, 7d)")
    };
    if s.is_empty() {
        return Err(bad("empty"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return if secs.is_finite() && secs >= 0.0 {
            Duration::try_from_secs_f64(secs).map_err(|_| bad("out of range"))
        } else {
            Err(bad("negative"))
        };
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return Err(bad("a number must come before each unit"));
        }
        let v: f64 = rest[..n].parse().map_err(|_| bad("not a number"))?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "" => return Err(bad("the last number has no unit")),
            other => {
                return Err(bad(&format!(
                    "unknown unit {other:?}: use ms, s, m, h or d"
                )));
            }
        };
        rest = &rest[u..];
        total += v * mult;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad("out of range"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        assert_eq!(format_rfc3339(1_767_225_600_000), "2026-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_767_225_660_120), "2026-01-01T00:01:00.12Z");
        assert_eq!(
            parse_rfc3339("2026-01-01T00:01:30Z"),
            Some(1_767_225_690_000)
        );
        assert_eq!(
            parse_rfc3339("2026-01-01T01:01:30+01:00"),
            Some(1_767_225_690_000)
        );
        assert_eq!(
            parse_rfc3339("2026-01-01T00:01:00.12Z"),
            Some(1_767_225_660_120)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        for ms in [0, 951_782_400_123, 4_102_444_799_999, -86_400_000] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms));
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc_minutes(1_796_000_000_000), "2026-11-30 00:53 UTC");
        assert_eq!(utc_minutes(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(civil(-1), (1969, 12, 31, 23, 59, 59));
        for days in [-800_000, -1, 0, 59, 60, 11_016, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), days);
        }
    }

    #[test]
    fn one_duration_grammar() {
        let ok = |s: &str| parse_duration(s).unwrap();
        assert_eq!(ok("1s"), Duration::from_secs(1));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("24h"), Duration::from_secs(86_400));
        assert_eq!(ok("7d"), Duration::from_secs(7 * 86_400));
        assert_eq!(ok("300"), Duration::from_secs(300));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("0"), Duration::ZERO);
        for bad in ["", "5 minutes", "5parsecs", "h", "1h30", "-5s", "-3"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains(&format!("{bad:?}")) && e.contains("e.g."),
                "{bad}: {e}"
            );
        }
    }
}
