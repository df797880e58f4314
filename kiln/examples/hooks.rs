//! Hooks: capture a point's activations and edit the forward pass on the GPU.
//!
//! 1. Seed 002's lm_head hook: the logit of " coffee" becomes the row's max + 10, so it
//!    is the next token, and no other logit moves.
//! 2. Steering: add 3 × a vector to `embed`; the captured `embed` moves by exactly that.
//!
//! Exits non-zero when a check fails.
//!
//!     cargo run --release -p kiln --example hooks -- tests/fixtures/models/gpt2-tiny-f32
use anyhow::{ensure, Context};
use kiln::{Edit, Hooks, LogitBase, LogitEdit, Point, Recorder, Tensor};

/// One prefill of `ids`; returns the last position's logits.
fn next_logits(dev: &kiln::Device, model: &kiln::Model, ids: &[u32]) -> anyhow::Result<Vec<f32>> {
    let mut cache = model.new_cache(dev, ids.len())?;
    let input = Tensor::from_slice(dev, ids, &[ids.len()])?;
    let mut rec = Recorder::new(dev);
    let logits = model.forward(&mut rec, &input, &mut cache, false)?; // [1, vocab]
    rec.submit()?;
    Ok(logits.to_vec_f32()?)
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).context("usage: hooks MODEL")?;
    let dev = kiln::Device::new(&kiln::DeviceOptions::default())?;
    let kiln::LoadedModel { mut model, tokenizer, .. } = kiln::open(&dev, &path)?;
    let tok = tokenizer.context("the model has no tokenizer")?;
    let ids = tok.encode("I like oat milk in my")?;
    let coffee = tok.encode_with_special(" coffee", false)?[0];
    println!("prompt: {} tokens; \" coffee\" starts with token {coffee} {:?}", ids.len(), tok.token_text(coffee));

    // 1. The logit edit, done in the forward pass's own submission.
    let plain = next_logits(&dev, &model, &ids)?;
    let max = plain[argmax(&plain)];
    let mut hooks = Hooks::new();
    hooks.edit(Point::Logits, Edit::Logits(vec![LogitEdit { id: coffee, base: LogitBase::RowMax, value: 10.0, raise_only: false }]));
    model.set_hooks(hooks)?;
    let edited = next_logits(&dev, &model, &ids)?;
    println!("before: next token {:?} (logit {max:.4}); after: {:?} (logit {:.4})",
        tok.token_text(argmax(&plain) as u32), tok.token_text(argmax(&edited) as u32), edited[coffee as usize]);
    ensure!(edited[coffee as usize] == max + 10.0, "the edited logit is {}, not max + 10 = {}", edited[coffee as usize], max + 10.0);
    ensure!(argmax(&edited) == coffee as usize, "\" coffee\" is not the argmax after the edit");
    let moved = (0..plain.len()).filter(|&i| i != coffee as usize && plain[i].to_bits() != edited[i].to_bits()).count();
    ensure!(moved == 0, "{moved} other logits changed");

    // 2. Capture `embed` with and without a steering vector added there.
    let hidden = model.config().hidden_size;
    let vector: Vec<f32> = (0..hidden).map(|j| (j as f32 * 0.37).sin()).collect();
    let mut captured = Vec::new();
    for steer in [false, true] {
        let mut hooks = Hooks::new();
        if steer {
            hooks.edit(Point::Embed, Edit::Add { vector: vector.clone(), scale: 3.0 });
        }
        hooks.capture(Point::Embed).capture(Point::ResidPost(0));
        model.set_hooks(hooks)?;
        next_logits(&dev, &model, &ids)?;
        captured.push(model.take_captures()?);
    }
    let (before, after) = (&captured[0][0], &captured[1][0]);
    ensure!(before.point == Point::Embed && before.shape == [ids.len(), hidden], "embed captured as {:?}", before.shape);
    let mut worst = 0f32;
    for (i, (a, b)) in after.data.iter().zip(&before.data).enumerate() {
        worst = worst.max((a - b - 3.0 * vector[i % hidden]).abs());
    }
    ensure!(worst < 1e-5, "steered embed differs from embed + 3·v by {worst}");
    ensure!(captured[1][1].data != captured[0][1].data, "steering embed did not change blocks.0.resid_post");
    println!("embed [{} x {hidden}] steered by 3·v (max error {worst:.1e}); blocks.0.resid_post moved", ids.len());
    model.set_hooks(Hooks::new())?;
    println!("ok");
    Ok(())
}
