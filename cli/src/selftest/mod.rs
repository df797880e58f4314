//! `kiln selftest`: every kernel × dtype × edge shape against its CPU twin, then the tiny
//! checkpoints against their transformers goldens, on the chosen adapter. One line per
//! case (name, error against the tolerance, pass / FAIL / skip), then `N passed, M
//! failed, K skipped`; the exit status is non-zero when any case failed.

use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use kiln_kernels::selftest::{kernel_cases, Case, Checks, Outcome, Settings, Status};
use serde_json::json;

use crate::DeviceArgs;

mod models;

#[derive(Args)]
pub struct SelftestArgs {
    /// Only run cases whose name contains this text (e.g. `matvec/q4_k`, `attention`, `model/`).
    #[arg(long)]
    filter: Option<String>,
    /// Print a JSON array (one object per case) instead of lines; the summary goes to stderr.
    #[arg(long)]
    json: bool,
    /// List the case names and exit.
    #[arg(long)]
    list: bool,
    /// Multiply every float tolerance by this (0 demands bit-exact agreement with the f64
    /// CPU twins, which the kernels do not reach: it checks that failures are reported).
    #[arg(long, default_value_t = 1.0, hide = true)]
    tolerance_scale: f32,
}

/// All cases: kernels first, then the model goldens.
fn all_cases() -> Vec<Case> {
    let mut cases = kernel_cases();
    cases.extend(models::cases());
    cases
}

/// "max err …  (x% of tol …)" and/or "exact: d of n differ".
fn detail(c: &Checks) -> String {
    let mut parts = Vec::new();
    if let Some(tol) = c.tol {
        let share = if c.worst.is_finite() { format!("{:.1}%", 100.0 * c.worst) } else { "∞".to_string() };
        parts.push(format!(
            "max abs {:.1e} rel {:.1e} = {share} of tol {:.0e}+{:.0e}·|want|",
            c.max_abs, c.max_rel, tol.abs, tol.rel
        ));
    }
    if c.exact_total > 0 {
        parts.push(format!("exact: {} of {} differ", c.exact_mismatches, c.exact_total));
    }
    parts.join("; ")
}

fn status_word(s: &Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail(_) => "FAIL",
        Status::Skip(_) => "skip",
    }
}

fn to_json(o: &Outcome) -> serde_json::Value {
    let c = &o.checks;
    let message = match &o.status {
        Status::Pass => None,
        Status::Fail(m) | Status::Skip(m) => Some(m.clone()),
    };
    json!({
        "name": o.name,
        "status": status_word(&o.status).to_lowercase(),
        "max_abs": c.tol.map(|_| c.max_abs),
        "max_rel": c.tol.map(|_| c.max_rel),
        "share_of_tolerance": c.tol.map(|_| c.worst),
        "tol_abs": c.tol.map(|t| t.abs),
        "tol_rel": c.tol.map(|t| t.rel),
        "exact_compared": c.exact_total,
        "exact_mismatches": c.exact_mismatches,
        "message": message,
        "ms": o.elapsed.as_secs_f64() * 1e3,
    })
}

pub fn run(dev_args: &DeviceArgs, args: SelftestArgs) -> Result<()> {
    if !(args.tolerance_scale >= 0.0 && args.tolerance_scale.is_finite()) {
        bail!("--tolerance-scale must be a finite number ≥ 0, got {}", args.tolerance_scale);
    }
    let cases: Vec<Case> =
        all_cases().into_iter().filter(|c| args.filter.as_deref().is_none_or(|f| c.name.contains(f))).collect();
    if cases.is_empty() {
        bail!("no self-test case matches --filter {:?} (see `kiln selftest --list`)", args.filter.unwrap_or_default());
    }
    if args.list {
        for c in &cases {
            println!("{}", c.name);
        }
        return Ok(());
    }
    let dev = dev_args.open()?;
    let info = dev.info();
    let header = format!(
        "kiln selftest: {} cases on {} ({:?}, {:?}, driver {} {})",
        cases.len(),
        info.name,
        info.backend,
        info.device_type,
        info.driver,
        info.driver_info
    );
    if args.json {
        eprintln!("{header}");
    } else {
        println!("{header}");
    }
    let settings = Settings { tolerance_scale: args.tolerance_scale };
    let start = Instant::now();
    let width = cases.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    let mut rows = Vec::new();
    let mut stdout = std::io::stdout();
    for case in &cases {
        let o = case.run(&dev, settings);
        match &o.status {
            Status::Pass => passed += 1,
            Status::Fail(_) => failed += 1,
            Status::Skip(_) => skipped += 1,
        }
        if args.json {
            rows.push(to_json(&o));
        } else {
            let d = match &o.status {
                Status::Skip(why) => why.clone(),
                _ => detail(&o.checks),
            };
            writeln!(stdout, "{:<width$}  {:<4}  {d}", o.name, status_word(&o.status))?;
            if let Status::Fail(msg) = &o.status {
                writeln!(stdout, "    {msg}")?;
            }
            stdout.flush()?;
        }
    }
    let summary =
        format!("{passed} passed, {failed} failed, {skipped} skipped ({:.1} s)", start.elapsed().as_secs_f64());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    if failed > 0 {
        bail!("{failed} self-test case(s) failed");
    }
    Ok(())
}
