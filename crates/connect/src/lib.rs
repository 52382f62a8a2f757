//! # aliquot-connect: instrument and EMR connections
//!
//! The protocol edges of Aliquot: the MLLP listener for HL7 v2 ([`mllp`]) and the ASTM
//! listener ([`astm_listener`]), the reading of result messages into the ingest use case and
//! the acknowledgements built from its answer ([`hl7`], [`astm`]), and an analyzer simulator
//! ([`simulate`]) used by tests, the demo and the benchmark. Every result message goes through
//! `App::ingest` (crates/app, `connections`), the same result entry as `POST /api/v1/results`,
//! as the instrument that sent it; orders from an EMR (ORM^O01, OML^O21, [`hl7_orders`]) go
//! through `App::ingest_orders`, the same order use case as `POST /api/v1/orders`; host
//! queries (HL7 `QBP^Q11`, [`hl7_query`]; ASTM Q records) through `App::host_query`; released
//! and corrected results leave through the outbox sender ([`outbox`]). The acknowledgement is
//! written only after the commit that stored the message and what it posted.

mod accept;
pub mod astm;
pub mod astm_listener;
pub mod connect_out;
pub mod hl7;
pub mod hl7_orders;
pub mod hl7_query;
pub mod mllp;
pub mod outbox;
#[cfg(unix)]
pub mod serial;
pub mod simulate;

pub use astm_listener::{AstmConfig, serve_astm};
pub use connect_out::run_connect_out;
pub use mllp::{MllpConfig, serve_mllp};
pub use outbox::{OutboxConfig, run_outbox};

/// A stored message read again for a replay, by the protocol it arrived in: HL7 results or
/// orders (by MSH-9), ASTM results. The one reader every edge that replays uses.
pub fn read_stored(
    protocol: aliquot_app::connections::Protocol,
    raw: &[u8],
) -> aliquot_app::connections::InboundMessage {
    match protocol {
        aliquot_app::connections::Protocol::Hl7 => hl7_orders::read_any(raw),
        aliquot_app::connections::Protocol::Astm => {
            aliquot_app::connections::InboundMessage::Results(astm::read_message(raw))
        }
    }
}
