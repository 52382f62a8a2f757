//! Instrument and EMR connections (issue 12): the instrument registry with each instrument's
//! test codes, and the ingest of result messages that every protocol edge (HL7 over MLLP,
//! ASTM) turns its wire format into.
//!
//! The edges parse; this module knows no HL7 or ASTM. An edge hands over an [`Inbound`]: who
//! sent it, its control id, the raw bytes, and the specimens and observations it carries, each
//! with the location in the message an error would name. [`App::ingest`] posts them through
//! the same result entry as `POST /api/v1/results`, as the instrument (an [`Actor`] of role
//! interface named `instrument:<code>`), and stores the message with the acknowledgement the
//! edge builds, all in one transaction: the acknowledgement leaves only after that commit, and
//! a message sent again under the same control id is answered from the store.

mod group;
mod ingest;
mod instruments;
mod messages;
mod orders;
mod outbox;
mod query;

pub(crate) use group::IngestQueue;
pub use group::MAX_GROUP;
pub use ingest::{
    AckFacts, AckKind, Inbound, InboundError, InboundObservation, InboundSpecimen, IngestOutcome,
};
pub use instruments::{ConnectOut, InstrumentInput, InstrumentView, TestCodeInput};
pub use messages::{InterfaceMessageView, MessageContent, MessageQuery};
pub use orders::{
    InboundMessage, InboundOrder, InboundOrders, InboundPatient, InboundTest, Located,
    OrderAckFacts, OrderControl, OrderResponse,
};
pub use outbox::{
    DestinationInput, DestinationView, OUTBOX_WORKER, OutboundDocument, OutboundItem, OutboundNext,
    OutboundOrder, OutboundPatient, OutboundProvider, OutboundResult, OutboundSpecimen,
    OutboundTarget, OutboxContent, OutboxQuery, OutboxView, RetryPolicy, backoff,
};
pub use query::HostOrder;

use aliquot_domain::auth::Role;

use crate::{Actor, Source};

/// The wire protocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Hl7,
    Astm,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Hl7 => "hl7",
            Protocol::Astm => "astm",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "hl7" => Some(Protocol::Hl7),
            "astm" => Some(Protocol::Astm),
            _ => None,
        }
    }

    /// The fields of a result segment holding its test code, value and units (HL7 OBX-3, 5,
    /// 6; ASTM R-3, 4, 5), for locating errors.
    pub fn result_fields(self) -> (u32, u32, u32) {
        match self {
            Protocol::Hl7 => (3, 5, 6),
            Protocol::Astm => (3, 4, 5),
        }
    }

    fn source(self) -> Source {
        match self {
            Protocol::Hl7 => Source::Hl7,
            Protocol::Astm => Source::Astm,
        }
    }
}

impl Actor {
    /// A registered instrument posting through its connection: the audit trail names it.
    pub fn instrument(code: &str, protocol: Protocol) -> Actor {
        Actor {
            user_id: None,
            username: format!("instrument:{code}"),
            role: Role::Interface,
            source: protocol.source(),
            session_id: None,
        }
    }
}
