//! `aliquot simulate analyzer`: a chemistry analyzer that runs a rack of specimens and sends
//! each one's results to the laboratory system as an ORU^R01 over MLLP, waiting for each
//! acknowledgement (see `aliquot_connect::simulate`).

use std::net::SocketAddr;
use std::time::Duration;

use aliquot_connect::simulate::{
    AstmInstrument, CHEMISTRY, Dice, MllpClient, ack_code, assay_by_code, assay_for, astm_results,
    measure, oru,
};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum SimulateCommand {
    /// A chemistry analyzer: sends realistic results for each specimen of its rack over MLLP
    /// and prints each acknowledgement.
    Analyzer(AnalyzerArgs),
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("link").required(true).args(["mllp", "astm"])))]
pub struct AnalyzerArgs {
    /// The laboratory system's MLLP listener (HL7 v2 ORU^R01 results).
    #[arg(long)]
    mllp: Option<SocketAddr>,
    /// The laboratory system's ASTM listener: the analyzer first asks which tests each
    /// specimen needs (host query), then sends those results.
    #[arg(long)]
    astm: Option<SocketAddr>,
    /// With --astm, write values with a decimal comma (`4,2`), as European analyzers do.
    #[arg(long)]
    decimal_comma: bool,
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
    if let Some(addr) = args.astm {
        return run_astm(addr, &args).await;
    }
    let Some(mllp) = args.mllp else {
        bail!("--mllp or --astm is required");
    };
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
    let mut client = MllpClient::connect(mllp)
        .await
        .with_context(|| format!("connecting to {mllp}"))?;
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
        let values = describe(&readings);
        outln!("{accession}\t{}\t{}", ack_code(&ack), values)?;
        let text = String::from_utf8_lossy(&ack);
        for err in text.split('\r').filter(|s| s.starts_with("ERR|")) {
            outln!("  {err}")?;
        }
    }
    Ok(())
}

/// The ASTM analyzer: host query for the rack, then one result message per specimen with the
/// tests the host asked for.
async fn run_astm(addr: SocketAddr, args: &AnalyzerArgs) -> anyhow::Result<()> {
    let mut inst = AstmInstrument::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let timeout = Duration::from_secs(60);
    let work = inst
        .host_query(&args.sender, &args.accessions, timeout)
        .await
        .context("the host query")?;
    let mut dice = Dice::new(args.seed);
    for accession in &args.accessions {
        let Some((_, patient, codes)) = work.iter().find(|(a, _, _)| a == accession) else {
            outln!("{accession}\tno work (the host knows nothing for this analyzer)")?;
            continue;
        };
        let readings: Vec<_> = codes
            .iter()
            .filter_map(|c| assay_by_code(c))
            .map(|a| measure(a, &mut dice))
            .collect();
        inst.send(
            astm_results(
                &args.sender,
                patient,
                accession,
                &readings,
                args.decimal_comma,
            ),
            timeout,
        )
        .await
        .with_context(|| format!("sending the results of {accession}"))?;
        let values = describe(&readings);
        outln!("{accession}\tACK\t{}", values)?;
    }
    Ok(())
}

/// `K=4.2 NA=140 GLU=182 H`: what the analyzer measured, for the operator.
fn describe(readings: &[aliquot_connect::simulate::Reading]) -> String {
    readings
        .iter()
        .map(|r| {
            let flag = if r.flags.is_empty() { "" } else { " H" };
            format!("{}={}{flag}", r.code, r.value)
        })
        .collect::<Vec<_>>()
        .join(" ")
}
