//! Minimal wiring of the protocol analyst tools; the integrator merges this
//! into the real `main.rs` (two `Command` variants and two match arms).

mod protocol_tools;

use clap::Parser;

#[derive(Parser)]
#[command(name = "aliquot", about = "Aliquot laboratory information system")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// HL7 v2 tools: parse, get.
    #[command(subcommand)]
    Hl7(protocol_tools::Hl7Command),
    /// ASTM E1381/E1394 tools: decode, frames.
    #[command(subcommand)]
    Astm(protocol_tools::AstmCommand),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Hl7(cmd) => protocol_tools::run_hl7(cmd),
        Command::Astm(cmd) => protocol_tools::run_astm(cmd),
    }
}
