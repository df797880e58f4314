//! `kiln next`: the next-token table for a prompt (rank, id, token, logit, prob, logprob).

use anyhow::Result;
use clap::Args;
use kiln_kernels::softmax;
use kiln_tensor::{DType, Recorder, Tensor};
use serde_json::json;

use crate::model_args::ModelArgs;
use crate::DeviceArgs;

#[derive(Args)]
pub struct NextArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// How many candidates to list.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Print a JSON object {"prompt_ids", "top": [{id, token, logit, prob, logprob}]}.
    #[arg(long)]
    json: bool,
}

pub fn run(dev_args: &DeviceArgs, args: NextArgs) -> Result<()> {
    let dev = dev_args.open()?;
    let loaded = args.model.load(&dev)?;
    let ids = &loaded.prompt_ids;
    kiln_model::generate::check_prompt(&loaded.model, ids, 0)?;
    let mut cache = loaded.model.new_cache(&dev, ids.len())?;
    let input = Tensor::from_slice(&dev, ids, &[ids.len()])?;
    let mut rec = Recorder::new(&dev);
    let logits = loaded.model.forward(&mut rec, &input, &mut cache, false)?; // [1, vocab]
    let logprobs = Tensor::empty(&dev, logits.shape(), DType::F32)?;
    softmax::log_softmax(&mut rec, &logits, &logprobs)?;
    rec.submit()?;
    let logits = logits.to_vec_f32()?;
    let logprobs = logprobs.to_vec_f32()?;

    let mut order: Vec<usize> = (0..logits.len()).collect();
    // Highest logit first; ties keep the lower id first (like torch.topk on CPU).
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order.truncate(args.top.max(1));
    let token = |id: usize| loaded.tokenizer.as_ref().map(|t| t.token_text(id as u32)).unwrap_or_default();

    if args.json {
        let top: Vec<_> = order
            .iter()
            .map(|&id| {
                json!({"id": id, "token": token(id), "logit": logits[id], "prob": logprobs[id].exp(), "logprob": logprobs[id]})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({"prompt_ids": ids, "top": top}))?);
    } else {
        println!("{:>4} {:>8}  {:<20} {:>10} {:>9} {:>10}", "rank", "id", "token", "logit", "prob", "logprob");
        for (rank, &id) in order.iter().enumerate() {
            println!(
                "{:>4} {:>8}  {:<20} {:>10.4} {:>9.5} {:>10.4}",
                rank + 1,
                id,
                format!("{:?}", token(id)),
                logits[id],
                logprobs[id].exp(),
                logprobs[id]
            );
        }
    }
    Ok(())
}
