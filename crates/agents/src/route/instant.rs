//! The instant route: time, date, greetings and timers, answered without any peer.

use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Timelike};

/// Speak a clock time: "It's 5:07 PM."
pub fn say_time<Tz: TimeZone>(now: &DateTime<Tz>) -> String {
    let (pm, h12) = now.hour12();
    format!(
        "It's {}:{:02} {}.",
        h12,
        now.minute(),
        if pm { "PM" } else { "AM" }
    )
}

/// "Today is Monday, November 23, 2026."
pub fn say_date<Tz: TimeZone>(now: &DateTime<Tz>) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    format!(
        "Today is {}, {} {}, {}.",
        DAYS[now.weekday().num_days_from_monday() as usize],
        MONTHS[now.month0() as usize],
        now.day(),
        now.year()
    )
}

pub fn greeting(normalized: &str) -> &'static str {
    if normalized.contains("how are you") {
        "I'm doing well, thanks for asking. How can I help?"
    } else if normalized.contains("morning") {
        "Good morning! How can I help?"
    } else if normalized.contains("evening") {
        "Good evening! How can I help?"
    } else {
        "Hello! How can I help?"
    }
}

fn number_word(w: &str) -> Option<u64> {
    const WORDS: [&str; 21] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];
    if let Ok(n) = w.parse() {
        return Some(n);
    }
    if w == "a" || w == "an" {
        return Some(1);
    }
    if let Some(i) = WORDS.iter().position(|x| *x == w) {
        return Some(i as u64);
    }
    match w {
        "thirty" => Some(30),
        "forty" => Some(40),
        "forty-five" => Some(45),
        "fifty" => Some(50),
        "sixty" => Some(60),
        "ninety" => Some(90),
        _ => None,
    }
}

/// The duration in a timer request: "set a timer for 5 minutes", "a ten minute timer",
/// "timer for 1 hour and 30 minutes", "half an hour". `None` when no duration is said.
pub fn parse_duration(normalized: &str) -> Option<Duration> {
    if normalized.contains("half an hour") || normalized.contains("half hour") {
        return Some(Duration::from_secs(1800));
    }
    let words: Vec<&str> = normalized.split(' ').collect();
    let mut total = 0u64;
    let mut found = false;
    for (i, w) in words.iter().enumerate() {
        let unit = match w.trim_end_matches('s') {
            "second" | "sec" => 1,
            "minute" | "min" => 60,
            "hour" | "hr" => 3600,
            _ => continue,
        };
        if i == 0 {
            continue;
        }
        // "twenty five minutes" and "twenty-five"
        let mut n = None;
        if let Some(v) = number_word(words[i - 1]) {
            n = Some(v);
            if i >= 2
                && let Some(tens) = number_word(words[i - 2])
                && tens >= 20
                && tens % 10 == 0
                && v < 10
            {
                n = Some(tens + v);
            }
        } else if let Some((a, b)) = words[i - 1].split_once('-')
            && let (Some(a), Some(b)) = (number_word(a), number_word(b))
        {
            n = Some(a + b);
        }
        if let Some(n) = n {
            total += n * unit;
            found = true;
        }
    }
    (found && total > 0).then(|| Duration::from_secs(total))
}

/// "5 minutes", "1 hour and 30 minutes", "45 seconds".
pub fn say_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let part = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(part(h, "hour"));
    }
    if m > 0 {
        parts.push(part(m, "minute"));
    }
    if sec > 0 || parts.is_empty() {
        parts.push(part(sec, "second"));
    }
    match parts.len() {
        1 => parts.remove(0),
        _ => {
            let last = parts.pop().unwrap_or_default();
            format!("{} and {last}", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn durations() {
        let cases = [
            ("set a timer for 5 minutes", 300),
            ("set a ten minute timer", 600),
            ("timer for 1 hour and 30 minutes", 5400),
            ("set a timer for twenty five minutes", 1500),
            ("start a timer for half an hour", 1800),
            ("timer for 45 seconds", 45),
            ("set a timer for an hour", 3600),
        ];
        for (text, secs) in cases {
            assert_eq!(
                parse_duration(text),
                Some(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("set a timer"), None);
        assert_eq!(
            say_duration(Duration::from_secs(5400)),
            "1 hour and 30 minutes"
        );
        assert_eq!(say_duration(Duration::from_secs(60)), "1 minute");
    }

    #[test]
    fn clock_phrases() {
        let tz = FixedOffset::east_opt(3600).unwrap();
        let t = tz.with_ymd_and_hms(2026, 11, 23, 17, 7, 0).unwrap();
        assert_eq!(say_time(&t), "It's 5:07 PM.");
        assert_eq!(say_date(&t), "Today is Monday, November 23, 2026.");
        let t = tz.with_ymd_and_hms(2026, 11, 23, 0, 30, 0).unwrap();
        assert_eq!(say_time(&t), "It's 12:30 AM.");
    }
}
