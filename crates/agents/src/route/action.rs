//! The action route: turn the normalised utterance into a verb and a target phrase
//! ("turn off the lights in the kitchen" → TurnOff, "lights in the kitchen").

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    TurnOn,
    TurnOff,
    Toggle,
    Open,
    Close,
    Lock,
    Unlock,
    /// Brightness or position in percent.
    SetLevel(u8),
    /// Target temperature in degrees.
    SetTemperature(f64),
    /// "is the kitchen light on?"
    Query,
}

impl Verb {
    /// Words for replies: "turn on", "open".
    pub fn say(self) -> String {
        match self {
            Verb::TurnOn => "turn on".into(),
            Verb::TurnOff => "turn off".into(),
            Verb::Toggle => "toggle".into(),
            Verb::Open => "open".into(),
            Verb::Close => "close".into(),
            Verb::Lock => "lock".into(),
            Verb::Unlock => "unlock".into(),
            Verb::SetLevel(p) => format!("set to {p}%"),
            Verb::SetTemperature(t) => format!("set to {t} degrees"),
            Verb::Query => "check".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub verb: Verb,
    /// The device phrase, articles dropped: "kitchen lights", "lights in the kitchen".
    pub target: String,
}

const POLITE: [&str; 8] = [
    "please ",
    "can you ",
    "could you ",
    "would you ",
    "will you ",
    "hey barnabee ",
    "barnabee ",
    "kindly ",
];

fn strip_articles(s: &str) -> String {
    s.split(' ')
        .filter(|w| !matches!(*w, "the" | "my" | "a" | "an" | "please" | "up" | "down"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn percent(s: &str) -> Option<(String, u8)> {
    // "... to 40%", "... to 40 percent", "... at 40"
    let (head, tail) = s.rsplit_once(" to ").or_else(|| s.rsplit_once(" at "))?;
    let num: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u32 = num.parse().ok()?;
    Some((head.to_owned(), n.min(100) as u8))
}

/// Parse a control or query utterance; `None` when no verb is recognisable.
pub fn parse(normalized: &str) -> Option<Command> {
    let mut s = normalized.trim();
    while let Some(p) = POLITE.iter().find(|p| s.starts_with(*p)) {
        s = &s[p.len()..];
    }
    let s = s.strip_suffix(" please").unwrap_or(s).trim();
    let words: Vec<&str> = s.split(' ').collect();
    let first = *words.first()?;
    let rest = words[1..].join(" ");
    let cmd = |verb, target: &str| {
        Some(Command {
            verb,
            target: strip_articles(target.trim()),
        })
    };
    match first {
        "turn" | "switch" | "power" | "flip" | "shut" => {
            let second = words.get(1).copied().unwrap_or("");
            let after = words.get(2..).map(|w| w.join(" ")).unwrap_or_default();
            let last = *words.last()?;
            match (second, last) {
                ("on", _) => cmd(Verb::TurnOn, &after),
                ("off", _) => cmd(Verb::TurnOff, &after),
                ("up", _) if first == "turn" => cmd(Verb::TurnOn, &after),
                ("down", _) if first == "turn" => cmd(Verb::TurnOff, &after),
                (_, "on") => cmd(Verb::TurnOn, &rest[..rest.len() - 3]),
                (_, "off") => cmd(Verb::TurnOff, &rest[..rest.len() - 4]),
                _ if first == "shut" => cmd(Verb::Close, &rest),
                _ => None,
            }
        }
        "open" | "raise" => cmd(Verb::Open, &rest),
        "close" | "lower" => cmd(Verb::Close, &rest),
        "lock" => cmd(Verb::Lock, &rest),
        "unlock" => cmd(Verb::Unlock, &rest),
        "toggle" => cmd(Verb::Toggle, &rest),
        "dim" | "brighten" => match percent(&rest) {
            Some((target, p)) => cmd(Verb::SetLevel(p), &target),
            None => cmd(Verb::SetLevel(if first == "dim" { 30 } else { 100 }), &rest),
        },
        "set" => {
            let (head, tail) = rest
                .rsplit_once(" to ")
                .or_else(|| rest.rsplit_once(" at "))?;
            let num: String = tail
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let n: f64 = num.parse().ok()?;
            if tail.contains("degree")
                || head.contains("thermostat")
                || head.contains("temperature")
            {
                let head = head.replace(" temperature", "").replace("temperature ", "");
                cmd(Verb::SetTemperature(n), &head)
            } else {
                cmd(Verb::SetLevel(n.clamp(0.0, 100.0) as u8), head)
            }
        }
        "is" | "are" => {
            let last = *words.last()?;
            cmd(Verb::Query, &words[1..words.len() - 1].join(" ")).filter(|_| {
                matches!(
                    last,
                    "on" | "off" | "open" | "closed" | "locked" | "unlocked" | "running"
                )
            })
        }
        "everything" | "all" => match *words.last()? {
            "on" => cmd(Verb::TurnOn, &words[..words.len() - 1].join(" ")),
            "off" => cmd(Verb::TurnOff, &words[..words.len() - 1].join(" ")),
            _ => None,
        },
        _ => {
            // "kitchen lights on", "lights off in the kitchen"
            if let Some((dev, area)) = s.split_once(" on in ") {
                return cmd(Verb::TurnOn, &format!("{dev} in {area}"));
            }
            if let Some((dev, area)) = s.split_once(" off in ") {
                return cmd(Verb::TurnOff, &format!("{dev} in {area}"));
            }
            match *words.last()? {
                "on" => cmd(Verb::TurnOn, &words[..words.len() - 1].join(" ")),
                "off" => cmd(Verb::TurnOff, &words[..words.len() - 1].join(" ")),
                _ => None,
            }
        }
    }
    .filter(|c| !c.target.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_targets() {
        let cases = [
            ("turn on the kitchen lights", Verb::TurnOn, "kitchen lights"),
            (
                "turn the kitchen lights off",
                Verb::TurnOff,
                "kitchen lights",
            ),
            (
                "please switch off the lights in the kitchen",
                Verb::TurnOff,
                "lights in kitchen",
            ),
            (
                "could you turn on the bedside lamp please",
                Verb::TurnOn,
                "bedside lamp",
            ),
            ("close the hall window", Verb::Close, "hall window"),
            ("lock the front door", Verb::Lock, "front door"),
            (
                "dim the living room lights to 20%",
                Verb::SetLevel(20),
                "living room lights",
            ),
            (
                "set the bedroom light to 40 percent",
                Verb::SetLevel(40),
                "bedroom light",
            ),
            (
                "set the thermostat to 21 degrees",
                Verb::SetTemperature(21.0),
                "thermostat",
            ),
            ("kitchen lights on", Verb::TurnOn, "kitchen lights"),
            (
                "lights off in the office",
                Verb::TurnOff,
                "lights in office",
            ),
            ("is the kitchen light on", Verb::Query, "kitchen light"),
            ("shut the garage door", Verb::Close, "garage door"),
        ];
        for (text, verb, target) in cases {
            let c = parse(text).unwrap_or_else(|| panic!("no parse: {text}"));
            assert_eq!((c.verb, c.target.as_str()), (verb, target), "{text}");
        }
        assert_eq!(parse("why is the sky blue"), None);
    }
}
