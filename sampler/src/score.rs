//! Scoring: the chain-rule log-probability of a text under a model, per token and in
//! total, and the conditional score of an answer given a context.
//!
//! For ids x_0 .. x_{n-1}, token i (i ≥ 1) is scored given its prefix:
//! `logprob_i = ln p(x_i | x_<i)`, read from the logits at position i - 1 by the
//! `token_logprobs` kernel (log-softmax at the target, entropy, rank, argmax), so the
//! logits stay on the GPU and only 16 bytes per position come back. One forward pass
//! over x_0 .. x_{n-2} gives every position's logits (the last id is never fed in: it
//! has no target); it runs in chunks of positions over one KV cache so that no logits
//! tensor exceeds the adapter's binding size.
//!
//! Totals over the scored tokens: `sum = Σ logprob_i`, `mean = sum / N`,
//! `perplexity = exp(-mean)`, `bits_per_byte = -sum / ln 2 / bytes` (bytes of the scored
//! tokens' text). See docs/scoring.md.
//!
//! First token: a text is encoded with the tokenizer's own special tokens
//! (`encode_with_special(text, true)`, as transformers' `tokenizer(text)`). Tokens the
//! tokenizer puts before the text (a BOS) are context and never scored; then every text
//! token is scored. Without a BOS the first text token has no context and is not scored
//! (as Hugging Face's perplexity recipe, `labels = input_ids`); special tokens added after
//! the text (an EOS) are dropped.

use kiln_kernels::logprobs::{self, COLS};
use kiln_model::{Model, Tokenizer};
use kiln_tensor::{DType, Device, Recorder, Tensor};

use crate::error::{param_error, Result};

/// The most positions one forward pass of a scoring chunk covers (memory for the
/// activations on GPUs with large bindings), before the binding-size limit.
pub const MAX_CHUNK_ROWS: usize = 256;

/// The score of one token given the tokens before it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenScore {
    /// Index in the scored ids (the token is predicted from positions 0..position).
    pub position: usize,
    /// The scored token id.
    pub id: u32,
    /// ln p(id | prefix), nats (≤ 0).
    pub logprob: f32,
    /// Entropy of the whole next-token distribution at this position, nats.
    pub entropy: f32,
    /// 1 + the number of ids with a larger logit (1 = the most likely).
    pub rank: u32,
    /// The most likely id here (smallest id on ties).
    pub argmax: u32,
}

impl TokenScore {
    /// `exp(logprob)`: the token's probability.
    pub fn prob(&self) -> f64 {
        f64::from(self.logprob).exp()
    }
    /// Whether greedy decoding would have produced this token.
    pub fn is_greedy(&self) -> bool {
        self.argmax == self.id
    }
}

/// Totals over a run of scored tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Totals {
    /// Tokens scored.
    pub tokens: usize,
    /// UTF-8 bytes of the tokens' text.
    pub bytes: usize,
    /// Σ logprob, nats.
    pub sum_logprob: f64,
    /// sum_logprob / tokens (the per-token length-normalized score).
    pub mean_logprob: f64,
    /// sum_logprob / bytes (the per-byte length-normalized score).
    pub logprob_per_byte: f64,
    /// exp(-mean_logprob).
    pub perplexity: f64,
    /// -sum_logprob / ln 2 / bytes.
    pub bits_per_byte: f64,
    /// Every token was the argmax of its position.
    pub greedy: bool,
}

impl Totals {
    /// Totals of `scores`, whose text is `bytes` UTF-8 bytes long. With no scores the mean is 0
    /// (perplexity 1); with `bytes` 0 the per-byte figures are NaN.
    pub fn new(scores: &[TokenScore], bytes: usize) -> Totals {
        let sum: f64 = scores.iter().map(|s| f64::from(s.logprob)).sum();
        let n = scores.len();
        let mean = sum / n.max(1) as f64;
        let per_byte = if bytes == 0 { f64::NAN } else { sum / bytes as f64 };
        Totals {
            tokens: n,
            bytes,
            sum_logprob: sum,
            mean_logprob: mean,
            logprob_per_byte: per_byte,
            perplexity: (-mean).exp(),
            bits_per_byte: -per_byte / std::f64::consts::LN_2,
            greedy: scores.iter().all(TokenScore::is_greedy),
        }
    }
}

/// A scored text: `ids[..first_scored]` are context, `tokens` scores `ids[first_scored..]`.
#[derive(Clone, Debug)]
pub struct TextScore {
    /// Every token id of the text, context included.
    pub ids: Vec<u32>,
    /// Index in `ids` of the first scored token.
    pub first_scored: usize,
    /// Scores of `ids[first_scored..]`, in order.
    pub tokens: Vec<TokenScore>,
    /// Totals over `tokens`.
    pub totals: Totals,
}

/// A scored answer: the whole sequence (context then answer) as a [`TextScore`], plus the
/// answer's own totals. `ids[answer_start..]` are the answer's tokens.
#[derive(Clone, Debug)]
pub struct AnswerScore {
    /// The whole sequence, context then answer, scored.
    pub text: TextScore,
    /// Index in `text.ids` of the answer's first token.
    pub answer_start: usize,
    /// The context and answer as tokenized (trailing whitespace of the context moves to
    /// the answer, see [`score_answer`]).
    pub context: String,
    /// The answer as tokenized (with any trailing whitespace moved from the context).
    pub answer: String,
    /// Totals over the answer's tokens only.
    pub answer_totals: Totals,
}

impl AnswerScore {
    /// The answer's tokens' scores.
    pub fn answer_tokens(&self) -> &[TokenScore] {
        &self.text.tokens[self.answer_start - self.text.first_scored..]
    }
}

/// Score `ids[first_scored..]`, each token given all ids before it. Needs
/// `1 ≤ first_scored < ids.len() ≤` the model's context and ids inside the vocabulary.
pub fn score_ids(dev: &Device, model: &Model, ids: &[u32], first_scored: usize) -> Result<Vec<TokenScore>> {
    score_ids_in_chunks(dev, model, ids, first_scored, chunk_rows(dev, model))
}

/// Positions per scoring forward pass: as many f32 logits rows as one binding holds, at
/// most [`MAX_CHUNK_ROWS`].
pub(crate) fn chunk_rows(dev: &Device, model: &Model) -> usize {
    let row_bytes = (model.config().vocab_size * 4) as u64;
    ((dev.max_binding_bytes() / row_bytes.max(1)) as usize).clamp(1, MAX_CHUNK_ROWS)
}

/// [`score_ids`] with at most `chunk_rows` positions per forward pass (tests use small
/// chunks to check that chunking changes nothing).
pub fn score_ids_in_chunks(
    dev: &Device,
    model: &Model,
    ids: &[u32],
    first_scored: usize,
    chunk_rows: usize,
) -> Result<Vec<TokenScore>> {
    let c = model.config();
    if first_scored == 0 || first_scored >= ids.len() {
        return Err(param_error(
            "first_scored",
            format!("must be in 1..{} for {} ids (token 0 has no context to be scored from)", ids.len(), ids.len()),
        ));
    }
    if ids.len() > c.max_position_embeddings {
        return Err(param_error(
            "ids",
            format!("{} tokens exceed the model's context of {} positions", ids.len(), c.max_position_embeddings),
        ));
    }
    if chunk_rows == 0 {
        return Err(param_error("chunk_rows", "must be at least 1"));
    }
    kiln_kernels::embedding::check_ids(ids, c.vocab_size)?;

    // Feed ids[..n-1]; the logits at position p score ids[p + 1]. Positions before
    // first_scored - 1 score nothing: they only fill the cache, without their logits.
    let fed = ids.len() - 1;
    let mut cache = model.new_cache(dev, fed)?;
    let mut scores = Vec::with_capacity(ids.len() - first_scored);
    let mut start = first_scored - 1;
    if start > 0 {
        let input = Tensor::from_slice(dev, &ids[..start], &[start])?;
        let mut rec = Recorder::new(dev);
        model.forward(&mut rec, &input, &mut cache, false)?;
        rec.submit()?;
    }
    while start < fed {
        let end = (start + chunk_rows).min(fed);
        let rows = end - start;
        let input = Tensor::from_slice(dev, &ids[start..end], &[rows])?;
        let targets = Tensor::from_slice(dev, &ids[start + 1..end + 1], &[rows])?;
        let out = Tensor::empty(dev, &[rows, COLS], DType::F32)?;
        let mut rec = Recorder::new(dev);
        let logits = model.forward(&mut rec, &input, &mut cache, true)?; // [rows, vocab]
        logprobs::token_logprobs(&mut rec, &logits, &targets, &out)?;
        rec.submit()?;
        let out = out.to_vec_f32()?;
        for (r, row) in out.chunks(COLS).enumerate() {
            let position = start + r + 1;
            if position >= first_scored {
                scores.push(TokenScore {
                    position,
                    id: ids[position],
                    logprob: row[logprobs::LOGPROB],
                    entropy: row[logprobs::ENTROPY],
                    rank: row[logprobs::RANK] as u32,
                    argmax: row[logprobs::ARGMAX] as u32,
                });
            }
        }
        start = end;
    }
    Ok(scores)
}

/// One prompt token's log-probability given the tokens before it, and the `top` most
/// likely tokens at its position (the completions API's `echo` with `logprobs`).
#[derive(Clone, Debug, PartialEq)]
pub struct PromptLogprob {
    /// ln p(token | the tokens before it).
    pub logprob: f32,
    /// The most likely ids at the position with their log-probs, best first (ties to the
    /// smaller id).
    pub top: Vec<(u32, f32)>,
}

/// For every id after the first: its log-prob given the ids before it, and the `top`
/// (0..=[`kiln_kernels::topn::MAX_TOP`]) most likely ids there — from one forward pass
/// (in chunks, as [`score_ids`]), on the GPU. `ids.len()` must be 2..= the model's
/// context.
pub fn prompt_logprobs(dev: &Device, model: &Model, ids: &[u32], top: usize) -> Result<Vec<PromptLogprob>> {
    use kiln_kernels::topn;
    if top > topn::MAX_TOP {
        return Err(param_error("logprobs", format!("at most {} alternatives, got {top}", topn::MAX_TOP)));
    }
    let c = model.config();
    if ids.len() < 2 || ids.len() > c.max_position_embeddings {
        return Err(param_error(
            "prompt",
            format!("{} tokens: needs 2 to {} (the model's context) to score", ids.len(), c.max_position_embeddings),
        ));
    }
    kiln_kernels::embedding::check_ids(ids, c.vocab_size)?;
    let chunk_rows = chunk_rows(dev, model);
    let fed = ids.len() - 1;
    let mut cache = model.new_cache(dev, fed)?;
    let mut out = Vec::with_capacity(fed);
    let mut start = 0;
    while start < fed {
        let end = (start + chunk_rows).min(fed);
        let rows = end - start;
        let input = Tensor::from_slice(dev, &ids[start..end], &[rows])?;
        let targets = Tensor::from_slice(dev, &ids[start + 1..end + 1], &[rows])?;
        let scores = Tensor::empty(dev, &[rows, COLS], DType::F32)?;
        let top_ids = Tensor::empty(dev, &[rows, top.max(1)], DType::U32)?;
        let top_lps = Tensor::empty(dev, &[rows, top.max(1)], DType::F32)?;
        let mut rec = Recorder::new(dev);
        let logits = model.forward(&mut rec, &input, &mut cache, true)?; // [rows, vocab]
        logprobs::token_logprobs(&mut rec, &logits, &targets, &scores)?;
        if top > 0 {
            topn::top_logprobs(&mut rec, &logits, &top_ids, &top_lps)?;
        }
        rec.submit()?;
        let scores = scores.to_vec_f32()?;
        let (top_ids, top_lps) = if top > 0 { (top_ids.to_vec_u32()?, top_lps.to_vec_f32()?) } else { (vec![], vec![]) };
        for r in 0..rows {
            let alternatives = (0..top).map(|j| (top_ids[r * top + j], top_lps[r * top + j])).collect();
            out.push(PromptLogprob { logprob: scores[r * COLS + logprobs::LOGPROB], top: alternatives });
        }
        start = end;
    }
    Ok(out)
}

/// `text`'s ids with the tokenizer's special tokens: (special prefix ++ text ids, length
/// of the prefix). Special tokens after the text are dropped.
fn encode(tokenizer: &Tokenizer, text: &str) -> Result<(Vec<u32>, usize)> {
    let plain = tokenizer.encode_with_special(text, false)?;
    let full = tokenizer.encode_with_special(text, true)?;
    let extra = full.len().checked_sub(plain.len());
    let prefix = extra.and_then(|extra| (0..=extra).find(|&k| full[k..k + plain.len()] == plain[..]));
    Ok(match prefix {
        Some(k) => (full[..k + plain.len()].to_vec(), k),
        None => (plain, 0),
    })
}

/// UTF-8 bytes the tokens stand for: each token's bytes for byte-level BPE, else the
/// length of their decoded text.
fn text_bytes(tokenizer: &Tokenizer, ids: &[u32]) -> Result<usize> {
    let per_token: Option<usize> = ids.iter().map(|&id| tokenizer.token_bytes(id).map(|b| b.len())).sum();
    match per_token {
        Some(n) => Ok(n),
        None => Ok(tokenizer.decode(ids, false)?.len()),
    }
}

fn check_fits(model: &Model, what: &str, n: usize) -> Result<()> {
    let ctx = model.config().max_position_embeddings;
    if n > ctx {
        return Err(param_error(what, format!("{n} tokens exceed the model's context of {ctx} positions")));
    }
    Ok(())
}

fn score_sequence(
    dev: &Device,
    model: &Model,
    tokenizer: &Tokenizer,
    ids: Vec<u32>,
    first_scored: usize,
) -> Result<TextScore> {
    let tokens = score_ids(dev, model, &ids, first_scored)?;
    let bytes = text_bytes(tokenizer, &ids[first_scored..])?;
    let totals = Totals::new(&tokens, bytes);
    Ok(TextScore { ids, first_scored, tokens, totals })
}

/// Score every token of `text` given the tokens before it (see the module docs for the
/// first token). Errors: empty text, a text of one token without a BOS (nothing has a
/// context), a text longer than the model's context.
pub fn score_text(dev: &Device, model: &Model, tokenizer: &Tokenizer, text: &str) -> Result<TextScore> {
    if text.is_empty() {
        return Err(param_error("text", "is empty: give at least two tokens of text to score"));
    }
    let (ids, prefix) = encode(tokenizer, text)?;
    let first_scored = prefix.max(1);
    if ids.is_empty() {
        return Err(param_error("text", format!("{text:?} encodes to no tokens")));
    }
    if ids.len() <= first_scored {
        return Err(param_error(
            "text",
            format!(
                "{text:?} is a single token and the tokenizer adds no BOS: the first token has no context, so \
                 nothing is left to score (give a longer text)"
            ),
        ));
    }
    check_fits(model, "text", ids.len())?;
    score_sequence(dev, model, tokenizer, ids, first_scored)
}

/// Score `answer` given `context`, as lm-evaluation-harness does: trailing whitespace of
/// the context moves to the front of the answer; `whole = encode(context + answer)`; if
/// it starts with `encode(context)` the answer's tokens are the rest, else they are
/// `encode(answer)` appended to `encode(context)`. The tokenizer's special prefix (a BOS)
/// comes first. Every token after the first is scored; the answer's totals cover the
/// answer's tokens only.
pub fn score_answer(
    dev: &Device,
    model: &Model,
    tokenizer: &Tokenizer,
    context: &str,
    answer: &str,
) -> Result<AnswerScore> {
    score_pair(dev, model, tokenizer, context, answer, false)
}

/// [`score_answer`] without scoring the context: `text.tokens` holds the answer's
/// tokens only (`text.first_scored == answer_start`), so only the answer's positions
/// go through the LM head. The answer's scores and totals are those of
/// [`score_answer`]; this is what multiple-choice evaluation needs.
pub fn score_answer_only(
    dev: &Device,
    model: &Model,
    tokenizer: &Tokenizer,
    context: &str,
    answer: &str,
) -> Result<AnswerScore> {
    score_pair(dev, model, tokenizer, context, answer, true)
}

fn score_pair(
    dev: &Device,
    model: &Model,
    tokenizer: &Tokenizer,
    context: &str,
    answer: &str,
    answer_only: bool,
) -> Result<AnswerScore> {
    if answer.is_empty() {
        return Err(param_error("answer", "is empty: give the text to score after the context"));
    }
    let trimmed = context.trim_end();
    let (context, answer) = (trimmed.to_string(), format!("{}{answer}", &context[trimmed.len()..]));
    let (whole, prefix) = encode(tokenizer, &format!("{context}{answer}"))?;
    let ctx = tokenizer.encode_with_special(&context, false)?;
    let mut ids = whole[..prefix].to_vec();
    ids.extend_from_slice(&ctx);
    if whole[prefix..].starts_with(&ctx) {
        ids.extend_from_slice(&whole[prefix + ctx.len()..]);
    } else {
        ids.extend(tokenizer.encode_with_special(&answer, false)?);
    }
    let answer_start = prefix + ctx.len();
    if answer_start == 0 {
        return Err(param_error(
            "context",
            "is empty and the tokenizer adds no BOS: the first answer token would have no context",
        ));
    }
    if ids.len() == answer_start {
        return Err(param_error("answer", format!("{answer:?} encodes to no tokens")));
    }
    check_fits(model, "context + answer", ids.len())?;
    let first_scored = if answer_only { answer_start } else { 1.max(prefix) };
    let text = score_sequence(dev, model, tokenizer, ids, first_scored)?;
    let answer_ids = &text.ids[answer_start..];
    let answer_totals =
        Totals::new(&text.tokens[answer_start - text.first_scored..], text_bytes(tokenizer, answer_ids)?);
    Ok(AnswerScore { text, answer_start, context, answer, answer_totals })
}
