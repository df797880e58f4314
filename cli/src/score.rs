//! `kiln score` (placeholder, filled by the scoring work).

use anyhow::{bail, Result};
use clap::Args;

use crate::DeviceArgs;

#[derive(Args)]
pub struct ScoreArgs {}

pub fn run(_dev_args: &DeviceArgs, _args: ScoreArgs) -> Result<()> {
    bail!("kiln score is not implemented yet")
}
