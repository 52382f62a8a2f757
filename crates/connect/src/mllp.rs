//! The MLLP listener: HL7 v2 over TCP, one message at a time per connection, acknowledged only
//! after the commit that stored it.
//!
//! **Invariant: the acknowledgement leaves after the commit.** Each frame is read into an
//! [`Inbound`](aliquot_app::connections::Inbound), ingested (posted, stored with its
//! acknowledgement, committed), and only then is the stored acknowledgement written. A
//! connection closed while a message is being stored does not stop it: the task finishes
//! the commit and the sender, resending under the same MSH-10, gets the stored answer.
//!
//! **Invariant: no sender holds the listener.** A started frame must end within
//! `frame_timeout` of its first byte (a slow-loris sender is closed); a connection that sends
//! nothing for `idle_timeout` is closed (instruments reconnect); frames longer than
//! `max_frame` are dropped unread by the bounded decoder (and answered by no ACK, so the
//! sender's own timeout reports it); at most `max_connections` are open, the next is closed
//! at once. Bytes outside frames are dropped and counted, never logged.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aliquot_app::App;
use aliquot_hl7::{MllpDecoder, MllpEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::accept::accept_loop;
use crate::{hl7, hl7_orders, hl7_query};

/// Limits of the MLLP listener.
#[derive(Debug, Clone)]
pub struct MllpConfig {
    /// The largest message accepted (bytes, without framing).
    pub max_frame: usize,
    /// Connections open at once; the next is closed at once.
    pub max_connections: usize,
    /// A started frame must be complete within this time of its first byte.
    pub frame_timeout: Duration,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for MllpConfig {
    fn default() -> Self {
        MllpConfig {
            max_frame: 1 << 20,
            max_connections: 256,
            frame_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(3600),
        }
    }
}

/// Answers one HL7 message: ingested (ORM^O01 / OML^O21 as orders, anything else as
/// results), and the stored acknowledgement returned (MLLP-framed).
/// When nothing could be stored the answer is AR/CR ("send again") and nothing is kept.
pub async fn answer(app: &App, raw: &[u8]) -> Vec<u8> {
    // Routed by MSH-9: a host query (answered, nothing stored), orders from an EMR, else
    // results (which names any other type).
    if hl7_query::is_query(raw) {
        let ts = jiff::Timestamp::now()
            .strftime("%Y%m%d%H%M%S+0000")
            .to_string();
        return hl7_query::answer_query(app, raw, &ts).await;
    }
    let ingested = if hl7_orders::is_order_message(raw) {
        let orders = hl7_orders::read_orders(raw);
        app.ingest_orders(&orders, |facts| hl7_orders::respond(raw, facts))
            .await
    } else {
        let inbound = hl7::read_message(raw);
        let original = raw.to_vec();
        app.ingest(&inbound, move |facts| hl7::acknowledge(&original, facts))
            .await
    };
    match ingested {
        Ok(outcome) => outcome.ack,
        Err(e) => {
            tracing::error!(error = %e, "an HL7 message could not be stored; answered \"send again\"");
            hl7::try_again(raw)
        }
    }
}

/// Serves MLLP on `listener` until `shutdown` completes; then stops accepting, lets each
/// connection finish the message it is storing, and returns.
pub async fn serve_mllp(
    listener: TcpListener,
    app: App,
    config: MllpConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let config = Arc::new(config);
    let max = config.max_connections;
    accept_loop("mllp", listener, max, shutdown, move |stream, stop| {
        let app = app.clone();
        let config = config.clone();
        async move { connection(stream, &app, &config, stop).await }
    })
    .await
}

/// One connection: frames in, acknowledgements out, one message at a time.
pub(crate) async fn connection(
    mut stream: TcpStream,
    app: &App,
    config: &MllpConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut decoder = MllpDecoder::new(config.max_frame);
    let mut buf = vec![0u8; 64 * 1024];
    let mut frame_started: Option<Instant> = None;
    loop {
        while let Some(event) = decoder.next_event() {
            match event {
                MllpEvent::Frame(message) => {
                    frame_started = None;
                    // Not raced against the socket or the shutdown: once a message is
                    // being stored, it is stored and answered.
                    let ack = answer(app, &message).await;
                    if stream.write_all(&ack).await.is_err() {
                        return;
                    }
                }
                MllpEvent::Discarded { bytes, reason } => {
                    tracing::warn!(bytes, ?reason, "MLLP bytes discarded");
                }
            }
        }
        if *stop.borrow() {
            return;
        }
        let deadline = if decoder.buffered() > 0 {
            *frame_started.get_or_insert_with(Instant::now) + config.frame_timeout
        } else {
            frame_started = None;
            Instant::now() + config.idle_timeout
        };
        tokio::select! {
            read = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => match read {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    decoder.finish();
                    while let Some(MllpEvent::Discarded { bytes, reason }) = decoder.next_event() {
                        tracing::warn!(bytes, ?reason, "MLLP bytes discarded");
                    }
                    return;
                }
                Ok(Ok(n)) => decoder.push(&buf[..n]),
                Err(_) => {
                    tracing::warn!(partial = decoder.buffered() > 0, "MLLP connection closed after its timeout");
                    return;
                }
            },
            _ = stop.changed() => return,
        }
    }
}
