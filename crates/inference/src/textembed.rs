//! Text embeddings with a BERT-style sentence encoder (all-MiniLM-L6-v2 and kin): uncased
//! WordPiece tokenisation from `vocab.txt` → `input_ids`, `attention_mask` (and
//! `token_type_ids` when the model takes it) → `last_hidden_state` `[1, L, H]` → mean over the
//! real tokens → L2 normalisation. A model that already pools (`[1, H]` output) is normalised only.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use crate::engine::{self, lock, output_f32};
use crate::speaker::l2_normalise;

/// Longest input in tokens (incl. [CLS]/[SEP]); longer text is truncated.
pub const MAX_TOKENS: usize = 256;

pub struct Tokenizer {
    vocab: HashMap<String, i64>,
    cls: i64,
    sep: i64,
    unk: i64,
}

impl Tokenizer {
    pub fn from_file(path: &Path) -> Result<Tokenizer, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("vocab {}: {e}", path.display()))?;
        let vocab: HashMap<String, i64> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (l.trim_end_matches('\r').to_owned(), i as i64))
            .collect();
        let get = |t: &str| {
            vocab
                .get(t)
                .copied()
                .ok_or_else(|| format!("vocab {} lacks {t}", path.display()))
        };
        Ok(Tokenizer {
            cls: get("[CLS]")?,
            sep: get("[SEP]")?,
            unk: get("[UNK]")?,
            vocab,
        })
    }

    /// BERT basic tokenisation (lower-case, strip accents, split on whitespace and punctuation)
    /// then greedy longest-match WordPiece.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        let mut ids = vec![self.cls];
        'words: for word in basic_tokens(text) {
            let chars: Vec<char> = word.chars().collect();
            if chars.len() > 100 {
                ids.push(self.unk);
                continue;
            }
            let mut pieces = Vec::new();
            let mut start = 0;
            while start < chars.len() {
                let mut end = chars.len();
                let mut found = None;
                while start < end {
                    let mut s: String = chars[start..end].iter().collect();
                    if start > 0 {
                        s.insert_str(0, "##");
                    }
                    if let Some(&id) = self.vocab.get(&s) {
                        found = Some(id);
                        break;
                    }
                    end -= 1;
                }
                match found {
                    Some(id) => {
                        pieces.push(id);
                        start = end;
                    }
                    None => {
                        ids.push(self.unk);
                        continue 'words;
                    }
                }
            }
            ids.extend(pieces);
            if ids.len() >= MAX_TOKENS - 1 {
                break;
            }
        }
        ids.truncate(MAX_TOKENS - 1);
        ids.push(self.sep);
        ids
    }
}

fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation() || (!c.is_alphanumeric() && !c.is_whitespace() && !c.is_control())
}

fn strip_accent(c: char) -> char {
    const FROM: &str = "àáâãäåèéêëìíîïòóôõöùúûüýÿñç";
    const TO: &str = "aaaaaaeeeeiiiiooooouuuuyync";
    FROM.chars()
        .position(|f| f == c)
        .and_then(|i| TO.chars().nth(i))
        .unwrap_or(c)
}

fn basic_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars().flat_map(char::to_lowercase).map(strip_accent) {
        if c.is_whitespace() || c.is_control() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if is_punct(c) {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            out.push(c.to_string());
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

pub struct TextEmbedder {
    session: Mutex<Session>,
    tokenizer: Tokenizer,
    token_types: bool,
    output: String,
}

impl TextEmbedder {
    pub fn new(session: Session, vocab: &Path) -> Result<TextEmbedder, String> {
        engine::expect_inputs(&session, &["input_ids", "attention_mask"])?;
        let token_types = session
            .inputs()
            .iter()
            .any(|i| i.name() == "token_type_ids");
        let outs = engine::output_names(&session);
        let output = outs
            .iter()
            .find(|n| *n == "last_hidden_state" || *n == "sentence_embedding")
            .or(outs.first())
            .cloned()
            .ok_or("model has no output")?;
        Ok(TextEmbedder {
            session: Mutex::new(session),
            tokenizer: Tokenizer::from_file(vocab)?,
            token_types,
            output,
        })
    }

    pub fn embed(&self, text: &str) -> Result<Vec<f32>, String> {
        let ids = self.tokenizer.encode(text);
        let n = ids.len();
        let mask = vec![1i64; n];
        let x = Tensor::from_array(([1usize, n], ids)).map_err(engine::ort_err)?;
        let m = Tensor::from_array(([1usize, n], mask)).map_err(engine::ort_err)?;
        let mut s = lock(&self.session);
        let out = if self.token_types {
            let tt = Tensor::from_array(([1usize, n], vec![0i64; n])).map_err(engine::ort_err)?;
            s.run(ort::inputs!["input_ids" => x, "attention_mask" => m, "token_type_ids" => tt])
        } else {
            s.run(ort::inputs!["input_ids" => x, "attention_mask" => m])
        }
        .map_err(|e| format!("text model: {e}"))?;
        let (shape, data) = output_f32(&out, &self.output)?;
        let mut v = match shape.as_slice() {
            [1, l, h] => {
                let (l, h) = (*l as usize, *h as usize);
                let mut acc = vec![0.0f32; h];
                for t in 0..l {
                    for (a, x) in acc.iter_mut().zip(&data[t * h..(t + 1) * h]) {
                        *a += x;
                    }
                }
                acc.iter_mut().for_each(|a| *a /= l as f32);
                acc
            }
            [1, _] => data,
            other => {
                return Err(format!(
                    "text model output `{}` has shape {other:?}, expected [1, L, H] or [1, H]",
                    self.output
                ));
            }
        };
        l2_normalise(&mut v);
        Ok(v)
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn warm(&self) -> Result<(), String> {
        self.embed("warm up").map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_tokenisation() {
        assert_eq!(
            basic_tokens("Héllo, World!"),
            vec!["hello", ",", "world", "!"]
        );
    }
}
