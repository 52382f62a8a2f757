//! The ASTM listener: E1381 over TCP (the same link a serial line carries), E1394 messages.
//!
//! **Invariant: the final frame's ACK leaves after the commit.** The link (`aliquot-astm`,
//! LIS defaults) acknowledges every frame of a message but its last at once, and hands the
//! whole message over with that last reply held. A result message is ingested (posted,
//! stored with its key, committed) and only then is the ACK written ([`Link::commit`]); when
//! nothing could be stored the link answers NAK ([`Link::refuse`]) and the instrument sends the
//! frame again, so the message comes back. An ingest slower than the hold (10 s, below the
//! sender's 15 s) is answered NAK by the link itself; the late commit writes nothing, and the
//! resent message is answered from the store (its key is its digest).
//!
//! A host query (Q records) is acknowledged at once (nothing to store) and answered after the
//! instrument's session ends: P and O records with the tests to run, in the instrument's own
//! codes, or the "no information" answer (`L|1|I`).
//!
//! Limits: at most `max_connections` open; a connection that sends nothing for
//! `idle_timeout` is closed; the link bounds its buffers and closes nothing on bad bytes (they
//! are NAKed or ignored).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aliquot_app::App;
use aliquot_app::connections::{AckKind, Protocol};
use aliquot_astm::records::{AnswerOrder, Query, build_query_answer};
use aliquot_astm::{Link, LinkConfig, LinkEvent, Output, parse_records};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::accept::accept_loop;
use crate::astm::read_message;

/// Limits of the ASTM listener.
#[derive(Debug, Clone)]
pub struct AstmConfig {
    /// Connections open at once; the next is closed at once.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// The link's settings (LIS role, reply held for the commit).
    pub link: LinkConfig,
}

impl Default for AstmConfig {
    fn default() -> Self {
        AstmConfig {
            max_connections: 64,
            idle_timeout: Duration::from_secs(3600),
            link: LinkConfig::lis(),
        }
    }
}

/// What became of one message.
enum Handled {
    /// Stored (or found stored): acknowledge.
    Stored,
    /// A host query: acknowledge, then send this answer.
    Query(Vec<u8>),
    /// Nothing stored: NAK, the instrument sends it again.
    Failed,
}

async fn handle(app: &App, message: &[u8]) -> Handled {
    let records = parse_records(message);
    let queries: Vec<String> = records
        .records
        .iter()
        .filter_map(Query::from_record)
        .flat_map(|q| q.specimen_ids())
        .collect();
    if !queries.is_empty() {
        let inbound = read_message(message);
        let orders = match app
            .host_query(Protocol::Astm, &inbound.sender, &queries)
            .await
        {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "ASTM host query not answered with orders");
                Vec::new()
            }
        };
        let answer: Vec<AnswerOrder> = orders
            .into_iter()
            .map(|o| AnswerOrder {
                patient_id: o.patient_id,
                patient_name: (o.family_name, o.given_name),
                specimen_id: o.accession,
                tests: o.tests,
                priority: o.priority,
            })
            .collect();
        let ts = jiff::Timestamp::now().strftime("%Y%m%d%H%M%S").to_string();
        return Handled::Query(build_query_answer("ALIQUOT", &ts, &answer));
    }
    let inbound = read_message(message);
    // ASTM has no acknowledgement message: the link's ACK is the answer, and what went wrong
    // is kept with the message in the error queue. The stored "ack" records the decision.
    match app
        .ingest(&inbound, |facts| match facts.kind {
            AckKind::Accept => b"ACK".to_vec(),
            AckKind::Error => b"ACK (errors kept in the error queue)".to_vec(),
            AckKind::Reject => b"ACK (rejected, kept in the error queue)".to_vec(),
        })
        .await
    {
        Ok(_) => Handled::Stored,
        Err(e) => {
            tracing::error!(error = %e, "an ASTM message could not be stored; answered NAK");
            Handled::Failed
        }
    }
}

/// Serves ASTM on `listener` until `shutdown` completes.
pub async fn serve_astm(
    listener: TcpListener,
    app: App,
    config: AstmConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let config = Arc::new(config);
    let max = config.max_connections;
    accept_loop("astm", listener, max, shutdown, move |stream, stop| {
        let app = app.clone();
        let config = config.clone();
        async move { connection(stream, &app, &config, stop).await }
    })
    .await
}

/// Serves ASTM over a serial line (`path` a tty, raw at `baud`) until `shutdown`: the same
/// link and the same answers as over TCP, one instrument on the line.
#[cfg(unix)]
pub async fn serve_astm_serial(
    path: &std::path::Path,
    baud: u32,
    app: App,
    config: AstmConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let stream = crate::serial::open_serial(path, baud)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let serving = connection(stream, &app, &config, stop_rx);
    tokio::pin!(serving);
    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut serving => {}
        () = &mut shutdown => {
            let _ = stop_tx.send(true);
            serving.await;
        }
    }
    Ok(())
}

pub(crate) async fn connection<S>(
    mut stream: S,
    app: &App,
    config: &AstmConfig,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let origin = Instant::now();
    let now = move || u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut link = Link::new(config.link);
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_byte = Instant::now();
    loop {
        while let Some(out) = link.poll() {
            match out {
                Output::Write(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Output::HeldMessage { token, message } => {
                    // Not raced against the socket: once storing starts it finishes.
                    let handled = handle(app, &message).await;
                    let answered = match &handled {
                        Handled::Failed => link.refuse(token, now()),
                        Handled::Stored | Handled::Query(_) => link.commit(token, now()),
                    };
                    if let Err(e) = answered {
                        tracing::warn!(error = %e, token = token.get(), "ASTM reply not sent");
                    }
                    if let Handled::Query(answer) = handled
                        && let Err(e) = link.send(answer, now())
                    {
                        tracing::warn!(error = ?e, "ASTM host-query answer not queued");
                    }
                }
                Output::Message(message) => {
                    // Already acknowledged by the link (no closing L record, or no
                    // handshake): stored all the same, the key keeps it once.
                    let _ = handle(app, &message).await;
                }
                Output::Event(e) => log_event(&e),
            }
        }
        if *stop.borrow() && link.is_neutral() {
            return;
        }
        let link_deadline = link
            .next_deadline()
            .map(|ms| origin + Duration::from_millis(ms));
        let idle_deadline = last_byte + config.idle_timeout;
        let deadline = link_deadline.map_or(idle_deadline, |d| d.min(idle_deadline));
        tokio::select! {
            read = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => match read {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => {
                    last_byte = Instant::now();
                    link.receive(&buf[..n], now());
                }
                Err(_) => {
                    if Instant::now() >= idle_deadline {
                        tracing::warn!("ASTM connection closed after its idle timeout");
                        return;
                    }
                    link.tick(now());
                }
            },
            _ = stop.changed() => {}
        }
    }
}

/// Link events in the log: what happened, never message content.
fn log_event(e: &LinkEvent) {
    match e {
        LinkEvent::HoldExpired { token } => {
            tracing::warn!(
                token = token.get(),
                "ASTM message not stored in time; the link answered NAK"
            )
        }
        LinkEvent::HoldAbandoned { token, reason } => {
            tracing::warn!(token = token.get(), reason = %reason, "ASTM session ended before the reply")
        }
        LinkEvent::ReceiveTimeout => {
            tracing::warn!("ASTM receiver timeout; partial message dropped")
        }
        LinkEvent::SendFailed { id, reason } => {
            tracing::warn!(id, reason = %reason, "ASTM message to the instrument abandoned")
        }
        other => tracing::debug!(event = ?std::mem::discriminant(other), "ASTM link event"),
    }
}
