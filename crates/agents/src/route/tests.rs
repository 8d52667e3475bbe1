#![allow(clippy::unwrap_used)]
use super::*;

fn check(router: &Router, route: Route, intent: &str, cases: &[&str]) {
    for text in cases {
        let d = router.decide(text);
        assert_eq!(
            (d.route, d.intent.as_str()),
            (route, intent),
            "{text:?} (normalised {:?})",
            d.normalized
        );
    }
}

#[test]
fn instant_table() {
    let r = Router::with_defaults().unwrap();
    check(
        &r,
        Route::Instant,
        "time",
        &[
            "What time is it?",
            "what's the time",
            "Do you know the time?",
            "time please",
        ],
    );
    check(
        &r,
        Route::Instant,
        "date",
        &[
            "What's the date today?",
            "what day is it",
            "What is today's date",
        ],
    );
    check(
        &r,
        Route::Instant,
        "greeting",
        &[
            "Hello!",
            "good morning barnabee",
            "hey there",
            "how are you",
        ],
    );
    check(
        &r,
        Route::Instant,
        "timer_set",
        &[
            "Set a timer for 5 minutes",
            "start a ten minute timer",
            "timer for 30 seconds",
        ],
    );
    check(
        &r,
        Route::Instant,
        "timer_cancel",
        &["cancel the timer", "stop my timer"],
    );
    check(&r, Route::Instant, "thanks", &["thank you", "Thanks!"]);
}

#[test]
fn action_table() {
    let r = Router::with_defaults().unwrap();
    check(
        &r,
        Route::Action,
        "control",
        &[
            "Turn on the kitchen lights",
            "turn the kitchen lights off",
            "please switch off the lights in the bedroom",
            "close the hall window",
            "lock the kitchen door",
            "dim the living room lights to 20%",
            "set the bedroom light to 40 percent",
            "kitchen lights on",
            "could you turn on the fairy lights",
            "open the garage door",
        ],
    );
    check(
        &r,
        Route::Action,
        "query",
        &["is the kitchen light on", "are the living room lights off?"],
    );
}

#[test]
fn memory_table() {
    let r = Router::with_defaults().unwrap();
    check(
        &r,
        Route::Memory,
        "remember",
        &[
            "Remember that Ana's dentist is on Friday",
            "remember to turn off the oven",
            "don't forget that the plumber comes Tuesday",
            "make a note that the car needs an oil change",
            "remind me to call grandma",
        ],
    );
    check(
        &r,
        Route::Memory,
        "recall",
        &[
            "When is Ana's dentist?",
            "what did I tell you about the wifi password",
            "do you remember where I parked",
            "what's my sister's birthday",
        ],
    );
}

#[test]
fn interaction_table() {
    let r = Router::with_defaults().unwrap();
    for text in [
        "Why is the sky blue?",
        "tell me a joke",
        "what is the meaning of life",
        "play some jazz",
        "blorp",
    ] {
        let d = r.decide(text);
        assert_eq!(d.route, Route::Interaction, "{text}");
    }
    let d = r.decide("blorp");
    assert_eq!((d.rule, d.confidence), (None, FALLBACK_CONFIDENCE));
    assert!(r.decide("why is the sky blue").confidence > FALLBACK_CONFIDENCE);
}

#[test]
fn operator_rules_come_first() {
    let extra = "[[rule]]\nroute = \"action\"\nintent = \"control\"\nconfidence = 0.99\npatterns = ['^movie time$']\n[[rule]]\nroute = \"interaction\"\nintent = \"chat\"\npatterns = ['^what time is it in ']\n";
    let r = Router::from_sources(&[
        ("ops.toml".into(), extra.into()),
        ("defaults".into(), DEFAULT_RULES.into()),
    ])
    .unwrap();
    assert_eq!(r.decide("Movie time!").route, Route::Action);
    assert_eq!(
        r.decide("what time is it in Tokyo").route,
        Route::Interaction
    );
    assert_eq!(r.decide("what time is it").route, Route::Instant);
}

#[test]
fn bad_rules_name_the_rule() {
    let err = Router::from_sources(&[(
        "ops.toml".into(),
        "[[rule]]\nroute = \"action\"\nintent = \"x\"\npatterns = ['(unclosed']\n".into(),
    )])
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("ops.toml") && err.contains("rule[0]") && err.contains("(unclosed"),
        "{err}"
    );
    let err = Router::from_sources(&[(
        "ops.toml".into(),
        "[[rule]]\nroute = \"elsewhere\"\nintent = \"x\"\npatterns = ['a']\n".into(),
    )])
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("ops.toml") && err.contains("elsewhere"),
        "{err}"
    );
}

#[test]
fn normalisation() {
    assert_eq!(
        normalize("  Turn ON the Kitchen-Lights, please!! "),
        "turn on the kitchen lights please"
    );
    assert_eq!(normalize("It’s 5:30"), "it's 5:30");
    assert_eq!(
        normalize("set it to 20.5 degrees."),
        "set it to 20.5 degrees"
    );
}

/// The corpus (`testdata/router/corpus.tsv`: expected route, tab, utterance) routes exactly.
#[test]
fn corpus_routes_as_labelled() {
    let text = include_str!("../../testdata/router/corpus.tsv");
    let r = Router::with_defaults().unwrap();
    let mut n = 0;
    let mut wrong = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (want, utterance) = line.split_once('\t').unwrap();
        let want = Route::parse(want).unwrap();
        let got = r.decide(utterance);
        if got.route != want {
            wrong.push(format!(
                "{utterance:?}: want {want:?}, got {:?}/{}",
                got.route, got.intent
            ));
        }
        n += 1;
    }
    assert!(n >= 1000, "corpus has only {n} utterances");
    assert!(
        wrong.is_empty(),
        "{} of {n} misrouted:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
