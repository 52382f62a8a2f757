//! `aliquot simulate analyzer`: a chemistry analyzer that runs a rack of specimens and sends
//! each one's results to the laboratory system as an ORU^R01 over MLLP, waiting for each
//! acknowledgement (see `aliquot_connect::simulate`).

use std::net::SocketAddr;
use std::time::Duration;

use aliquot_connect::simulate::{CHEMISTRY, Dice, MllpClient, ack_code, assay_for, measure, oru};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum SimulateCommand {
    /// A chemistry analyzer: sends realistic results for each specimen of its rack over MLLP
    /// and prints each acknowledgement.
    Analyzer(AnalyzerArgs),
}

#[derive(Args)]
pub struct AnalyzerArgs {
    /// The laboratory system's MLLP listener.
    #[arg(long)]
    mllp: SocketAddr,
    /// The name the analyzer gives in MSH-3 (the instrument's registered sender).
    #[arg(long, default_value = "CHEM1")]
    sender: String,
    /// A specimen's accession on the rack (repeat for more).
    #[arg(long = "accession", required = true)]
    accessions: Vec<String>,
    /// Catalogue tests to run on every specimen, comma-separated (default: the whole menu:
    /// NA, K, CL, CO2, BUN, CREA, GLU, CA).
    #[arg(long, value_delimiter = ',')]
    tests: Vec<String>,
    /// Seed of the values (the same seed gives the same values).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub async fn run(cmd: SimulateCommand) -> anyhow::Result<()> {
    let SimulateCommand::Analyzer(args) = cmd;
    let assays = if args.tests.is_empty() {
        CHEMISTRY.iter().collect::<Vec<_>>()
    } else {
        let mut v = Vec::new();
        for t in &args.tests {
            match assay_for(t) {
                Some(a) => v.push(a),
                None => bail!(
                    "the simulated analyzer does not run {t}; its menu: {}",
                    CHEMISTRY
                        .iter()
                        .map(|a| a.test)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        v
    };
    let mut client = MllpClient::connect(args.mllp)
        .await
        .with_context(|| format!("connecting to {}", args.mllp))?;
    let mut dice = Dice::new(args.seed);
    let run = jiff::Timestamp::now().as_second();
    for (i, accession) in args.accessions.iter().enumerate() {
        let readings: Vec<_> = assays.iter().map(|a| measure(a, &mut dice)).collect();
        let control_id = format!("{}-{run}-{}", args.sender, i + 1);
        let msg = oru(&args.sender, &control_id, accession, &readings);
        let ack = client
            .send(&msg, Duration::from_secs(30))
            .await
            .with_context(|| format!("sending the results of {accession}"))?;
        let values: Vec<String> = readings
            .iter()
            .map(|r| {
                format!(
                    "{}={}{}",
                    r.code,
                    r.value,
                    if r.flags.is_empty() { "" } else { " H" }
                )
            })
            .collect();
        outln!("{accession}\t{}\t{}", ack_code(&ack), values.join(" "))?;
        let text = String::from_utf8_lossy(&ack);
        for err in text.split('\r').filter(|s| s.starts_with("ERR|")) {
            outln!("  {err}")?;
        }
    }
    Ok(())
}
