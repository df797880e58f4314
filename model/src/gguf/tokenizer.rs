//! A [`Tokenizer`] built from a GGUF file's `tokenizer.ggml.*` metadata.
//!
//! Byte-level BPE vocabularies (`tokenizer.ggml.model = "gpt2"`: GPT-2, Qwen2,
//! Llama 3, SmolLM, StarCoder, ...) are read here; Gemma's SentencePiece vocabulary
//! (`"llama"` in a Gemma file) by [`super::gemma_tokenizer`]; other SentencePiece files and
//! the other models are a clear error. The metadata is first gathered into a
//! [`GgufTokenizerSpec`] (plain data, independent of the reader), then [`build`] turns
//! it into a `tokenizers::Tokenizer`:
//!
//! - model: BPE over `tokenizer.ggml.tokens` (id = index) and `tokenizer.ggml.merges`
//!   (`"a b"`, in rank order), no continuing-subword prefix or end-of-word suffix.
//! - pre-tokenizer from `tokenizer.ggml.pre`, each the split llama.cpp uses; see
//!   [`SUPPORTED_PRE`]. No normalizer: llama.cpp normalizes nothing (Qwen2's original
//!   `tokenizer.json` applies NFC, its GGUF reading does not).
//! - added tokens from `tokenizer.ggml.token_type`: control tokens (3) become special
//!   added tokens (matched in any text, dropped by `decode(.., skip_special = true)`),
//!   user-defined tokens (4) become non-special added tokens (matched, kept on decode).
//! - BOS/EOS added by `encode_with_special(.., true)` exactly as
//!   `tokenizer.ggml.add_bos_token` / `add_eos_token` say; without the key, BOS only for
//!   Llama 3's `llama-bpe` pre-tokenizer and no EOS, as llama.cpp.
//! - end-of-sequence ids: `tokenizer.ggml.eos_token_id` and `eot_token_id`, then every
//!   control token named like an end-of-turn token (`<|endoftext|>`, `<|im_end|>`,
//!   `<|eot_id|>`, ...), as llama.cpp's end-of-generation set.
//!
//! This is the reading of llama.cpp and of Hugging Face transformers 5's GGUF conversion
//! (`AutoTokenizer.from_pretrained(.., gguf_file=..)`); the real-model goldens from
//! transformers 5 (tests/fixtures/make_gguf_goldens.py) hold id for id. (transformers 4.x
//! converted differently: it added only three ChatML tokens for Qwen2, prepended a BOS to
//! every SmolLM2 text against `add_bos_token = false`, and applied NFC for Qwen2.)

use std::path::{Path, PathBuf};

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, DecoderWrapper, PostProcessorWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

use super::GgufFile;
use crate::error::{ModelError, Result};
use crate::Tokenizer;

/// Metadata key of the tokenizer model (`gpt2` for byte-level BPE).
pub const KEY_MODEL: &str = "tokenizer.ggml.model";
/// Metadata key of the pre-tokenizer name (see [`SUPPORTED_PRE`]).
pub const KEY_PRE: &str = "tokenizer.ggml.pre";
/// Metadata key of the vocabulary (string array, id = index).
pub const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
/// Metadata key of the BPE merges (string array, `"left right"`).
pub const KEY_MERGES: &str = "tokenizer.ggml.merges";
/// Metadata key of each token's type (see [`token_type`]).
pub const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
/// Metadata key of the beginning-of-sequence id.
pub const KEY_BOS: &str = "tokenizer.ggml.bos_token_id";
/// Metadata key of the end-of-sequence id.
pub const KEY_EOS: &str = "tokenizer.ggml.eos_token_id";
/// Metadata key of the end-of-turn id.
pub const KEY_EOT: &str = "tokenizer.ggml.eot_token_id";
/// Metadata key of the unknown-token id.
pub const KEY_UNK: &str = "tokenizer.ggml.unknown_token_id";
/// Metadata key of the padding id.
pub const KEY_PAD: &str = "tokenizer.ggml.padding_token_id";
/// Metadata key of whether encoding adds the BOS id.
pub const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
/// Metadata key of whether encoding adds the EOS id.
pub const KEY_ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
/// Metadata key of whether a space is prepended to the text.
pub const KEY_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
pub mod token_type {
    /// Token type 0: undefined.
    pub const UNDEFINED: i32 = 0;
    /// Token type 1: a normal vocabulary token (what a missing type array means).
    pub const NORMAL: i32 = 1;
    /// Token type 2: the unknown token.
    pub const UNKNOWN: i32 = 2;
    /// Token type 3: a control token, added as a special token.
    pub const CONTROL: i32 = 3;
    /// Token type 4: a user-defined token, added as a non-special added token.
    pub const USER_DEFINED: i32 = 4;
    /// Token type 5: unused.
    pub const UNUSED: i32 = 5;
    /// Token type 6: a byte token.
    pub const BYTE: i32 = 6;
}

/// `tokenizer.ggml.pre` values [`build`] supports; absent means `default`.
pub const SUPPORTED_PRE: &[&str] =
    &["default", "gpt2", "gpt-2", "qwen2", "smollm", "starcoder", "refact", "llama-bpe", "llama3", "llama-v3"];

/// GPT-2's split (also what `ByteLevel(use_regex = true)` applies).
pub const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Qwen2's split (llama.cpp `qwen2`, transformers' Qwen2 tokenizer).
pub const QWEN2_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's split (llama.cpp `llama-bpe`).
pub const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Control-token names llama.cpp treats as end of generation (besides eos/eot ids).
const EOG_NAMES: &[&str] = &[
    "<|endoftext|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<end_of_turn>",
    "<EOT>",
];

/// Everything [`build`] needs, as read from `tokenizer.ggml.*` (see [`GgufTokenizerSpec::from_gguf`]).
#[derive(Debug, Clone, Default)]
pub struct GgufTokenizerSpec {
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE), or `llama` (SentencePiece) in a
    /// Gemma file.
    pub model: String,
    /// `general.architecture` (empty when unknown): picks the SentencePiece builder.
    pub arch: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer; `None` = `default`.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`: the vocabulary, id = index.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.merges`: `"left right"`, highest priority first.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.token_type`, one per token (empty: all normal).
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.bos_token_id`: the id added in front when BOS is added.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`: an end-of-sequence id, added at the end when EOS is added.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id` (end of turn), an extra end-of-sequence id.
    pub eot: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`; only checked to be a valid id.
    pub unk: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`; only checked to be a valid id.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`; `None`: true only for Llama 3 pre-tokenizers.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`; `None`: false.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`; `None`: false.
    pub add_space_prefix: Option<bool>,
    /// The file the metadata came from, for error messages.
    pub source: PathBuf,
}

impl GgufTokenizerSpec {
    /// Read the tokenizer metadata of `file`.
    pub fn from_gguf(file: &GgufFile) -> Result<GgufTokenizerSpec> {
        let model = file.get_str(KEY_MODEL)?.to_string();
        let mut spec = GgufTokenizerSpec {
            model,
            pre: file.opt_str(KEY_PRE)?.map(str::to_string),
            arch: file.opt_str(super::KEY_ARCHITECTURE)?.unwrap_or_default().to_string(),
            source: file.path().to_path_buf(),
            ..Default::default()
        };
        if !spec.supported() {
            // Fail before reading a vocabulary we cannot use.
            return Err(unsupported_model(&spec.source, &spec.model));
        }
        spec.tokens = file.get_str_array(KEY_TOKENS)?.to_vec();
        spec.merges = match file.get(KEY_MERGES) {
            Some(_) => file.get_str_array(KEY_MERGES)?.to_vec(),
            None => Vec::new(),
        };
        spec.token_types = match file.get(KEY_TOKEN_TYPE) {
            Some(_) => file.get_i32_array(KEY_TOKEN_TYPE)?,
            None => Vec::new(),
        };
        spec.bos = file.opt_u32(KEY_BOS)?;
        spec.eos = file.opt_u32(KEY_EOS)?;
        spec.eot = file.opt_u32(KEY_EOT)?;
        spec.unk = file.opt_u32(KEY_UNK)?;
        spec.pad = file.opt_u32(KEY_PAD)?;
        spec.add_bos = file.opt_bool(KEY_ADD_BOS)?;
        spec.add_eos = file.opt_bool(KEY_ADD_EOS)?;
        spec.add_space_prefix = file.opt_bool(KEY_ADD_SPACE_PREFIX)?;
        Ok(spec)
    }

    pub(crate) fn err(&self, key: &str, detail: impl Into<String>) -> ModelError {
        ModelError::GgufMetadata { path: self.source.clone(), key: key.to_string(), detail: detail.into() }
    }

    /// Byte-level BPE, or Gemma's SentencePiece.
    fn supported(&self) -> bool {
        self.model == "gpt2" || self.is_gemma()
    }

    fn is_gemma(&self) -> bool {
        self.model == "llama" && super::gemma_tokenizer::GEMMA_ARCHES.contains(&self.arch.as_str())
    }

    fn token_type(&self, id: usize) -> i32 {
        self.token_type_of(id)
    }

    /// The type of token `id` (normal when the file lists no types).
    pub(crate) fn token_type_of(&self, id: usize) -> i32 {
        self.token_types.get(id).copied().unwrap_or(token_type::NORMAL)
    }

    fn check_id(&self, key: &str, id: Option<u32>) -> Result<()> {
        match id {
            Some(id) if id as usize >= self.tokens.len() => Err(self
                .err(key, format!("token id {id} is out of range (the vocabulary has {} tokens)", self.tokens.len()))),
            _ => Ok(()),
        }
    }

    fn token(&self, id: u32) -> &str {
        &self.tokens[id as usize]
    }

    /// End-of-sequence ids: eos, eot, then control tokens with end-of-turn names.
    pub fn eos_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> =
            self.eos.into_iter().chain(self.eot).filter(|&i| (i as usize) < self.tokens.len()).collect();
        ids.dedup();
        for (i, t) in self.tokens.iter().enumerate() {
            if self.token_type(i) == token_type::CONTROL
                && EOG_NAMES.contains(&t.as_str())
                && !ids.contains(&(i as u32))
            {
                ids.push(i as u32);
            }
        }
        ids
    }
}

fn unsupported_model(path: &Path, model: &str) -> ModelError {
    let what = match model {
        "llama" => "SentencePiece (`llama`) GGUF tokenizers are supported only in Gemma files",
        "bert" | "t5" | "rwkv" | "plamo2" | "ugm" => "this GGUF tokenizer model is not supported",
        _ => "unknown GGUF tokenizer model",
    };
    ModelError::GgufMetadata {
        path: path.to_path_buf(),
        key: KEY_MODEL.into(),
        detail: format!("`{model}`: {what}; kiln reads byte-level BPE (`gpt2`) tokenizers and Gemma's SentencePiece"),
    }
}

/// The tokenizer of a GGUF file, as its metadata describes it.
pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
    build(&GgufTokenizerSpec::from_gguf(file)?)
}

/// Build a [`Tokenizer`] from GGUF tokenizer metadata.
pub fn build(spec: &GgufTokenizerSpec) -> Result<Tokenizer> {
    if !spec.supported() {
        return Err(unsupported_model(&spec.source, &spec.model));
    }
    if spec.tokens.is_empty() {
        return Err(spec.err(KEY_TOKENS, "is empty"));
    }
    if !spec.token_types.is_empty() && spec.token_types.len() != spec.tokens.len() {
        return Err(spec.err(
            KEY_TOKEN_TYPE,
            format!("has {} entries but {KEY_TOKENS} has {}", spec.token_types.len(), spec.tokens.len()),
        ));
    }
    if spec.tokens.len() > u32::MAX as usize {
        return Err(spec.err(KEY_TOKENS, "has more than 2^32 tokens"));
    }
    for (key, id) in
        [(KEY_BOS, spec.bos), (KEY_EOS, spec.eos), (KEY_EOT, spec.eot), (KEY_UNK, spec.unk), (KEY_PAD, spec.pad)]
    {
        spec.check_id(key, id)?;
    }
    let inner = if spec.is_gemma() { super::gemma_tokenizer::build(spec)? } else { build_inner(spec)? };
    Ok(Tokenizer::from_tokenizer(inner, spec.source.clone(), &spec.eos_ids()))
}

fn bpe(
    spec: &GgufTokenizerSpec,
    configure: impl FnOnce(tokenizers::models::bpe::BpeBuilder) -> tokenizers::models::bpe::BpeBuilder,
) -> Result<BPE> {
    let mut vocab = tokenizers::models::bpe::Vocab::with_capacity(spec.tokens.len());
    for (i, t) in spec.tokens.iter().enumerate() {
        // Like a Python dict built in order: a repeated token keeps its last id.
        vocab.insert(t.clone(), i as u32);
    }
    let mut merges = Vec::with_capacity(spec.merges.len());
    for (i, m) in spec.merges.iter().enumerate() {
        let (a, b) = m
            .split_once(' ')
            .ok_or_else(|| spec.err(KEY_MERGES, format!("entry {i} ({m:?}) is not two tokens separated by a space")))?;
        merges.push((a.to_string(), b.to_string()));
    }
    let builder = BPE::builder().vocab_and_merges(vocab, merges);
    configure(builder).build().map_err(|e| spec.err(KEY_MERGES, format!("cannot build the BPE model: {e}")))
}

fn byte_level(use_regex: bool, add_prefix_space: bool) -> ByteLevel {
    ByteLevel::new(add_prefix_space, false, use_regex)
}

fn split(spec: &GgufTokenizerSpec, pattern: &str) -> Result<PreTokenizerWrapper> {
    let s = Split::new(SplitPattern::Regex(pattern.to_string()), SplitDelimiterBehavior::Isolated, false)
        .map_err(|e| spec.err(KEY_PRE, format!("invalid pre-tokenizer regex: {e}")))?;
    Ok(s.into())
}

fn regex_then_bytes(spec: &GgufTokenizerSpec, pattern: &str, add_prefix_space: bool) -> Result<PreTokenizerWrapper> {
    Ok(Sequence::new(vec![split(spec, pattern)?, byte_level(false, add_prefix_space).into()]).into())
}

/// `[bos] $A [eos]` (pairs: `[bos] $A [eos] [bos] $B [eos]`), or a no-op ByteLevel
/// processor when neither is added.
pub(crate) fn bos_eos_processor(spec: &GgufTokenizerSpec, bos: Option<u32>, eos: Option<u32>) -> Result<PostProcessorWrapper> {
    if bos.is_none() && eos.is_none() {
        return Ok(PostProcessorWrapper::ByteLevel(ByteLevel::new(true, false, true)));
    }
    let mut special: Vec<(String, u32)> = Vec::new();
    for id in [bos, eos].into_iter().flatten() {
        let t = spec.token(id);
        // A template is split on spaces, so a token with a space cannot be named in one.
        if t.is_empty() || t.contains(char::is_whitespace) {
            return Err(spec.err(KEY_BOS, format!("bos/eos token {id} ({t:?}) is empty or contains whitespace")));
        }
        if !special.iter().any(|(s, _)| s == t) {
            special.push((t.to_string(), id));
        }
    }
    let seq = |piece: &str, type_id: u32| {
        let mut v = Vec::new();
        if let Some(b) = bos {
            v.push(format!("{}:{type_id}", spec.token(b)));
        }
        v.push(format!("{piece}:{type_id}"));
        if let Some(e) = eos {
            v.push(format!("{}:{type_id}", spec.token(e)));
        }
        v.join(" ")
    };
    let single = seq("$A", 0);
    let pair = format!("{single} {}", seq("$B", 1));
    let err = |e: String| spec.err(KEY_BOS, format!("cannot build the bos/eos template: {e}"));
    let tp = TemplateProcessing::builder()
        .try_single(single)
        .map_err(err)?
        .try_pair(pair)
        .map_err(err)?
        .special_tokens(special)
        .build()
        .map_err(|e| err(e.to_string()))?;
    Ok(tp.into())
}

fn finish(
    model: BPE,
    pre: PreTokenizerWrapper,
    post: PostProcessorWrapper,
    special: Vec<AddedToken>,
    added: Vec<AddedToken>,
) -> tokenizers::Tokenizer {
    let mut t = tokenizers::Tokenizer::new(model);
    t.with_pre_tokenizer(Some(pre));
    t.with_post_processor(Some(post));
    t.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevelDecoder::default())));
    if !special.is_empty() {
        t.add_special_tokens(&special);
    }
    if !added.is_empty() {
        t.add_tokens(&added);
    }
    t
}

fn added_token(content: &str, special: bool) -> AddedToken {
    AddedToken::from(content.to_string(), special).normalized(false)
}

fn build_inner(spec: &GgufTokenizerSpec) -> Result<tokenizers::Tokenizer> {
    let pre_name = spec.pre.as_deref().unwrap_or("default");
    let prefix = spec.add_space_prefix.unwrap_or(false);
    let mut llama3 = false;
    let pre: PreTokenizerWrapper = match pre_name {
        "default" | "gpt2" | "gpt-2" => byte_level(true, prefix).into(),
        "qwen2" => regex_then_bytes(spec, QWEN2_PATTERN, prefix)?,
        // Digits one by one, then GPT-2's split (SmolLM's and StarCoder's tokenizer.json).
        "smollm" | "starcoder" | "refact" => {
            Sequence::new(vec![Digits::new(true).into(), byte_level(true, prefix).into()]).into()
        }
        "llama-bpe" | "llama3" | "llama-v3" => {
            llama3 = true;
            regex_then_bytes(spec, LLAMA3_PATTERN, prefix)?
        }
        other => {
            return Err(spec.err(
                KEY_PRE,
                format!("unsupported pre-tokenizer `{other}`; kiln supports {}", SUPPORTED_PRE.join(", ")),
            ))
        }
    };
    let model = bpe(spec, |b| b.ignore_merges(llama3))?;
    let add_bos = spec.add_bos.unwrap_or(llama3);
    let add_eos = spec.add_eos.unwrap_or(false);
    if add_bos && spec.bos.is_none() {
        return Err(spec.err(KEY_ADD_BOS, format!("is true but {KEY_BOS} is missing")));
    }
    if add_eos && spec.eos.is_none() {
        return Err(spec.err(KEY_ADD_EOS, format!("is true but {KEY_EOS} is missing")));
    }
    let post = bos_eos_processor(spec, spec.bos.filter(|_| add_bos), spec.eos.filter(|_| add_eos))?;

    let mut special = Vec::new();
    let mut added = Vec::new();
    for (i, t) in spec.tokens.iter().enumerate() {
        match spec.token_type(i) {
            token_type::CONTROL => special.push(added_token(t, true)),
            token_type::USER_DEFINED => added.push(added_token(t, false)),
            _ => {}
        }
    }
    // Without token types, the bos/eos/eot tokens named by id are the special ones.
    if spec.token_types.is_empty() {
        let mut ids: Vec<u32> = [spec.bos, spec.eos, spec.eot].into_iter().flatten().collect();
        ids.dedup();
        special.extend(ids.into_iter().map(|id| added_token(spec.token(id), true)));
    }
    Ok(finish(model, pre, post, special, added))
}
