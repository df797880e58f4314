//! Score text under a model: the log-probability of each token given the ones before it,
//! and which of two answers the model prefers after a context (lm-evaluation-harness's
//! convention: only the answer's tokens count).
//!
//!     cargo run --release -p kiln --example score -- MODEL
use kiln::sampler::score::{score_answer, score_text};

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: score MODEL"))?;
    let dev = kiln::Device::new(&kiln::DeviceOptions::default())?;
    let m = kiln::open(&dev, &path)?;
    let tok = m.tokenizer()?;

    let scored = score_text(&dev, &m.model, tok, "The quick brown fox jumps over the lazy dog.")?;
    for t in &scored.tokens {
        let piece = tok.decode(&[t.id], false)?;
        println!("{piece:>12?}  logprob {:8.3}  rank {:5}  entropy {:.2}", t.logprob, t.rank, t.entropy);
    }
    println!("perplexity {:.2}, bits per byte {:.3}", scored.totals.perplexity, scored.totals.bits_per_byte);

    let context = "The capital of France is";
    for answer in [" Paris", " Rome"] {
        let s = score_answer(&dev, &m.model, tok, context, answer)?;
        println!("{context}{answer:<8}  log p(answer | context) = {:.3}", s.answer_totals.sum_logprob);
    }
    Ok(())
}
