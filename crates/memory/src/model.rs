//! The API's records: what callers send and what they get back. Times are Unix milliseconds.

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryType {
    Fact,
    Preference,
    Decision,
    Event,
    Person,
    Project,
    Meeting,
    Journal,
}

impl MemoryType {
    pub const ALL: [MemoryType; 8] = [
        MemoryType::Fact,
        MemoryType::Preference,
        MemoryType::Decision,
        MemoryType::Event,
        MemoryType::Person,
        MemoryType::Project,
        MemoryType::Meeting,
        MemoryType::Journal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MemoryType::Fact => "fact",
            MemoryType::Preference => "preference",
            MemoryType::Decision => "decision",
            MemoryType::Event => "event",
            MemoryType::Person => "person",
            MemoryType::Project => "project",
            MemoryType::Meeting => "meeting",
            MemoryType::Journal => "journal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Only the owner sees it.
    #[default]
    Private,
    /// Everyone in the family sees it.
    Family,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Family => "family",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "private" => Some(Visibility::Private),
            "family" => Some(Visibility::Family),
            _ => None,
        }
    }
}

/// `POST /v1/memories`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMemory {
    pub summary: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    pub memory_type: MemoryType,
    pub owner: String,
    #[serde(default)]
    pub visibility: Visibility,
    pub source: Option<String>,
    /// Defaults to now (the importer passes the original time).
    pub created_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub embedding: Option<Vec<f32>>,
    pub embedding_model: Option<String>,
    /// A caller's or importer's stable id; a second create with the same one is a 409.
    pub external_id: Option<String>,
}

/// `null` in JSON is `Some(None)` (clear), an absent key is `None` (keep).
fn double<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// `PATCH /v1/memories/{id}`: absent keys are kept; `null` clears an optional one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryPatch {
    pub summary: Option<String>,
    pub content: Option<String>,
    pub keywords: Option<Vec<String>>,
    pub memory_type: Option<MemoryType>,
    pub visibility: Option<Visibility>,
    #[serde(default, deserialize_with = "double")]
    pub source: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    pub expires_at: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double")]
    pub embedding: Option<Option<Vec<f32>>>,
    pub embedding_model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub id: i64,
    pub summary: String,
    pub content: String,
    pub keywords: Vec<String>,
    pub memory_type: MemoryType,
    pub owner: String,
    pub visibility: Visibility,
    pub source: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
    pub embedding_model: Option<String>,
    pub has_embedding: bool,
    pub external_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    Fts,
    Vector,
    /// Both, fused by reciprocal rank; falls back to the one the request has input for.
    #[default]
    Hybrid,
}

/// `POST /v1/search`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Who is asking: sees family memories and their own private ones, nothing else.
    pub requester: String,
    pub query: Option<String>,
    pub embedding: Option<Vec<f32>>,
    #[serde(default)]
    pub mode: SearchMode,
    /// Only memories owned by this person (still subject to visibility).
    pub owner: Option<String>,
    pub visibility: Option<Visibility>,
    pub memory_types: Option<Vec<MemoryType>>,
    /// created_at >= since
    pub since: Option<i64>,
    /// created_at < until
    pub until: Option<i64>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchHit {
    pub memory: Memory,
    /// Higher is better: BM25 (negated), cosine similarity, or the fused RRF score.
    pub score: f64,
    /// 1-based rank in the full-text list, when it was in it.
    pub fts_rank: Option<usize>,
    /// 1-based rank in the vector list, when it was in it.
    pub vector_rank: Option<usize>,
    /// Cosine similarity of the query's vector and the memory's, when both exist: the nearest
    /// memories are always returned, so a caller tells "related" from "least unrelated" by it.
    #[serde(default)]
    pub similarity: Option<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResponse {
    pub mode: SearchMode,
    pub results: Vec<SearchHit>,
    pub took_ms: f64,
}

/// `POST /v1/conversations`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    pub speaker: Option<String>,
    pub mode: Option<String>,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub summary: Option<String>,
    #[serde(default)]
    pub topic_tags: Vec<String>,
    pub external_id: Option<String>,
}

/// `PATCH /v1/conversations/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationPatch {
    #[serde(default, deserialize_with = "double")]
    pub ended_at: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double")]
    pub summary: Option<Option<String>>,
    pub topic_tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double")]
    pub mode: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: i64,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub speaker: Option<String>,
    pub mode: Option<String>,
    pub summary: Option<String>,
    pub topic_tags: Vec<String>,
    pub turn_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turns: Option<Vec<Turn>>,
}

/// `POST /v1/conversations/{id}/turns`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTurn {
    #[serde(default = "user_role")]
    pub role: String,
    pub utterance: String,
    pub response: Option<String>,
    pub route: Option<String>,
    pub latency_ms: Option<i64>,
    pub created_at: Option<i64>,
}

fn user_role() -> String {
    "user".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub id: i64,
    pub conversation_id: i64,
    pub number: i64,
    pub role: String,
    pub utterance: String,
    pub response: Option<String>,
    pub route: Option<String>,
    pub latency_ms: Option<i64>,
    pub created_at: i64,
}

/// `PUT /v1/speakers/{name}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakerUpdate {
    pub embedding_model_hash: String,
    pub centroid: Vec<f32>,
    pub sample_count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeakerProfile {
    pub name: String,
    pub embedding_model_hash: String,
    pub centroid: Vec<f32>,
    pub sample_count: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    pub memories: i64,
    pub memories_by_type: std::collections::BTreeMap<String, i64>,
    pub memories_with_embedding: i64,
    pub conversations: i64,
    pub turns: i64,
    pub turns_with_embedding: i64,
    pub speakers: i64,
    pub db_bytes: u64,
    pub schema_version: u32,
    pub min_reader_version: u32,
    pub code_version: u32,
}

/// Encode an embedding as little-endian f32 bytes.
pub fn f32_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decode a little-endian f32 blob (a trailing partial value is ignored).
pub fn blob_to_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
