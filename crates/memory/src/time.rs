//! Times are Unix milliseconds (UTC) everywhere: in the database and in the API.

use barnabee_service::time::days_from_civil;
pub use barnabee_service::time::now_ms;

/// Parse an RFC 3339 / ISO 8601 time as the previous system exported it
/// (`2024-03-01T12:30:00Z`, `2024-03-01T12:30:00.123+01:00`, `2024-03-01 12:30:00`,
/// `2024-03-01`); no offset means UTC. Returns Unix milliseconds.
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) && !part.is_empty() {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    if b.len() == 10 {
        return Some(ms);
    }
    if !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') || b.len() < 19 {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    ms += (h * 3600 + mi * 60 + sec) * 1000;
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        let padded: String = frac.chars().chain("000".chars()).take(3).collect();
        ms += padded.parse::<i64>().ok()?;
    }
    match s.get(i..)? {
        "" | "Z" | "z" => Some(ms),
        off if off.len() == 6 && (off.starts_with('+') || off.starts_with('-')) => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if off.starts_with('+') { 1 } else { -1 };
            Some(ms - sign * (oh * 3600 + om * 60) * 1000)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes_v1_exported() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso8601("2024-03-01T12:30:00Z"),
            Some(1_709_296_200_000)
        );
        assert_eq!(
            parse_iso8601("2024-03-01 12:30:00"),
            Some(1_709_296_200_000)
        );
        assert_eq!(
            parse_iso8601("2024-03-01T13:30:00.5+01:00"),
            Some(1_709_296_200_500)
        );
        assert_eq!(parse_iso8601("2024-03-01"), Some(1_709_251_200_000));
        assert_eq!(parse_iso8601("yesterday"), None);
        assert_eq!(parse_iso8601("2024-13-01"), None);
    }
}
