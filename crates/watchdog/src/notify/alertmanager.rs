//! Alertmanager's webhook payload (version 4) and how each alert becomes a message.
//!
//! One message per alert: severity from `labels.severity` (`critical`/`page` → critical,
//! `warning`/`warn` → warning, `info`/`none` → info, anything else or missing → warning),
//! title from `annotations.summary` (else `labels.alertname`), body from
//! `annotations.description` (else the summary). A resolved alert gives a "Resolved: ..."
//! message. An alert whose (fingerprint, status, startsAt) was already queued within
//! `dedup_window` is skipped: Alertmanager repeats notifications every `repeat_interval`
//! and resends a group when any alert in it changes.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Level, Message};

/// The webhook body; unknown fields (`groupLabels`, `externalURL`, ...) are ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: String,
    #[serde(default)]
    pub fingerprint: String,
}

impl Alert {
    pub fn level(&self) -> Level {
        match self.labels.get("severity").map(|s| s.to_ascii_lowercase()) {
            Some(s) if s == "critical" || s == "page" => Level::Critical,
            Some(s) if s == "info" || s == "none" => Level::Info,
            _ => Level::Warning,
        }
    }

    pub fn resolved(&self) -> bool {
        self.status == "resolved"
    }

    /// What makes two deliveries of this alert the same notification.
    pub fn dedup_key(&self) -> String {
        let id = if self.fingerprint.is_empty() {
            format!("{:?}", self.labels)
        } else {
            self.fingerprint.clone()
        };
        format!("alertmanager|{id}|{}|{}", self.status, self.starts_at)
    }

    pub fn message(&self) -> Message {
        let name = self.labels.get("alertname").cloned();
        let summary = self.annotations.get("summary").cloned();
        let title = summary
            .clone()
            .or(name.clone())
            .unwrap_or_else(|| format!("alert {}", self.fingerprint));
        let mut body = self
            .annotations
            .get("description")
            .cloned()
            .or(summary)
            .unwrap_or_else(|| title.clone());
        if let Some(name) = name {
            body.push_str(&format!("\n\nalert: {name}"));
        }
        for key in ["instance", "unit", "host"] {
            if let Some(v) = self.labels.get(key) {
                body.push_str(&format!("\n{key}: {v}"));
            }
        }
        if !self.starts_at.is_empty() {
            body.push_str(&format!("\nsince: {}", self.starts_at));
        }
        let key = if self.fingerprint.is_empty() {
            format!(
                "am_{}",
                self.labels.get("alertname").map_or("alert", String::as_str)
            )
        } else {
            format!("am_{}", self.fingerprint)
        };
        let firing = Message::new(self.level(), &title, &body, &key, "alertmanager");
        if self.resolved() {
            let mut m = firing.resolved();
            if !self.ends_at.is_empty() {
                m.body.push_str(&format!("\nresolved at: {}", self.ends_at));
            }
            m
        } else {
            firing
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PAYLOAD: &str = r#"{
      "version": "4", "groupKey": "{}:{alertname=\"DiskLow\"}", "truncatedAlerts": 0,
      "status": "firing", "receiver": "barnabee",
      "groupLabels": {"alertname": "DiskLow"}, "commonLabels": {}, "commonAnnotations": {},
      "externalURL": "http://beelink:9093",
      "alerts": [
        {"status": "firing",
         "labels": {"alertname": "DiskLow", "severity": "critical", "instance": "beelink"},
         "annotations": {"summary": "Disk almost full", "description": "/ has 3% free"},
         "startsAt": "2026-12-02T05:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://x", "fingerprint": "c0ffee"},
        {"status": "resolved",
         "labels": {"alertname": "MemoryLow"},
         "annotations": {},
         "startsAt": "2026-12-02T04:00:00Z", "endsAt": "2026-12-02T04:30:00Z",
         "fingerprint": "beef"}
      ]
    }"#;

    #[test]
    fn alerts_become_messages() {
        let p: Payload = serde_json::from_str(PAYLOAD).unwrap();
        assert_eq!(p.version, "4");
        let m = p.alerts[0].message();
        assert_eq!(m.severity, Level::Critical);
        assert_eq!(m.title, "Disk almost full");
        assert!(m.body.starts_with("/ has 3% free"), "{}", m.body);
        assert!(m.body.contains("instance: beelink"), "{}", m.body);
        assert_eq!(m.notification_id(), "barnabee_am_c0ffee");
        assert!(!m.resolved);
        let r = p.alerts[1].message();
        assert!(r.resolved);
        assert_eq!(r.severity, Level::Warning);
        assert_eq!(r.title, "Resolved: MemoryLow");
        assert_eq!(r.notification_id(), "barnabee_am_beef");
        assert_ne!(p.alerts[0].dedup_key(), p.alerts[1].dedup_key());
    }

    #[test]
    fn severity_labels() {
        let mut a: Alert = serde_json::from_str(r#"{"status":"firing"}"#).unwrap();
        assert_eq!(a.level(), Level::Warning);
        for (s, l) in [
            ("page", Level::Critical),
            ("info", Level::Info),
            ("warning", Level::Warning),
        ] {
            a.labels.insert("severity".into(), s.into());
            assert_eq!(a.level(), l, "{s}");
        }
    }
}
