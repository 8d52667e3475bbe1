//! The action agent: resolve the device, call the Home Assistant service, and confirm the
//! state actually changed (HA answers 200 `[]` even for unknown entities or no change).

use std::time::{Duration, Instant};

use barnabee_service::health::Component;
use serde_json::{Value, json};

use super::ActionRecord;
use crate::guard::{Guard, Pending, Who};
use crate::ha::{Entity, HaClient, HaError, Resolution};
use crate::route::action::{self as parse, Verb};

pub struct ActionAgent {
    ha: Result<HaClient, String>,
    confirm_timeout: Duration,
    health: Option<Component>,
    /// Hand what we cannot parse or resolve to HA's conversation API.
    conversation_fallback: bool,
    /// Locks, garage doors, …: who may, and the spoken "yes" (`crate::guard`).
    pub guard: Guard,
}

/// What one request came to: the reply, what was done, and the action waiting for its "yes"
/// when the devices are guarded.
#[derive(Debug)]
pub struct Handled {
    pub text: String,
    pub records: Vec<ActionRecord>,
    pub pending: Option<Pending>,
}

impl Handled {
    fn said(text: String, records: Vec<ActionRecord>) -> Handled {
        Handled {
            text,
            records,
            pending: None,
        }
    }
}

/// How far the device got towards the requested state.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Progress {
    Done,
    /// A cover or lock is moving towards it ("opening").
    Moving,
    NotYet,
}

fn check(verb: Verb, before: &Entity, now: &Entity) -> Progress {
    let s = now.state.as_str();
    let done_or = |done: &str, moving: &str| {
        if s == done {
            Progress::Done
        } else if s == moving {
            Progress::Moving
        } else {
            Progress::NotYet
        }
    };
    let attr = |k: &str| now.attributes[k].as_f64();
    match verb {
        Verb::TurnOn => done_or("on", "\u{0}"),
        Verb::TurnOff => done_or("off", "\u{0}"),
        Verb::Toggle => {
            if s != before.state {
                Progress::Done
            } else {
                Progress::NotYet
            }
        }
        Verb::Open => done_or("open", "opening"),
        Verb::Close => done_or("closed", "closing"),
        Verb::Lock => done_or("locked", "locking"),
        Verb::Unlock => done_or("unlocked", "unlocking"),
        Verb::SetLevel(p) => match now.domain() {
            "light" if p == 0 => done_or("off", "\u{0}"),
            "light" => {
                let want = (f64::from(p) * 255.0 / 100.0).round();
                match attr("brightness") {
                    Some(b) if s == "on" && (b - want).abs() <= 3.0 => Progress::Done,
                    _ => Progress::NotYet,
                }
            }
            "cover" => match attr("current_position") {
                Some(pos) if (pos - f64::from(p)).abs() < 1.0 => Progress::Done,
                _ if s == "opening" || s == "closing" => Progress::Moving,
                _ => Progress::NotYet,
            },
            "fan" => match attr("percentage") {
                Some(x) if (x - f64::from(p)).abs() < 1.0 => Progress::Done,
                _ => Progress::NotYet,
            },
            _ => Progress::NotYet,
        },
        Verb::SetTemperature(t) => match attr("temperature") {
            Some(x) if (x - t).abs() < 0.01 => Progress::Done,
            _ => Progress::NotYet,
        },
        Verb::Query => Progress::Done,
    }
}

fn service(verb: Verb, domain: &str) -> (&'static str, &'static str, Value) {
    let d: &'static str = match domain {
        "light" => "light",
        "switch" => "switch",
        "fan" => "fan",
        "cover" => "cover",
        "lock" => "lock",
        "climate" => "climate",
        "media_player" => "media_player",
        "humidifier" => "humidifier",
        "input_boolean" => "input_boolean",
        _ => "homeassistant",
    };
    match verb {
        Verb::TurnOn => (d, "turn_on", json!({})),
        Verb::TurnOff => (d, "turn_off", json!({})),
        Verb::Toggle => (d, "toggle", json!({})),
        Verb::Open => ("cover", "open_cover", json!({})),
        Verb::Close => ("cover", "close_cover", json!({})),
        Verb::Lock => ("lock", "lock", json!({})),
        Verb::Unlock => ("lock", "unlock", json!({})),
        Verb::SetLevel(p) => match d {
            "cover" => ("cover", "set_cover_position", json!({"position": p})),
            "fan" => ("fan", "set_percentage", json!({"percentage": p})),
            _ if p == 0 => (d, "turn_off", json!({})),
            _ => (d, "turn_on", json!({"brightness_pct": p})),
        },
        Verb::SetTemperature(t) => ("climate", "set_temperature", json!({"temperature": t})),
        Verb::Query => (d, "", json!({})),
    }
}

fn past(verb: Verb, moving: bool) -> String {
    if moving {
        return match verb {
            Verb::Open | Verb::SetLevel(_) => "Opening".into(),
            Verb::Close => "Closing".into(),
            Verb::Lock => "Locking".into(),
            Verb::Unlock => "Unlocking".into(),
            _ => "Changing".into(),
        };
    }
    match verb {
        Verb::TurnOn => "Turned on".into(),
        Verb::TurnOff => "Turned off".into(),
        Verb::Toggle => "Toggled".into(),
        Verb::Open => "Opened".into(),
        Verb::Close => "Closed".into(),
        Verb::Lock => "Locked".into(),
        Verb::Unlock => "Unlocked".into(),
        Verb::SetLevel(_) | Verb::SetTemperature(_) => "Set".into(),
        Verb::Query => "Checked".into(),
    }
}

fn suffix(verb: Verb) -> String {
    match verb {
        Verb::SetLevel(p) => format!(" to {p}%"),
        Verb::SetTemperature(t) => format!(" to {t} degrees"),
        _ => String::new(),
    }
}

fn join_names(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn next_pending_id() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A target that names no device but the one just talked about.
fn is_pronoun(target: &str) -> bool {
    matches!(
        target.trim(),
        "it" | "them" | "that" | "those" | "this" | "these" | "them all" | "it again"
    )
}

impl ActionAgent {
    /// `ha`: the client, or why there is none ("not configured", "token file unreadable").
    pub fn new(
        ha: Result<HaClient, String>,
        confirm_timeout: Duration,
        health: Option<Component>,
        guard: Guard,
    ) -> Self {
        Self {
            ha,
            confirm_timeout,
            health,
            conversation_fallback: false,
            guard,
        }
    }

    pub fn with_conversation_fallback(mut self, on: bool) -> Self {
        self.conversation_fallback = on;
        self
    }

    /// Ask HA's conversation agent. Only a success (`action_done`, `query_answer`) is used;
    /// HA's error text is never spoken. Entities HA reports as changed are read back.
    async fn conversation(
        &self,
        ha: &HaClient,
        normalized: &str,
    ) -> Option<(String, Vec<ActionRecord>)> {
        if !self.conversation_fallback {
            return None;
        }
        let response = match ha.conversation(normalized).await {
            Ok(r) => r,
            Err(e) => {
                log::warn!(event = "ha_conversation_failed"; "{e}");
                return None;
            }
        };
        let kind = response["response_type"].as_str().unwrap_or("");
        let speech = response["speech"]["plain"]["speech"]
            .as_str()
            .unwrap_or("")
            .trim()
            .to_owned();
        match kind {
            "query_answer" if !speech.is_empty() => Some((speech, Vec::new())),
            "action_done" => {
                let mut records = Vec::new();
                let targets = response["data"]["success"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for t in targets.iter().filter(|t| t["type"] == "entity") {
                    let Some(id) = t["id"].as_str() else { continue };
                    let after = ha.state(id).await.ok().flatten();
                    records.push(ActionRecord {
                        entity_id: id.to_owned(),
                        name: t["name"].as_str().unwrap_or(id).to_owned(),
                        service: "conversation.process".into(),
                        ok: after.is_some(),
                        state_before: String::new(),
                        state_after: after.map(|e| e.state).unwrap_or_else(|| "missing".into()),
                        outcome: "done_by_home_assistant",
                    });
                }
                let text = if speech.is_empty() {
                    "Done.".to_owned()
                } else if speech.ends_with('.') {
                    speech
                } else {
                    format!("{speech}.")
                };
                Some((text, records))
            }
            _ => {
                log::info!(event = "ha_conversation_no_match", code = response["data"]["code"].as_str().unwrap_or(""); "Home Assistant's conversation agent did not handle it either");
                None
            }
        }
    }

    /// The `home_assistant` health check (shared with the WebSocket worker).
    /// Ask Home Assistant's conversation agent about a request no rule parsed; `None` when HA
    /// is not configured, the fallback is off, or HA did not understand or act.
    pub async fn ask_home_assistant(
        &self,
        normalized: &str,
    ) -> Option<(String, Vec<ActionRecord>)> {
        let ha = self.ha.as_ref().ok()?;
        self.conversation(ha, normalized).await
    }

    pub fn health(&self) -> Option<Component> {
        self.health.clone()
    }

    fn unreachable(&self, e: &HaError, what: &str) -> String {
        if let Some(h) = &self.health {
            h.fail(e.to_string());
        }
        log::warn!(event = "ha_call_failed"; "{what}: {e}");
        match e {
            HaError::Unauthorized => {
                format!("Home Assistant refused my access token, so I couldn't {what}.")
            }
            HaError::Unreachable { .. } => {
                format!("I can't reach Home Assistant right now, so I couldn't {what}.")
            }
            _ => format!("Home Assistant had a problem, so I couldn't {what}."),
        }
    }

    /// Act on one request. `previous`: the entities the session's last acting turn changed,
    /// which a target of "it", "them", "that" … refers to. `who`: for guarded devices.
    pub async fn handle(&self, normalized: &str, previous: &[String], who: &Who<'_>) -> Handled {
        let ha = match &self.ha {
            Ok(ha) => ha,
            Err(why) => {
                return Handled::said(format!("I can't control devices: {why}."), Vec::new());
            }
        };
        let Some(cmd) = parse::parse(normalized) else {
            if let Some((text, records)) = self.conversation(ha, normalized).await {
                return Handled::said(text, records);
            }
            return Handled::said(
                "Sorry, I didn't catch which device and what to do with it.".to_owned(),
                Vec::new(),
            );
        };
        let what = format!("{} the {}", cmd.verb.say(), cmd.target);

        // The index is fed by the WebSocket; before that is up, fill it over REST.
        let empty = ha
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .entities
            .is_empty();
        if empty {
            match ha.states().await {
                Ok(states) => ha
                    .index
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .set_states(&states),
                Err(e) => return Handled::said(self.unreachable(&e, &what), Vec::new()),
            }
        }
        let resolution = if is_pronoun(&cmd.target) {
            if previous.is_empty() {
                return Handled::said(
                    format!("Which device should I {}?", cmd.verb.say()),
                    Vec::new(),
                );
            }
            Resolution::Entities(previous.to_vec())
        } else {
            ha.index
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .resolve_all(&cmd.target, cmd.verb)
        };
        let ids = match resolution {
            Resolution::Entities(ids) => ids,
            Resolution::Unknown { phrase } => {
                if let Some((text, records)) = self.conversation(ha, normalized).await {
                    return Handled::said(text, records);
                }
                return Handled::said(
                    format!(
                        "I couldn't find a device called \"{phrase}\", so I didn't change anything."
                    ),
                    Vec::new(),
                );
            }
            Resolution::Ambiguous { phrase, options } => {
                let shown: Vec<String> = options.iter().take(4).cloned().collect();
                return Handled::said(
                    format!(
                        "Which {phrase} do you mean? For example {}.",
                        join_names(&shown).replace(" and ", " or ")
                    ),
                    Vec::new(),
                );
            }
        };
        if let Some(guarded) = self.guarded(ha, cmd.verb, &ids, who) {
            return guarded;
        }
        let (text, records) = self.act(cmd.verb, &ids).await;
        Handled::said(text, records)
    }

    /// `None` when none of `ids` is guarded for `verb`; else the refusal or the question.
    fn guarded(&self, ha: &HaClient, verb: Verb, ids: &[String], who: &Who<'_>) -> Option<Handled> {
        let (guarded, names) = {
            let index = ha.index.read().unwrap_or_else(|e| e.into_inner());
            let guarded = ids.iter().any(|id| {
                let class = index
                    .entities
                    .get(id)
                    .and_then(|e| e.attributes["device_class"].as_str());
                self.guard.guarded(verb, id, class)
            });
            let names: Vec<String> = ids
                .iter()
                .map(|id| {
                    index
                        .entities
                        .get(id)
                        .map_or_else(|| id.clone(), |e| e.name.clone())
                })
                .collect();
            (guarded, join_names(&names))
        };
        if !guarded {
            return None;
        }
        let what = format!("{} {names}", verb.say());
        match self.guard.check(who, verb, ids, &names) {
            Err((reply, outcome)) => {
                self.guard.audit.record(who, &what, ids, outcome);
                Some(Handled::said(reply, Vec::new()))
            }
            Ok(speaker) => {
                self.guard.audit.record(who, &what, ids, "asked");
                let mut question = what.clone();
                if let Some(first) = question.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                Some(Handled {
                    text: format!("{question}? Say yes to confirm."),
                    records: Vec::new(),
                    pending: Some(Pending {
                        id: next_pending_id(),
                        verb,
                        entity_ids: ids.to_vec(),
                        names,
                        speaker,
                        expires: std::time::Instant::now() + self.guard.confirm_timeout(),
                    }),
                })
            }
        }
    }

    /// Call the services for `verb` on `ids` (already resolved, and confirmed when guarded).
    pub async fn act(&self, verb: Verb, ids: &[String]) -> (String, Vec<ActionRecord>) {
        let ha = match &self.ha {
            Ok(ha) => ha,
            Err(why) => return (format!("I can't control devices: {why}."), Vec::new()),
        };
        let what = format!("{} {}", verb.say(), ids.join(", "));
        let mut records = Vec::new();
        for id in ids {
            match self.one(ha, id, verb).await {
                Ok(r) => records.push(r),
                Err(e) => return (self.unreachable(&e, &what), records),
            }
        }
        if let Some(h) = &self.health
            && !h.get().ok
        {
            // A REST call just worked; the WebSocket worker will say more when it reconnects.
            h.ok(format!("reachable at {}", ha.base));
        }
        (self.reply(verb, &records), records)
    }

    async fn one(&self, ha: &HaClient, id: &str, verb: Verb) -> Result<ActionRecord, HaError> {
        let Some(before) = ha.state(id).await? else {
            return Ok(ActionRecord {
                entity_id: id.to_owned(),
                name: id.to_owned(),
                service: String::new(),
                ok: false,
                state_before: "missing".into(),
                state_after: "missing".into(),
                outcome: "error",
            });
        };
        let record = |service: String, ok, after: &Entity, outcome| ActionRecord {
            entity_id: id.to_owned(),
            name: before.name.clone(),
            service,
            ok,
            state_before: before.state.clone(),
            state_after: after.state.clone(),
            outcome,
        };
        if verb == Verb::Query {
            return Ok(record(String::new(), true, &before, "done"));
        }
        if verb != Verb::Toggle && check(verb, &before, &before) == Progress::Done {
            return Ok(record(String::new(), true, &before, "already"));
        }
        let (domain, svc, mut data) = service(verb, before.domain());
        data["entity_id"] = json!(id);
        ha.call_service(domain, svc, &data).await?;
        let service_name = format!("{domain}.{svc}");
        // Confirm: poll the state until it matches or the confirm timeout passes.
        let deadline = Instant::now() + self.confirm_timeout;
        let mut last = before.clone();
        loop {
            if let Some(now) = ha.state(id).await? {
                match check(verb, &before, &now) {
                    Progress::Done => return Ok(record(service_name, true, &now, "done")),
                    Progress::Moving => return Ok(record(service_name, true, &now, "moving")),
                    Progress::NotYet => last = now,
                }
            }
            if Instant::now() >= deadline {
                log::warn!(entity_id = id, event = "ha_not_confirmed"; "{service_name} did not change {id} (still {})", last.state);
                return Ok(record(service_name, false, &last, "not_confirmed"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn reply(&self, verb: Verb, records: &[ActionRecord]) -> String {
        let names = |outcome: &str| -> Vec<String> {
            records
                .iter()
                .filter(|r| r.outcome == outcome)
                .map(|r| r.name.clone())
                .collect()
        };
        let mut parts = Vec::new();
        if verb == Verb::Query {
            for r in records {
                parts.push(format!("{} is {}.", r.name, r.state_after));
            }
            return parts.join(" ");
        }
        let done = names("done");
        if !done.is_empty() {
            parts.push(format!(
                "{} {}{}.",
                past(verb, false),
                join_names(&done),
                suffix(verb)
            ));
        }
        let moving = names("moving");
        if !moving.is_empty() {
            parts.push(format!(
                "{} {}{}.",
                past(verb, true),
                join_names(&moving),
                suffix(verb)
            ));
        }
        for r in records.iter().filter(|r| r.outcome == "already") {
            parts.push(format!("{} is already {}.", r.name, r.state_after));
        }
        for r in records.iter().filter(|r| r.outcome == "not_confirmed") {
            parts.push(format!(
                "I asked Home Assistant to {} {}, but it still reports {}.",
                verb.say(),
                r.name,
                r.state_after
            ));
        }
        for r in records.iter().filter(|r| r.outcome == "error") {
            parts.push(format!(
                "{} no longer exists in Home Assistant.",
                r.entity_id
            ));
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(state: &str, attrs: Value) -> Entity {
        Entity {
            entity_id: "light.x".into(),
            name: "X".into(),
            state: state.into(),
            attributes: attrs,
        }
    }

    #[test]
    fn confirmation_rules() {
        let off = e("off", json!({}));
        assert_eq!(
            check(Verb::TurnOn, &off, &e("on", json!({}))),
            Progress::Done
        );
        assert_eq!(check(Verb::TurnOn, &off, &off), Progress::NotYet);
        assert_eq!(check(Verb::Toggle, &off, &off), Progress::NotYet);
        assert_eq!(
            check(
                Verb::SetLevel(40),
                &off,
                &e("on", json!({"brightness": 102}))
            ),
            Progress::Done
        );
        assert_eq!(
            check(
                Verb::SetLevel(40),
                &off,
                &e("on", json!({"brightness": 255}))
            ),
            Progress::NotYet
        );
        assert_eq!(
            check(Verb::Open, &off, &e("opening", json!({}))),
            Progress::Moving
        );
    }

    #[test]
    fn replies_say_what_happened() {
        let guard = Guard::new(
            crate::config::GuardConfig::default(),
            crate::guard::Audit::open(None).unwrap(),
        );
        let a = ActionAgent::new(
            Err("not configured".into()),
            Duration::from_secs(1),
            None,
            guard,
        );
        let r = |name: &str, outcome, after: &str| ActionRecord {
            entity_id: "light.x".into(),
            name: name.into(),
            service: "light.turn_on".into(),
            ok: outcome != "not_confirmed",
            state_before: "off".into(),
            state_after: after.into(),
            outcome,
        };
        assert_eq!(
            a.reply(
                Verb::TurnOn,
                &[
                    r("Kitchen Lights", "done", "on"),
                    r("Bed Light", "done", "on")
                ]
            ),
            "Turned on Kitchen Lights and Bed Light."
        );
        assert_eq!(
            a.reply(Verb::TurnOn, &[r("Kitchen Lights", "already", "on")]),
            "Kitchen Lights is already on."
        );
        assert_eq!(
            a.reply(Verb::TurnOn, &[r("Kitchen Lights", "not_confirmed", "off")]),
            "I asked Home Assistant to turn on Kitchen Lights, but it still reports off."
        );
    }
}
