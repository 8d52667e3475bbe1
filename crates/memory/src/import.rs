//! `barnabee-memory import DIR`: the previous system's JSON exports.
//!
//! Files: `memories*.json`, `conversations*.json`, `chat_history*.json`; each an array of
//! records or an object holding one (`{"memories": [...]}`, `{"conversations": [...]}`).
//! Field mapping (V1 -> V2): summary|title -> summary, content|text -> content,
//! keywords|tags -> keywords, type|category -> memory_type, owner|user -> owner,
//! turns|messages -> turns. A chat history may also be a flat list of messages grouped by
//! `session_id`/`conversation_id`. Every record gets an `external_id` (`v1:...`), so running the
//! import twice takes nothing twice. Every record not taken is reported with the reason.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rusqlite::params;
use serde_json::{Map, Value};

use crate::error::{StoreError, sql};
use crate::model::{MemoryType, NewMemory, Visibility};
use crate::store::{Store, audit, json_list};
use crate::time::{now_ms, parse_iso8601};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no memories*.json, conversations*.json or chat_history*.json in {0}")]
    NothingToImport(PathBuf),
    #[error("database: {0}")]
    Store(#[from] StoreError),
}

/// One record not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub file: String,
    /// Index in the file's list; `None` for the whole file.
    pub index: Option<usize>,
    pub id: Option<String>,
    pub reason: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub files: Vec<String>,
    pub memories: usize,
    pub conversations: usize,
    pub turns: usize,
    /// Already imported earlier (same external id).
    pub duplicates: usize,
    pub rejected: Vec<Rejected>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "files: {}", self.files.join(", "))?;
        writeln!(
            f,
            "imported: {} memories, {} conversations, {} turns; {} already imported; {} rejected",
            self.memories,
            self.conversations,
            self.turns,
            self.duplicates,
            self.rejected.len()
        )?;
        for r in &self.rejected {
            let at = match r.index {
                Some(i) => format!("{}[{i}]", r.file),
                None => r.file.clone(),
            };
            let id =
                r.id.as_ref()
                    .map(|i| format!(" (id {i})"))
                    .unwrap_or_default();
            writeln!(f, "rejected {at}{id}: {}", r.reason)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memories,
    Conversations,
}

fn kind_of(name: &str) -> Option<Kind> {
    if !name.ends_with(".json") {
        return None;
    }
    if name.starts_with("memories") {
        Some(Kind::Memories)
    } else if name.starts_with("conversations") || name.starts_with("chat_history") {
        Some(Kind::Conversations)
    } else {
        None
    }
}

/// Import every export file in `dir` (in name order).
pub fn import_dir(store: &Store, dir: &Path, default_owner: &str) -> Result<Report, ImportError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ImportError::ReadDir {
        path: dir.to_owned(),
        source,
    })?;
    let mut files: Vec<(String, Kind, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            Some((name.clone(), kind_of(&name)?, e.path()))
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if files.is_empty() {
        return Err(ImportError::NothingToImport(dir.to_owned()));
    }
    let mut report = Report::default();
    for (name, kind, path) in files {
        report.files.push(name.clone());
        let reject_file = |report: &mut Report, reason: String| {
            report.rejected.push(Rejected {
                file: name.clone(),
                index: None,
                id: None,
                reason,
            })
        };
        let value: Value = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("not JSON: {e}")))
        {
            Ok(v) => v,
            Err(reason) => {
                reject_file(&mut report, reason);
                continue;
            }
        };
        let key = match kind {
            Kind::Memories => "memories",
            Kind::Conversations => "conversations",
        };
        let list = match value {
            Value::Array(a) => a,
            Value::Object(mut o) => match o
                .remove(key)
                .or_else(|| o.remove("messages"))
                .or_else(|| o.remove("items"))
            {
                Some(Value::Array(a)) => a,
                _ => {
                    reject_file(
                        &mut report,
                        format!("expected a list or an object with a \"{key}\" list"),
                    );
                    continue;
                }
            },
            _ => {
                reject_file(&mut report, "expected a JSON list of records".into());
                continue;
            }
        };
        match kind {
            Kind::Memories => import_memories(store, &name, list, default_owner, &mut report)?,
            Kind::Conversations => import_conversations(store, &name, list, &mut report)?,
        }
    }
    store.with_write_tx(|tx| {
        audit(
            tx,
            Some("import"),
            "import",
            "directory",
            &dir.display().to_string(),
            Some(&format!(
                "{} memories, {} conversations, {} turns, {} rejected",
                report.memories,
                report.conversations,
                report.turns,
                report.rejected.len()
            )),
        )
    })?;
    Ok(report)
}

fn str_field<'a>(o: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| o.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn id_of(o: &Map<String, Value>) -> Option<String> {
    match o.get("id").or_else(|| o.get("uuid")) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// A time as ISO 8601 text or a number (seconds, or milliseconds when it is that large).
fn time_field(o: &Map<String, Value>, keys: &[&str]) -> Result<Option<i64>, String> {
    for k in keys {
        match o.get(*k) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => {
                return parse_iso8601(s)
                    .map(Some)
                    .ok_or_else(|| format!("{k}: cannot parse time {s:?}"));
            }
            Some(Value::Number(n)) => {
                let Some(x) = n.as_f64() else { continue };
                let ms = if x.abs() < 1e11 { x * 1000.0 } else { x };
                return Ok(Some(ms as i64));
            }
            Some(other) => return Err(format!("{k}: expected a time, got {other}")),
        }
    }
    Ok(None)
}

fn list_field(o: &Map<String, Value>, keys: &[&str]) -> Result<Vec<String>, String> {
    for k in keys {
        match o.get(*k) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => {
                return Ok(s
                    .split(',')
                    .map(|w| w.trim().to_owned())
                    .filter(|w| !w.is_empty())
                    .collect());
            }
            Some(Value::Array(a)) => {
                return a
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.trim().to_owned()),
                        other => Err(format!("{k}: expected strings, got {other}")),
                    })
                    .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
                    .collect();
            }
            Some(other) => return Err(format!("{k}: expected a list, got {other}")),
        }
    }
    Ok(Vec::new())
}

/// V1 types and categories onto the eight V2 types.
pub fn map_type(v1: &str) -> Option<MemoryType> {
    let t = v1.trim().to_lowercase();
    if let Some(t) = MemoryType::parse(&t) {
        return Some(t);
    }
    Some(match t.as_str() {
        "facts" | "knowledge" | "info" | "information" | "general" => MemoryType::Fact,
        "preferences" | "like" | "likes" | "dislike" | "dislikes" | "taste" => {
            MemoryType::Preference
        }
        "decisions" | "choice" => MemoryType::Decision,
        "events" | "reminder" | "reminders" | "calendar" | "appointment" => MemoryType::Event,
        "people" | "contact" | "contacts" | "relationship" | "family" => MemoryType::Person,
        "projects" | "task" | "tasks" | "todo" => MemoryType::Project,
        "meetings" => MemoryType::Meeting,
        "diary" | "note" | "notes" | "journals" => MemoryType::Journal,
        _ => return None,
    })
}

fn memory_from(
    o: &Map<String, Value>,
    file: &str,
    index: usize,
    default_owner: &str,
) -> Result<NewMemory, String> {
    let content = str_field(o, &["content", "text", "body"])
        .unwrap_or("")
        .to_owned();
    let summary = match str_field(o, &["summary", "title"]) {
        Some(s) => s.to_owned(),
        None if !content.is_empty() => {
            let first = content.lines().next().unwrap_or("");
            first.chars().take(200).collect()
        }
        None => return Err("no summary/title and no content/text".into()),
    };
    let memory_type = match str_field(o, &["memory_type", "type", "category"]) {
        None => MemoryType::Fact,
        Some(t) => map_type(t).ok_or_else(|| format!("unknown type/category {t:?}"))?,
    };
    let named_owner = str_field(o, &["owner", "user", "user_id", "username"]);
    let visibility = match str_field(o, &["visibility"]) {
        Some("private") => Visibility::Private,
        Some("family" | "shared" | "public") => Visibility::Family,
        Some(v) => return Err(format!("unknown visibility {v:?}")),
        None => match o.get("private").and_then(Value::as_bool) {
            Some(true) => Visibility::Private,
            Some(false) => Visibility::Family,
            None if named_owner.is_some() => Visibility::Private,
            None => Visibility::Family,
        },
    };
    let created_at = time_field(o, &["created_at", "created", "timestamp", "date"])?;
    let expires_at = time_field(o, &["expires_at", "expires"])?;
    let external_id = match id_of(o) {
        Some(id) => format!("v1:memory:{id}"),
        None => format!("v1:{file}#{index}"),
    };
    Ok(NewMemory {
        summary,
        content,
        keywords: list_field(o, &["keywords", "tags"])?,
        memory_type,
        owner: named_owner.unwrap_or(default_owner).to_owned(),
        visibility,
        source: Some(format!("import:v1:{file}")),
        created_at,
        expires_at,
        embedding: None,
        embedding_model: None,
        external_id: Some(external_id),
    })
}

fn import_memories(
    store: &Store,
    file: &str,
    list: Vec<Value>,
    default_owner: &str,
    report: &mut Report,
) -> Result<(), ImportError> {
    for (index, v) in list.into_iter().enumerate() {
        let reject = |report: &mut Report, id: Option<String>, reason: String| {
            report.rejected.push(Rejected {
                file: file.to_owned(),
                index: Some(index),
                id,
                reason,
            })
        };
        let Value::Object(o) = v else {
            reject(report, None, "not a JSON object".into());
            continue;
        };
        let new = match memory_from(&o, file, index, default_owner) {
            Ok(n) => n,
            Err(reason) => {
                reject(report, id_of(&o), reason);
                continue;
            }
        };
        match store.create_memory(new) {
            Ok(_) => report.memories += 1,
            Err(StoreError::Conflict(_)) => report.duplicates += 1,
            Err(StoreError::Invalid { field, message }) => {
                reject(report, id_of(&o), format!("{field}: {message}"))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// One turn before insertion.
#[derive(Debug, Clone, PartialEq)]
struct TurnIn {
    role: String,
    utterance: String,
    response: Option<String>,
    route: Option<String>,
    latency_ms: Option<i64>,
    at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
struct ConversationIn {
    external_id: String,
    speaker: Option<String>,
    mode: Option<String>,
    started_at: Option<i64>,
    ended_at: Option<i64>,
    summary: Option<String>,
    tags: Vec<String>,
    turns: Vec<TurnIn>,
}

fn is_message(o: &Map<String, Value>) -> bool {
    o.contains_key("role") && !o.contains_key("turns") && !o.contains_key("messages")
}

/// Pair chat messages into turns: a user message opens a turn, the next assistant message is
/// its response.
fn turns_from_messages(msgs: &[Value]) -> Result<Vec<TurnIn>, String> {
    let mut turns: Vec<TurnIn> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let Value::Object(o) = m else {
            return Err(format!("messages[{i}]: not an object"));
        };
        let role = str_field(o, &["role", "sender"])
            .unwrap_or("user")
            .to_lowercase();
        let text = str_field(o, &["content", "text", "message"])
            .ok_or_else(|| format!("messages[{i}]: no content/text"))?
            .to_owned();
        let at = time_field(o, &["timestamp", "created_at", "time"])
            .map_err(|e| format!("messages[{i}]: {e}"))?;
        match role.as_str() {
            "assistant" | "bot" | "barnabee" | "ai" => match turns.last_mut() {
                Some(t) if t.response.is_none() && t.role == "user" => t.response = Some(text),
                _ => turns.push(TurnIn {
                    role: "assistant".into(),
                    utterance: String::new(),
                    response: Some(text),
                    route: None,
                    latency_ms: None,
                    at,
                }),
            },
            "system" => continue,
            _ => turns.push(TurnIn {
                role: "user".into(),
                utterance: text,
                response: None,
                route: str_field(o, &["route"]).map(str::to_owned),
                latency_ms: None,
                at,
            }),
        }
    }
    Ok(turns)
}

fn turns_from_turns(list: &[Value]) -> Result<Vec<TurnIn>, String> {
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let Value::Object(o) = t else {
                return Err(format!("turns[{i}]: not an object"));
            };
            let utterance = str_field(o, &["utterance", "user", "input", "query", "text"])
                .ok_or_else(|| format!("turns[{i}]: no utterance/user/input/text"))?;
            Ok(TurnIn {
                role: str_field(o, &["role"]).unwrap_or("user").to_owned(),
                utterance: utterance.to_owned(),
                response: str_field(o, &["response", "assistant", "output", "reply"])
                    .map(str::to_owned),
                route: str_field(o, &["route", "agent"]).map(str::to_owned),
                latency_ms: o.get("latency_ms").and_then(Value::as_i64),
                at: time_field(o, &["timestamp", "created_at", "time"])
                    .map_err(|e| format!("turns[{i}]: {e}"))?,
            })
        })
        .collect()
}

fn conversation_from(
    o: &Map<String, Value>,
    file: &str,
    index: usize,
) -> Result<ConversationIn, String> {
    let turns = match (o.get("turns"), o.get("messages")) {
        (Some(Value::Array(t)), _) => turns_from_turns(t)?,
        (_, Some(Value::Array(m))) => turns_from_messages(m)?,
        (None, None) => return Err("no turns/messages".into()),
        _ => return Err("turns/messages is not a list".into()),
    };
    Ok(ConversationIn {
        external_id: match id_of(o)
            .or_else(|| str_field(o, &["session_id", "conversation_id"]).map(str::to_owned))
        {
            Some(id) => format!("v1:conversation:{id}"),
            None => format!("v1:{file}#{index}"),
        },
        speaker: str_field(o, &["speaker", "user", "owner", "user_id"]).map(str::to_owned),
        mode: str_field(o, &["mode"]).map(str::to_owned),
        started_at: time_field(o, &["started_at", "start_time", "created_at", "timestamp"])?,
        ended_at: time_field(o, &["ended_at", "end_time"])?,
        summary: str_field(o, &["summary", "title"]).map(str::to_owned),
        tags: list_field(o, &["topic_tags", "tags", "topics"])?,
        turns,
    })
}

/// A flat list of messages (chat_history): group by session, keep first-seen order.
fn group_messages(list: &[Value], file: &str) -> Vec<(usize, Result<ConversationIn, String>)> {
    let mut groups: BTreeMap<String, (usize, Vec<Value>)> = BTreeMap::new();
    let mut order = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let session = v
            .as_object()
            .and_then(|o| {
                ["session_id", "conversation_id", "chat_id"]
                    .iter()
                    .find_map(|k| o.get(*k))
                    .map(|s| {
                        s.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| s.to_string())
                    })
            })
            .unwrap_or_else(|| file.to_owned());
        let e = groups.entry(session.clone()).or_insert_with(|| {
            order.push(session.clone());
            (i, Vec::new())
        });
        e.1.push(v.clone());
    }
    order
        .into_iter()
        .filter_map(|s| groups.remove(&s).map(|g| (s, g)))
        .map(|(session, (first, msgs))| {
            let conv = turns_from_messages(&msgs).map(|turns| {
                let speaker = msgs.iter().find_map(|m| {
                    let o = m.as_object()?;
                    str_field(o, &["user", "speaker", "user_id"]).map(str::to_owned)
                });
                ConversationIn {
                    external_id: format!("v1:conversation:{session}"),
                    speaker,
                    mode: None,
                    started_at: turns.iter().find_map(|t| t.at),
                    ended_at: turns.iter().rev().find_map(|t| t.at),
                    summary: None,
                    tags: Vec::new(),
                    turns,
                }
            });
            (first, conv)
        })
        .collect()
}

fn import_conversations(
    store: &Store,
    file: &str,
    list: Vec<Value>,
    report: &mut Report,
) -> Result<(), ImportError> {
    let flat = !list.is_empty() && list.iter().all(|v| v.as_object().is_some_and(is_message));
    let parsed: Vec<(usize, Option<String>, Result<ConversationIn, String>)> = if flat {
        group_messages(&list, file)
            .into_iter()
            .map(|(i, c)| (i, None, c))
            .collect()
    } else {
        list.iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(o) => (i, id_of(o), conversation_from(o, file, i)),
                _ => (i, None, Err("not a JSON object".into())),
            })
            .collect()
    };
    for (index, id, conv) in parsed {
        let conv = match conv {
            Ok(c) => c,
            Err(reason) => {
                report.rejected.push(Rejected {
                    file: file.to_owned(),
                    index: Some(index),
                    id,
                    reason,
                });
                continue;
            }
        };
        match insert_conversation(store, &conv)? {
            Some(turns) => {
                report.conversations += 1;
                report.turns += turns;
            }
            None => report.duplicates += 1,
        }
    }
    Ok(())
}

/// One transaction per conversation; `None` if it was imported before.
fn insert_conversation(store: &Store, c: &ConversationIn) -> Result<Option<usize>, StoreError> {
    store.with_write_tx(|tx| {
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM conversations WHERE external_id = ?1)",
                [&c.external_id],
                |r| r.get(0),
            )
            .map_err(sql("import conversation"))?;
        if exists {
            return Ok(None);
        }
        let now = now_ms();
        let started = c.started_at.or_else(|| c.turns.iter().find_map(|t| t.at)).unwrap_or(now);
        tx.execute(
            "INSERT INTO conversations (started_at, ended_at, speaker, mode, summary, topic_tags, external_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![started, c.ended_at, c.speaker, c.mode, c.summary, json_list(&c.tags), c.external_id],
        )
        .map_err(sql("import conversation"))?;
        let id = tx.last_insert_rowid();
        for (n, t) in c.turns.iter().enumerate() {
            tx.execute(
                "INSERT INTO turns (conversation_id, number, role, utterance, response, route, latency_ms, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, n as i64 + 1, t.role, t.utterance, t.response, t.route, t.latency_ms, t.at.unwrap_or(started)],
            )
            .map_err(sql("import turn"))?;
        }
        Ok(Some(c.turns.len()))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn type_mapping() {
        assert_eq!(map_type("Preferences"), Some(MemoryType::Preference));
        assert_eq!(map_type("reminder"), Some(MemoryType::Event));
        assert_eq!(map_type("meeting"), Some(MemoryType::Meeting));
        assert_eq!(map_type("gossip"), None);
    }

    #[test]
    fn messages_pair_into_turns() {
        let msgs: Vec<Value> = serde_json::from_str(
            r#"[{"role":"system","content":"be nice"},{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":"bye"}]"#,
        )
        .unwrap();
        let t = turns_from_messages(&msgs).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].utterance, "hi");
        assert_eq!(t[0].response.as_deref(), Some("hello"));
        assert_eq!(t[1].response, None);
    }
}
