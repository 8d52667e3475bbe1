//! `/v1/search`: full-text (BM25), vector (cosine) and hybrid (reciprocal-rank fusion).

use std::collections::HashMap;
use std::time::Instant;

use crate::config::SearchConfig;
use crate::error::StoreError;
use crate::model::{SearchHit, SearchMode, SearchRequest, SearchResponse};
use crate::store::{Store, check_text};
use crate::time::now_ms;
use crate::vector::Filter;

/// Words so common in questions that they only cost time ("when is emma's dentist").
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did",
    "do", "does", "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in",
    "is", "it", "its", "me", "my", "of", "on", "or", "our", "s", "she", "so", "that", "the",
    "their", "them", "then", "there", "they", "this", "to", "us", "was", "we", "were", "what",
    "when", "where", "which", "who", "why", "will", "with", "would", "you", "your",
];

/// The distinct words of a query, lower-cased, stopwords removed (unless nothing else is
/// left), at most 16.
pub fn fts_terms(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let w = w.to_lowercase();
        if !words.contains(&w) {
            words.push(w);
        }
    }
    let content: Vec<String> = words
        .iter()
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .cloned()
        .collect();
    let mut out = if content.is_empty() { words } else { content };
    out.truncate(16);
    out
}

/// Quote one word for FTS5 (the word has no quotes: it is alphanumeric).
pub fn quote(term: &str) -> String {
    format!("\"{term}\"")
}

/// Turn free text into a safe FTS5 query: every word quoted (so `AND`, `"`, `*`, `:` in user
/// text are plain words), joined with OR so BM25 ranks documents matching more words higher.
/// `None` when the text has no word at all.
pub fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(32)
        .map(|w| format!("\"{}\"", w.to_lowercase()))
        .collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

/// Check a request and compile its filter.
pub fn validate(
    req: &SearchRequest,
    cfg: &SearchConfig,
    dims: usize,
) -> Result<(SearchMode, Filter, usize), StoreError> {
    check_text("requester", &req.requester, 200, true)?;
    let limit = req.limit.unwrap_or(cfg.default_limit);
    if limit == 0 || limit > cfg.max_limit {
        return Err(StoreError::invalid(
            "limit",
            format!("must be between 1 and {}", cfg.max_limit),
        ));
    }
    let has_text = req.query.as_deref().is_some_and(|q| fts_query(q).is_some());
    if let Some(q) = &req.query {
        check_text("query", q, 2000, false)?;
    }
    if let Some(e) = &req.embedding {
        if e.len() != dims {
            return Err(StoreError::invalid(
                "embedding",
                format!("has {} values, this store uses {dims}", e.len()),
            ));
        }
        if e.iter().any(|x| !x.is_finite()) || e.iter().all(|x| *x == 0.0) {
            return Err(StoreError::invalid(
                "embedding",
                "must be finite and not all zeros",
            ));
        }
    }
    let has_vec = req.embedding.is_some();
    let mode = match req.mode {
        SearchMode::Fts if !has_text => {
            return Err(StoreError::invalid(
                "query",
                "fts search needs a query with at least one word",
            ));
        }
        SearchMode::Vector if !has_vec => {
            return Err(StoreError::invalid(
                "embedding",
                "vector search needs an embedding",
            ));
        }
        SearchMode::Hybrid if !has_text && !has_vec => {
            return Err(StoreError::invalid(
                "query",
                "give a query, an embedding, or both",
            ));
        }
        SearchMode::Hybrid if !has_vec => SearchMode::Fts,
        SearchMode::Hybrid if !has_text => SearchMode::Vector,
        m => m,
    };
    if let (Some(s), Some(u)) = (req.since, req.until)
        && s >= u
    {
        return Err(StoreError::invalid("until", "must be after since"));
    }
    let filter = Filter {
        requester: req.requester.trim().to_owned(),
        owner: req.owner.clone(),
        visibility: req.visibility,
        memory_types: req.memory_types.clone(),
        since: req.since,
        until: req.until,
        now: now_ms(),
    };
    Ok((mode, filter, limit))
}

/// Reciprocal-rank fusion of two ranked id lists: score = sum 1/(k + rank).
/// Returns (id, score, fts rank, vector rank), best first; ties by id for stable output.
pub fn rrf(fts: &[i64], vec: &[i64], k: f64) -> Vec<(i64, f64, Option<usize>, Option<usize>)> {
    let mut acc: HashMap<i64, (f64, Option<usize>, Option<usize>)> = HashMap::new();
    for (i, id) in fts.iter().enumerate() {
        let e = acc.entry(*id).or_default();
        e.0 += 1.0 / (k + (i + 1) as f64);
        e.1 = Some(i + 1);
    }
    for (i, id) in vec.iter().enumerate() {
        let e = acc.entry(*id).or_default();
        e.0 += 1.0 / (k + (i + 1) as f64);
        e.2 = Some(i + 1);
    }
    let mut out: Vec<_> = acc
        .into_iter()
        .map(|(id, (s, f, v))| (id, s, f, v))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// Run a validated search.
pub fn search(
    store: &Store,
    req: &SearchRequest,
    cfg: &SearchConfig,
) -> Result<SearchResponse, StoreError> {
    let start = Instant::now();
    let (mode, filter, limit) = validate(req, cfg, store.dims())?;
    let query = req.query.as_deref().unwrap_or("");
    let ranked: Vec<(i64, f64, Option<usize>, Option<usize>)> = match mode {
        SearchMode::Fts => store
            .search_fts(query, &filter, limit)?
            .into_iter()
            .enumerate()
            .map(|(i, (id, s))| (id, s, Some(i + 1), None))
            .collect(),
        SearchMode::Vector => store
            .search_vector(req.embedding.as_deref().unwrap_or(&[]), &filter, limit)
            .into_iter()
            .enumerate()
            .map(|(i, (id, s))| (id, f64::from(s), None, Some(i + 1)))
            .collect(),
        SearchMode::Hybrid => {
            // Fuse deeper lists than asked for, so an item ranked moderately in both can win.
            let depth = (limit * 3).max(30).min(cfg.max_limit * 3);
            // The two lists are independent: scan the vectors on another thread meanwhile.
            let embedding = req.embedding.as_deref().unwrap_or(&[]);
            let (fts, vec) = std::thread::scope(|s| {
                let vec = s.spawn(|| store.search_vector(embedding, &filter, depth));
                let fts = store.search_fts(query, &filter, depth);
                let vec = vec.join().unwrap_or_default();
                (fts, vec)
            });
            let fts: Vec<i64> = fts?.into_iter().map(|(id, _)| id).collect();
            let vec: Vec<i64> = vec.into_iter().map(|(id, _)| id).collect();
            let mut fused = rrf(&fts, &vec, cfg.rrf_k);
            fused.truncate(limit);
            fused
        }
    };
    let ids: Vec<i64> = ranked.iter().map(|r| r.0).collect();
    let memories = store.memories_by_id(&ids)?;
    let mut by_id: HashMap<i64, _> = memories.into_iter().map(|m| (m.id, m)).collect();
    let similarity = |id: i64| {
        req.embedding
            .as_deref()
            .and_then(|e| store.memory_similarity(id, e))
    };
    let results = ranked
        .into_iter()
        .filter_map(|(id, score, fts_rank, vector_rank)| {
            let memory = by_id.remove(&id)?;
            // Defence in depth: the filter already excluded these.
            crate::store::visible(&memory, &filter.requester).then_some(SearchHit {
                memory,
                score,
                fts_rank,
                vector_rank,
                similarity: similarity(id),
            })
        })
        .collect();
    Ok(SearchResponse {
        mode,
        results,
        took_ms: start.elapsed().as_secs_f64() * 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_query_quotes_every_word() {
        assert_eq!(
            fts_query("Where's the \"dentist\" AND NOT: x*").as_deref(),
            Some("\"where\" OR \"s\" OR \"the\" OR \"dentist\" OR \"and\" OR \"not\" OR \"x\"")
        );
        assert_eq!(fts_query("  ?!  "), None);
    }

    #[test]
    fn terms_drop_stopwords_unless_nothing_is_left() {
        assert_eq!(
            fts_terms("When is Emma's dentist? EMMA"),
            vec!["emma", "dentist"]
        );
        assert_eq!(fts_terms("who is it"), vec!["who", "is", "it"]);
    }

    #[test]
    fn rrf_prefers_items_in_both_lists() {
        let fused = rrf(&[1, 2, 3], &[3, 4, 1], 60.0);
        assert_eq!(fused[0].0, 1);
        assert_eq!(fused[1].0, 3);
        assert_eq!(fused[0].2, Some(1));
        assert_eq!(fused[0].3, Some(3));
    }
}
