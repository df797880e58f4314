//! Gemma's SentencePiece vocabulary (`tokenizer.ggml.model = "llama"` in a `gemma`,
//! `gemma2` or `gemma3` file), built the way transformers 5 builds it from the same file
//! (`integrations/gguf/gguf_tokenizer_mapping.py`, `gemma_tokenizer` and `GemmaTokenizer`):
//!
//! - tokens made only of whitespace that contain a space (`"  "`, stored with real
//!   spaces) are respelled as that many `▁`, the spelling the normalizer produces;
//! - the file has no merges, so they are derived from the vocabulary: every split of a
//!   token into two tokens is a merge, ranked by the merged token's position in the file
//!   (earlier first; Gemma's scores do not follow its merge order), then by the longer
//!   left part (`generate_merges`);
//! - BPE with byte fallback (`<0xNN>` tokens for characters outside the vocabulary) and
//!   fused unknowns; normalizer: every space becomes `▁`, no prefix space; decoder:
//!   `▁` back to a space, byte tokens to bytes, then joined;
//! - control tokens (type 3) are special added tokens, user-defined ones (type 4, e.g.
//!   the runs of newlines) plain added tokens when their spelling is in the vocabulary;
//!   both are matched whole in the raw text;
//! - BOS in front when `tokenizer.ggml.add_bos_token` says so (true when absent, as
//!   llama.cpp and transformers do for SentencePiece files).

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::replace::Replace;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, SplitDelimiterBehavior};

use super::tokenizer::{token_type, GgufTokenizerSpec, KEY_ADD_BOS, KEY_ADD_EOS, KEY_BOS, KEY_EOS, KEY_TOKENS};
use crate::error::Result;

/// `general.architecture` values whose SentencePiece vocabulary this module reads.
pub const GEMMA_ARCHES: &[&str] = &["gemma", "gemma2", "gemma3"];

/// SentencePiece's word-boundary mark.
const SPACE_MARK: &str = "\u{2581}";

/// A whitespace-only token with a space in it, spelled with `▁` instead.
fn respell(token: &str) -> String {
    if token.contains(' ') && token.trim().is_empty() {
        SPACE_MARK.repeat(token.chars().count())
    } else {
        token.to_string()
    }
}

/// The merges a vocabulary implies, best first: `(left, right)` for every token that is
/// the concatenation of two tokens, ordered by the token's id, then by the longer left part.
fn derive_merges(tokens: &[String], vocab: &Vocab) -> Vec<(String, String)> {
    // (merged id, left length in chars, left, right)
    let mut ranked: Vec<(u32, usize, &str, &str)> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        // A repeated token counts once, under its last id (as a Python dict keeps it).
        if vocab.get(token) != Some(&(i as u32)) {
            continue;
        }
        for (n, (at, _)) in token.char_indices().enumerate().skip(1) {
            let (left, right) = token.split_at(at);
            if vocab.contains_key(left) && vocab.contains_key(right) {
                ranked.push((i as u32, n, left, right));
            }
        }
    }
    ranked.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    ranked.into_iter().map(|(_, _, l, r)| (l.to_string(), r.to_string())).collect()
}

/// Gemma's tokenizer from `spec` (already checked by `tokenizer::build`).
pub(crate) fn build(spec: &GgufTokenizerSpec) -> Result<tokenizers::Tokenizer> {
    let tokens: Vec<String> = spec.tokens.iter().map(|t| respell(t)).collect();
    let mut vocab = Vocab::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.clone(), i as u32);
    }
    let merges = derive_merges(&tokens, &vocab);
    let unk = match vocab.contains_key("<unk>") {
        true => "<unk>".to_string(),
        false => spec.unk.map(|id| tokens[id as usize].clone()).unwrap_or_else(|| "<unk>".into()),
    };
    let model = BPE::builder()
        .vocab_and_merges(vocab.clone(), merges)
        .unk_token(unk)
        .fuse_unk(true)
        .byte_fallback(true)
        .build()
        .map_err(|e| spec.err(KEY_TOKENS, format!("cannot build the BPE model: {e}")))?;
    let replace = |from: &str, to: &str| {
        Replace::new(from, to).map_err(|e| spec.err(KEY_TOKENS, format!("cannot build the normalizer: {e}")))
    };
    let split = Split::new(SplitPattern::String(" ".into()), SplitDelimiterBehavior::MergedWithPrevious, false)
        .map_err(|e| spec.err(KEY_TOKENS, format!("cannot build the pre-tokenizer: {e}")))?;

    let add_bos = spec.add_bos.unwrap_or(true);
    let add_eos = spec.add_eos.unwrap_or(false);
    if add_bos && spec.bos.is_none() {
        return Err(spec.err(KEY_ADD_BOS, format!("is true but {KEY_BOS} is missing")));
    }
    if add_eos && spec.eos.is_none() {
        return Err(spec.err(KEY_ADD_EOS, format!("is true but {KEY_EOS} is missing")));
    }
    let post = super::tokenizer::bos_eos_processor(spec, spec.bos.filter(|_| add_bos), spec.eos.filter(|_| add_eos))?;

    let mut t = tokenizers::Tokenizer::new(model);
    t.with_normalizer(Some(NormalizerWrapper::Replace(replace(" ", SPACE_MARK)?)));
    t.with_pre_tokenizer(Some(split));
    t.with_post_processor(Some(post));
    t.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(vec![
        DecoderWrapper::Replace(replace(SPACE_MARK, " ")?),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
    ]))));
    let added = |ty: i32, special: bool| -> Vec<AddedToken> {
        spec.tokens
            .iter()
            .enumerate()
            .filter(|&(i, tok)| spec.token_type_of(i) == ty && (special || vocab.contains_key(tok)))
            .map(|(_, tok)| AddedToken::from(tok.clone(), special).normalized(false))
            .collect()
    };
    let special = added(token_type::CONTROL, true);
    if !special.is_empty() {
        t.add_special_tokens(&special);
    }
    let user = added(token_type::USER_DEFINED, false);
    if !user.is_empty() {
        t.add_tokens(&user);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_follow_token_order_then_longer_left() {
        let tokens: Vec<String> = ["a", "b", "c", "bc", "ab", "abc"].iter().map(|s| s.to_string()).collect();
        let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let m = derive_merges(&tokens, &vocab);
        let m: Vec<(&str, &str)> = m.iter().map(|(l, r)| (l.as_str(), r.as_str())).collect();
        assert_eq!(m, vec![("b", "c"), ("a", "b"), ("ab", "c"), ("a", "bc")]);
    }

    #[test]
    fn only_space_runs_are_respelled() {
        assert_eq!(respell("  "), "\u{2581}\u{2581}");
        assert_eq!(respell("\n\n"), "\n\n");
        assert_eq!(respell(" a"), " a");
    }
}
