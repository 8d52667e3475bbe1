//! Word error rate: (substitutions + deletions + insertions) / reference words, from a
//! word-level Levenshtein alignment, after the same normalisation of both sides:
//!
//! - lower case; `&` → `and`, `%` → `percent`, `°` → `degrees`, `a.m.`/`p.m.` → `am`/`pm`;
//! - digits are spelled out, so Whisper's "10" matches the corpus's "ten": thousands
//!   separators dropped (`1,000`), `7:30` and the British `7.30` → `seven thirty` (`:00` →
//!   nothing: `7:00` is "seven"), another decimal point → `point` (`21.5`), ordinals
//!   (`21st`) → `twenty first`;
//! - hyphens split words (`twenty-one` = `twenty one`), apostrophes are dropped (`I'm` =
//!   `im`, so contractions must match as written), any other punctuation is a space.
//!
//! Nothing else is forgiven: "okay"/"OK", "mom"/"mum" or a missing word all count.

/// Word-level edit distance between `reference` and `hypothesis` (already normalised).
pub fn edits(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            let sub = prev[j] + usize::from(r != h);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[hypothesis.len()]
}

/// Errors and reference length of one utterance, after normalisation.
pub fn score(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r = normalise(reference);
    let h = normalise(hypothesis);
    (edits(&r, &h), r.len())
}

/// The words of `text`, normalised as the module header says.
pub fn normalise(text: &str) -> Vec<String> {
    let mut s = text.to_lowercase();
    for (from, to) in [
        ("a.m.", " am "),
        ("p.m.", " pm "),
        ("&", " and "),
        ("%", " percent "),
        ("°", " degrees "),
    ] {
        s = s.replace(from, to);
    }
    let chars: Vec<char> = s.chars().collect();
    let mut cleaned = String::with_capacity(s.len());
    let mut skip = 0;
    for (i, &c) in chars.iter().enumerate() {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        let digit_before = i > 0 && chars[i - 1].is_ascii_digit();
        let digit_after = chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        match c {
            '\'' | '’' => {}
            ',' if digit_before && digit_after => {}
            '.' if digit_before && digit_after && clock_time(&chars, i) => cleaned.push(' '),
            '.' if digit_before && digit_after => cleaned.push_str(" point "),
            ':' if digit_before && digit_after => {
                let on_the_hour = chars.get(i + 1..i + 3) == Some(&['0', '0'][..])
                    && chars.get(i + 3).is_none_or(|n| !n.is_ascii_digit());
                if on_the_hour {
                    skip = 2;
                } else {
                    cleaned.push(' ');
                }
            }
            c if c.is_alphanumeric() => cleaned.push(c),
            _ => cleaned.push(' '),
        }
    }
    let mut words = Vec::new();
    for w in cleaned.split_whitespace() {
        spell(w, &mut words);
    }
    words
}

/// `chars[dot]` is the dot of a British clock time, `7.30`: one or two digits (0-23) before it,
/// exactly two (00-59) after it. (`21.5` and `2.505` stay decimals.)
fn clock_time(chars: &[char], dot: usize) -> bool {
    let before: String = chars[..dot]
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let after: String = chars[dot + 1..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let hour = before.parse::<u32>().is_ok_and(|h| h < 24) && before.len() <= 2;
    let minute = after.len() == 2 && after.parse::<u32>().is_ok_and(|m| m < 60);
    hour && minute
}

/// Push `w`, with a number (`42`, `21st`, `05`) spelled out.
fn spell(w: &str, out: &mut Vec<String>) {
    let digits: String = w.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() || digits.len() > 9 {
        out.push(w.to_owned());
        return;
    }
    let suffix = &w[digits.len()..];
    let Ok(n) = digits.parse::<u64>() else {
        out.push(w.to_owned());
        return;
    };
    let mut spelled = if digits.len() > 1 && digits.starts_with('0') {
        // "05" (minutes, a code): digit by digit ("zero five")
        digits
            .chars()
            .map(|d| words_of(u64::from(d.to_digit(10).unwrap_or(0))))
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        words_of(n)
    };
    match suffix {
        "st" | "nd" | "rd" | "th" => spelled = ordinal(&spelled),
        "" => {}
        other => spelled = format!("{spelled} {other}"),
    }
    out.extend(spelled.split_whitespace().map(str::to_owned));
}

const ONES: [&str; 20] = [
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
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// 0..10^9 in words, without "and" ("two hundred five").
fn words_of(n: u64) -> String {
    match n {
        0..20 => ONES[n as usize].to_owned(),
        20..100 => {
            let t = TENS[(n / 10) as usize];
            if n.is_multiple_of(10) {
                t.to_owned()
            } else {
                format!("{t} {}", ONES[(n % 10) as usize])
            }
        }
        100..1000 => join(words_of(n / 100) + " hundred", n % 100),
        1000..1_000_000 => join(words_of(n / 1000) + " thousand", n % 1000),
        _ => join(words_of(n / 1_000_000) + " million", n % 1_000_000),
    }
}

fn join(head: String, rest: u64) -> String {
    if rest == 0 {
        head
    } else {
        format!("{head} {}", words_of(rest))
    }
}

/// "twenty one" → "twenty first".
fn ordinal(spelled: &str) -> String {
    let (head, last) = spelled.rsplit_once(' ').unwrap_or(("", spelled));
    let last = match last {
        "one" => "first".to_owned(),
        "two" => "second".to_owned(),
        "three" => "third".to_owned(),
        "five" => "fifth".to_owned(),
        "eight" => "eighth".to_owned(),
        "nine" => "ninth".to_owned(),
        "twelve" => "twelfth".to_owned(),
        l if l.ends_with('y') => format!("{}ieth", &l[..l.len() - 1]),
        l => format!("{l}th"),
    };
    if head.is_empty() {
        last
    } else {
        format!("{head} {last}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn n(s: &str) -> String {
        normalise(s).join(" ")
    }

    #[test]
    fn numbers_case_and_punctuation() {
        assert_eq!(
            n("Set a timer for 10 minutes."),
            "set a timer for ten minutes"
        );
        assert_eq!(n("Set it to 21°"), "set it to twenty one degrees");
        assert_eq!(n("Dim to 30%."), "dim to thirty percent");
        assert_eq!(n("Alarm at 7:30 a.m."), "alarm at seven thirty am");
        assert_eq!(n("at 7:00"), "at seven");
        assert_eq!(n("at 7:05"), "at seven zero five");
        assert_eq!(
            n("200 degrees, 1,500 watts"),
            "two hundred degrees one thousand five hundred watts"
        );
        assert_eq!(n("21.5"), "twenty one point five");
        assert_eq!(n("for 7.30 tomorrow."), "for seven thirty tomorrow");
        assert_eq!(
            n("2.505 and 30.5"),
            "two point five hundred five and thirty point five"
        );
        assert_eq!(n("the 21st, the 3rd"), "the twenty first the third");
        assert_eq!(n("I'm leaving—twenty-one"), "im leaving twenty one");
        assert_eq!(n("What's on?"), "whats on");
    }

    #[test]
    fn error_counts() {
        let w = |s: &str| normalise(s);
        assert_eq!(edits(&w("a b c"), &w("a b c")), 0);
        assert_eq!(edits(&w("a b c"), &w("a x c")), 1);
        assert_eq!(edits(&w("a b c"), &w("a c")), 1);
        assert_eq!(edits(&w("a b c"), &w("a b c d")), 1);
        assert_eq!(edits(&w("a b c"), &[]), 3);
        assert_eq!(score("turn on the lights", "Turn on the light."), (1, 4));
    }
}
