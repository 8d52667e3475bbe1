//! The daemon's configuration (`/etc/barnabee/agents.toml`). Every section but `[service]` is
//! optional: with `[service] listen = "..."` alone the daemon serves, answers instant
//! questions, and reports Home Assistant, the LLM and memory as degraded (not configured).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use barnabee_service::config::{ServiceConfig, seconds};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub service: ServiceConfig,
    /// Where the cost ledger lives; defaults to `$STATE_DIRECTORY` (systemd's StateDirectory=).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub router: RouterConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub session: SessionConfig,
    /// Absent: device control answers "Home Assistant is not configured".
    pub home_assistant: Option<HomeAssistantConfig>,
    #[serde(default)]
    pub llm: LlmConfig,
    #[serde(default)]
    pub budget: BudgetConfig,
    #[serde(default)]
    pub memory: MemoryConfig,
    /// `[replication]`: the cost ledger's replica (memory's section without `verify`), so a
    /// replacement beelink keeps this month's spend. Needs a `state_dir`.
    pub replication: Option<barnabee_replicator::embed::Section>,
    /// `[wyoming]`: Home Assistant's Assist uses Barnabee as its conversation agent over the
    /// Wyoming protocol (a `handle` service). Absent: not served.
    pub wyoming: Option<WyomingConfig>,
    /// `[voice]`: the voice daemon that rings timers (`POST /v1/announce`). Absent: a timer
    /// that ends is only logged (`EVENT=timer_done`).
    pub voice: Option<VoiceConfig>,
    /// `[guard]`: what needs an identified, permitted family member and a spoken "yes".
    #[serde(default)]
    pub guard: GuardConfig,
}

/// Guarded actions (`src/guard.rs`). On by default and closed by default: with no
/// `[guard.members]`, nobody unlocks a door by voice.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Domains whose every entity is guarded.
    pub domains: Vec<String>,
    /// Covers of these device classes are guarded (other covers, blinds, are not).
    pub cover_device_classes: Vec<String>,
    /// More guarded entities, by id.
    pub entities: Vec<String>,
    /// The lowest speaker-identification confidence that counts as knowing who speaks.
    pub min_confidence: f64,
    /// How long the "yes" may take.
    #[serde(with = "seconds")]
    pub confirm_timeout: Duration,
    /// Who may do what: a family member's enrolled name → the domains or entity ids they may
    /// act on (`"*"`: every guarded device; `[]`: none, e.g. a child). Anyone not listed, and
    /// every guest, is refused.
    pub members: BTreeMap<String, Vec<String>>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            domains: ["lock", "alarm_control_panel", "valve"]
                .map(str::to_owned)
                .to_vec(),
            cover_device_classes: ["garage", "gate"].map(str::to_owned).to_vec(),
            entities: Vec::new(),
            min_confidence: 0.75,
            confirm_timeout: Duration::from_secs(20),
            members: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceConfig {
    /// Base URL of barnabee-voice, e.g. `http://127.0.0.1:7703`.
    pub url: String,
}

/// The Wyoming conversation service. Wyoming has no authentication (by design of the protocol):
/// listen on loopback when Home Assistant runs on the beelink, else on the LAN address with
/// the firewall letting in only Home Assistant's host (the NixOS module's `wyoming.allowFrom`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WyomingConfig {
    /// Where to listen, e.g. `127.0.0.1:10800`.
    pub listen: std::net::SocketAddr,
    /// Languages advertised to Home Assistant (its pipeline offers the agent for these) and
    /// accepted in a `transcript`'s `language`; the router's rules are English.
    #[serde(default = "default_wyoming_languages")]
    pub languages: Vec<String>,
}

fn default_wyoming_languages() -> Vec<String> {
    vec!["en".to_owned()]
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Extra rules (TOML, same format as the embedded defaults); they are tried before the
    /// defaults, so an operator's rule wins.
    pub rules_file: Option<PathBuf>,
    /// When no rule matches, ask the LLM (within the budget) to pick the route; counted in
    /// `barnabee_agents_router_decisions_total{method="llm"}`. Off: unmatched utterances go to the interaction agent.
    #[serde(default)]
    pub llm_classifier: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted (bytes); larger bodies get 413.
    pub max_body_bytes: usize,
    /// Longest `text` accepted (characters); longer gets 400 naming `text`.
    pub max_text_chars: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_text_chars: 2000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// A session's context is forgotten after this many seconds without a turn.
    #[serde(with = "seconds")]
    pub ttl: Duration,
    /// Turns kept per session (sent to the LLM as history).
    pub max_turns: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            max_turns: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeAssistantConfig {
    /// Base URL, e.g. `http://homeassistant.local:8123`.
    pub url: String,
    /// File holding a long-lived access token (relative paths: `$CREDENTIALS_DIRECTORY`).
    pub token_file: PathBuf,
    /// Timeout of one REST call.
    #[serde(with = "seconds", default = "default_ha_timeout")]
    pub timeout: Duration,
    /// How long to wait for a device to report its new state after a service call.
    #[serde(with = "seconds", default = "default_confirm_timeout")]
    pub confirm_timeout: Duration,
    /// Requests we cannot parse or resolve go to HA's `/api/conversation/process`; only its
    /// successes are used (its error text is never spoken).
    #[serde(default = "yes")]
    pub conversation_fallback: bool,
}

fn default_ha_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_confirm_timeout() -> Duration {
    Duration::from_secs(3)
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// Tried in order; the next one is used when one fails (connection, 5xx, 429, timeout).
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// USD per million tokens, by model name. Every model of a non-local provider needs one.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
    /// The system prompt of the interaction agent.
    #[serde(default = "default_system_prompt")]
    pub system_prompt: String,
    /// Stream the answer (SSE) from the provider.
    #[serde(default = "yes")]
    pub stream: bool,
    /// A provider that failed this many times in a row is skipped for `breaker_cooldown`.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open circuit skips its provider before one request tries it again.
    #[serde(with = "seconds", default = "default_breaker_cooldown")]
    pub breaker_cooldown: Duration,
    /// `[llm.local_server]`: the family's own OpenAI-compatible server (the beast's llama.cpp),
    /// tried after `providers` and the one used in the yellow band. A table rather than one
    /// more `[[llm.providers]]` entry so a NixOS role can set it without merging lists.
    pub local_server: Option<LocalServerConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalServerConfig {
    /// Base URL up to and including `/v1`, e.g. `http://beast.lan:8080/v1`.
    pub url: String,
    /// The model name sent (llama.cpp's server answers with the one it loaded).
    #[serde(default = "default_local_model")]
    pub model: String,
    #[serde(with = "seconds", default = "default_llm_timeout")]
    pub timeout: Duration,
}

fn default_local_model() -> String {
    "local".to_owned()
}

impl LlmConfig {
    /// `providers`, then the local server as a provider named `local-server`.
    pub fn all_providers(&self) -> Vec<ProviderConfig> {
        let mut all = self.providers.clone();
        if let Some(l) = &self.local_server {
            all.push(ProviderConfig {
                name: "local-server".to_owned(),
                base_url: l.url.clone(),
                model: l.model.clone(),
                api_key_file: None,
                local: true,
                timeout: l.timeout,
                max_tokens: default_max_tokens(),
                daily_budget_usd: None,
            });
        }
        all
    }
}

fn default_breaker_failures() -> u32 {
    3
}

fn default_breaker_cooldown() -> Duration {
    Duration::from_secs(60)
}

fn yes() -> bool {
    true
}

fn default_system_prompt() -> String {
    "You are Barnabee, a friendly home voice assistant. Answer in one to three short spoken sentences.".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// A label for logs and metrics (`openrouter`, `beast`).
    pub name: String,
    /// OpenAI-compatible base URL, up to and including `/v1`.
    pub base_url: String,
    pub model: String,
    /// File holding the API key (optional: local servers need none).
    pub api_key_file: Option<PathBuf>,
    /// Runs on the family's own hardware: still allowed in the yellow budget state.
    #[serde(default)]
    pub local: bool,
    /// Timeout of one completion, including streaming.
    #[serde(with = "seconds", default = "default_llm_timeout")]
    pub timeout: Duration,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// This provider's own daily budget in USD (a tier's share of the daily limit); once
    /// spent today, the next provider is used. Absent: only the global limits apply.
    #[serde(default)]
    pub daily_budget_usd: Option<f64>,
}

fn default_llm_timeout() -> Duration {
    Duration::from_secs(20)
}

fn default_max_tokens() -> u32 {
    300
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// USD per million prompt tokens.
    pub input: f64,
    /// USD per million completion tokens.
    pub output: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// USD per local day.
    pub daily_limit_usd: f64,
    /// USD per local calendar month.
    pub monthly_limit_usd: f64,
    /// At or above this share of a limit: yellow (local providers only).
    pub yellow_at: f64,
    /// Above this share of a limit: red (interaction disabled, actions only).
    pub red_at: f64,
    /// The reply in the red state.
    pub red_reply: String,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            daily_limit_usd: 1.0,
            monthly_limit_usd: 25.0,
            yellow_at: 0.5,
            red_at: 0.8,
            red_reply: "Cost limit approaching. Basic commands only.".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Base URL of barnabee-memory.
    pub url: String,
    /// Timeout of one call.
    #[serde(with = "seconds")]
    pub timeout: Duration,
    /// Owner/requester when the utterance has no `speaker`.
    pub default_speaker: String,
    /// Store every turn (utterance, reply, route, latency) as a conversation in barnabee-memory.
    pub store_turns: bool,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:7701".into(),
            timeout: Duration::from_secs(3),
            default_speaker: "family".into(),
            store_turns: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigCheckError {
    #[error(
        "llm.providers[{index}] ({name}): model {model:?} has no price in [llm.prices]; add [llm.prices.\"{model}\"] input = ..., output = ... or set local = true"
    )]
    MissingPrice {
        index: usize,
        name: String,
        model: String,
    },
    #[error("budget: {0}")]
    Budget(String),
    #[error("{field}: {message}")]
    Field { field: String, message: String },
}

impl Config {
    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigCheckError> {
        for (index, p) in self.llm.all_providers().iter().enumerate() {
            if !p.local && !self.llm.prices.contains_key(&p.model) {
                return Err(ConfigCheckError::MissingPrice {
                    index,
                    name: p.name.clone(),
                    model: p.model.clone(),
                });
            }
            if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
                return Err(ConfigCheckError::Field {
                    field: format!("llm.providers[{index}].base_url"),
                    message: "must start with http:// or https://".into(),
                });
            }
        }
        let b = &self.budget;
        if !(0.0 < b.yellow_at && b.yellow_at <= b.red_at && b.red_at <= 1.0) {
            return Err(ConfigCheckError::Budget(
                "need 0 < yellow_at <= red_at <= 1".into(),
            ));
        }
        if b.daily_limit_usd < 0.0 || b.monthly_limit_usd < 0.0 {
            return Err(ConfigCheckError::Budget("limits must be >= 0".into()));
        }
        if let Some(ha) = &self.home_assistant
            && !(ha.url.starts_with("http://") || ha.url.starts_with("https://"))
        {
            return Err(ConfigCheckError::Field {
                field: "home_assistant.url".into(),
                message: "must start with http:// or https://".into(),
            });
        }
        if let Some(r) = &self.replication {
            r.validate().map_err(|e| ConfigCheckError::Field {
                field: format!("replication.{}", e.field),
                message: e.message,
            })?;
            if self.resolved_state_dir().is_none() {
                return Err(ConfigCheckError::Field {
                    field: "replication".into(),
                    message: "the cost ledger is replicated from state_dir (or $STATE_DIRECTORY); \
                              set one, or remove [replication]"
                        .into(),
                });
            }
        }
        let g = &self.guard;
        if !(0.0..=1.0).contains(&g.min_confidence) {
            return Err(ConfigCheckError::Field {
                field: "guard.min_confidence".into(),
                message: "must be between 0 and 1".into(),
            });
        }
        if g.confirm_timeout.is_zero() || g.confirm_timeout > Duration::from_secs(300) {
            return Err(ConfigCheckError::Field {
                field: "guard.confirm_timeout".into(),
                message: "must be between 1 and 300 seconds".into(),
            });
        }
        if let Some(v) = &self.voice
            && !(v.url.starts_with("http://") || v.url.starts_with("https://"))
        {
            return Err(ConfigCheckError::Field {
                field: "voice.url".into(),
                message: "must start with http:// or https://".into(),
            });
        }
        if let Some(w) = &self.wyoming {
            let bad = w.languages.is_empty()
                || w.languages.iter().any(|l| {
                    l.is_empty()
                        || !l
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                });
            if bad {
                return Err(ConfigCheckError::Field {
                    field: "wyoming.languages".into(),
                    message: "need at least one language tag like \"en\" or \"en-GB\"".into(),
                });
            }
        }
        Ok(())
    }

    /// The state directory: `state_dir`, else `$STATE_DIRECTORY`, else none (ledger in memory).
    pub fn resolved_state_dir(&self) -> Option<PathBuf> {
        self.state_dir.clone().or_else(|| {
            std::env::var_os("STATE_DIRECTORY")
                .map(|s| PathBuf::from(s.to_string_lossy().split(':').next().unwrap_or("")))
                .filter(|p| !p.as_os_str().is_empty())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::path::Path;

    #[test]
    fn minimal_config_is_just_listen() {
        let cfg: Config = barnabee_service::config::parse(
            Path::new("a.toml"),
            "[service]\nlisten = \"127.0.0.1:7702\"\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert!(cfg.home_assistant.is_none());
        assert_eq!(cfg.budget.daily_limit_usd, 1.0);
        assert_eq!(cfg.budget.monthly_limit_usd, 25.0);
        assert_eq!(cfg.memory.url, "http://127.0.0.1:7701");
    }

    #[test]
    fn example_config_parses_and_validates() {
        let text = include_str!("../agents.example.toml");
        let cfg: Config =
            barnabee_service::config::parse(Path::new("agents.example.toml"), text).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.service.listen.port(), 7702);
        assert!(cfg.home_assistant.is_some());
        assert_eq!(cfg.llm.providers.len(), 2);
    }

    #[test]
    fn unknown_key_is_rejected() {
        let err = barnabee_service::config::parse::<Config>(
            Path::new("a.toml"),
            "[budget]\ndaily_limit = 2\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("daily_limit"), "{err}");
    }

    #[test]
    fn remote_provider_needs_a_price() {
        let cfg: Config = barnabee_service::config::parse(
            Path::new("a.toml"),
            "[[llm.providers]]\nname = \"cloud\"\nbase_url = \"https://x/v1\"\nmodel = \"m\"\n",
        )
        .unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("llm.providers[0]") && err.contains("\"m\""),
            "{err}"
        );
    }
}
