//! `tokenizer.json` through the `tokenizers` crate, plus a streaming detokenizer.
//!
//! `encode` adds no special tokens; `encode_with_special` adds what the file says, as
//! transformers 5's `tokenizer(text)` does: it runs the post-processor of `tokenizer.json`
//! (e.g. Llama 3's `<|begin_of_text|>`; GPT-2 and Qwen2 add nothing). Like transformers 5,
//! kiln ignores `add_bos_token` / `add_eos_token` in `tokenizer_config.json` when there is a
//! `tokenizer.json`. Special tokens written in the text itself (`<|im_end|>`) are always
//! recognised, as in transformers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokenizers::DecoderWrapper;

use crate::error::{ModelError, Result};

/// The tokenizer's file name in a Hugging Face directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Names of end-of-sequence tokens, used only when neither config.json nor
/// generation_config.json gives an `eos_token_id`.
const KNOWN_EOS_TOKENS: [&str; 5] = ["<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "</s>"];

/// A text tokenizer (a `tokenizers` tokenizer) with the end-of-sequence ids and, for
/// byte-level BPE, each token's bytes.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    eos_ids: Vec<u32>,
    /// For byte-level BPE tokenizers (GPT-2, Qwen2, Llama 3): char -> byte.
    byte_decoder: Option<HashMap<char, u8>>,
    special: Vec<bool>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer({}, {} tokens)", self.path.display(), self.vocab_size())
    }
}

/// GPT-2's byte -> printable-char table (`bytes_to_unicode`), in GPT-2's own order
/// (printable bytes first; it is the order of GPT-2's 256 byte tokens): the alphabet
/// byte-level BPE vocabularies (GPT-2, Qwen2, SmolLM2) spell tokens in.
pub fn bytes_to_unicode() -> Vec<(u8, char)> {
    let mut bs: Vec<u32> =
        ('!' as u32..='~' as u32).chain('¡' as u32..='¬' as u32).chain('®' as u32..='ÿ' as u32).collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    bs.into_iter().zip(cs).map(|(b, c)| (b as u8, char::from_u32(c).expect("valid char"))).collect()
}

/// [`bytes_to_unicode`], inverted.
fn byte_level_decoder() -> HashMap<char, u8> {
    bytes_to_unicode().into_iter().map(|(b, c)| (c, b)).collect()
}

impl Tokenizer {
    /// Load `tokenizer.json` from a model directory.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Tokenizer> {
        Tokenizer::from_file(dir.as_ref().join(TOKENIZER_FILE))
    }

    /// Load a `tokenizer.json` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Tokenizer> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(ModelError::MissingFile {
                path: path.to_path_buf(),
                what: "tokenizer (tokenizer.json)".into(),
            });
        }
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| ModelError::Tokenizer {
            path: path.to_path_buf(),
            detail: format!("not a tokenizer.json kiln can load: {e}"),
        })?;
        Ok(Tokenizer::from_tokenizer(inner, path, &[]))
    }

    /// Wrap a `tokenizers` tokenizer built in memory (e.g. from GGUF metadata). `path`
    /// names its source in errors; `eos_ids` as for [`set_eos_ids`](Self::set_eos_ids)
    /// (empty: the first known eos token present).
    pub fn from_tokenizer(inner: tokenizers::Tokenizer, path: impl Into<PathBuf>, eos_ids: &[u32]) -> Tokenizer {
        let byte_decoder = matches!(inner.get_decoder(), Some(DecoderWrapper::ByteLevel(_))).then(byte_level_decoder);
        let n = inner.get_vocab_size(true);
        let mut special = vec![false; n];
        for (id, tok) in inner.get_added_tokens_decoder() {
            if tok.special {
                if let Some(s) = special.get_mut(id as usize) {
                    *s = true;
                }
            }
        }
        let mut t = Tokenizer { inner, path: path.into(), eos_ids: Vec::new(), byte_decoder, special };
        t.eos_ids = KNOWN_EOS_TOKENS.iter().filter_map(|s| t.token_to_id(s)).take(1).collect();
        t.set_eos_ids(eos_ids);
        t
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The file the tokenizer was loaded from (a GGUF file for GGUF tokenizers).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> ModelError {
        ModelError::Tokenizer { path: self.path.clone(), detail: format!("{what} failed: {e}") }
    }

    /// Token ids of `text`, without adding BOS/EOS or other special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with_special(text, false)
    }

    /// Token ids of `text`; `add_special` runs the post-processor, adding the BOS/EOS the
    /// tokenizer's file asks for (a BOS for Llama 3; nothing for GPT-2, Qwen2, SmolLM2).
    pub fn encode_with_special(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, add_special).map_err(|e| self.err("encoding", e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids`; `skip_special` drops special tokens such as `<|endoftext|>`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.check_ids(ids)?;
        self.inner.decode(ids, skip_special).map_err(|e| self.err("decoding", e))
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        let n = self.vocab_size();
        match ids.iter().find(|&&id| id as usize >= n) {
            Some(id) => {
                Err(self.err("decoding", format!("token id {id} is out of range (the tokenizer has {n} tokens)")))
            }
            None => Ok(()),
        }
    }

    /// Number of tokens including added/special ones.
    pub fn vocab_size(&self) -> usize {
        // Computed once in the constructor: `get_vocab_size(true)` builds the whole vocab
        // map (tens of ms for 150k tokens) and `decode` checks ids against it.
        self.special.len()
    }

    /// The id of a vocabulary entry or added token, if there is one.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The vocabulary entry as stored (`Ġhello` for byte-level BPE).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Whether `id` is a special added token (false for unknown ids).
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// The bytes a token stands for, for byte-level BPE tokenizers (`None` for other
    /// tokenizers or unknown ids). A token may hold part of a UTF-8 character.
    pub fn token_bytes(&self, id: u32) -> Option<Vec<u8>> {
        let table = self.byte_decoder.as_ref()?;
        let raw = self.inner.id_to_token(id)?;
        if self.inner.get_added_tokens_decoder().contains_key(&id) {
            return Some(raw.into_bytes());
        }
        raw.chars().map(|c| table.get(&c).copied()).collect()
    }

    /// Readable text of one token for tables and logs: its decoded text, with bytes that
    /// are not complete UTF-8 characters shown as `\xNN`. Unknown ids give `<unk:ID>`.
    pub fn token_text(&self, id: u32) -> String {
        if let Some(bytes) = self.token_bytes(id) {
            return escape_invalid_utf8(&bytes);
        }
        match self.inner.decode(&[id], false) {
            Ok(s) if !s.is_empty() && !s.contains('\u{FFFD}') => s,
            _ => self.inner.id_to_token(id).unwrap_or_else(|| format!("<unk:{id}>")),
        }
    }

    /// End-of-sequence ids: those set by [`set_eos_ids`](Self::set_eos_ids) (the model
    /// directory passes config/generation_config ids), else the first known eos token
    /// (`<|endoftext|>`, `<|im_end|>`, `<|eot_id|>`, `<|end_of_text|>`, `</s>`) present.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Replace the eos ids (ignored when `ids` is empty, keeping the fallback).
    pub fn set_eos_ids(&mut self, ids: &[u32]) {
        if !ids.is_empty() {
            self.eos_ids = ids.to_vec();
        }
    }

    /// Whether `id` is one of [`Tokenizer::eos_ids`].
    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }

    /// A streaming detokenizer that emits only complete new text per token.
    pub fn stream(&self, skip_special: bool) -> StreamDecoder<'_> {
        StreamDecoder { tok: self, ids: Vec::new(), prefix_offset: 0, read_offset: 0, skip_special }
    }
}

/// `bytes` as text, with each byte of an invalid or incomplete UTF-8 sequence as `\xNN`.
pub fn escape_invalid_utf8(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// Incremental detokenisation for streaming output.
///
/// Decoding token by token is wrong for byte-level BPE (a character can span tokens) and
/// for decoders that strip or merge spaces, so each step decodes a short window twice
/// (the already-emitted part and the part with the new tokens) and emits the difference,
/// holding back while the new text ends in an incomplete UTF-8 character (U+FFFD). The
/// concatenation of all `push` results plus `finish` equals `decode(all ids)` for the
/// tokenizers kiln supports.
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    ids: Vec<u32>,
    /// Start of the window decoded for context.
    prefix_offset: usize,
    /// End of the text already emitted.
    read_offset: usize,
    skip_special: bool,
}

impl<'a> StreamDecoder<'a> {
    /// Add one token; returns the new text (possibly empty while a character is incomplete).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.tok.check_ids(&[id])?;
        self.ids.push(id);
        let prefix = self.tok.decode(&self.ids[self.prefix_offset..self.read_offset], self.skip_special)?;
        let full = self.tok.decode(&self.ids[self.prefix_offset..], self.skip_special)?;
        if full.len() > prefix.len() && !full.ends_with('\u{FFFD}') && full.is_char_boundary(prefix.len()) {
            let new = full[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            return Ok(new);
        }
        Ok(String::new())
    }

    /// Flush whatever is held back (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> Result<String> {
        if self.read_offset == self.ids.len() {
            return Ok(String::new());
        }
        let prefix = self.tok.decode(&self.ids[self.prefix_offset..self.read_offset], self.skip_special)?;
        let full = self.tok.decode(&self.ids[self.prefix_offset..], self.skip_special)?;
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        Ok(match full.get(prefix.len()..) {
            Some(rest) if full.len() > prefix.len() => rest.to_string(),
            _ => String::new(),
        })
    }

    /// Every id pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}
