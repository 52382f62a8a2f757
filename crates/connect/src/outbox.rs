//! The outbox sender: results released or corrected leave for each configured destination as
//! HL7 v2.5.1 ORU^R01 over MLLP.
//!
//! One task per active destination drains its queue strictly in id order: the head is claimed
//! for one attempt (`App::outbox_next`), encoded here from its protocol-neutral document with
//! the row's control id as MSH-10 (the same on every resend, so the receiver can drop a
//! duplicate), framed, written on the destination's connection (kept open between messages),
//! and answered within the acknowledgement timeout. Only an acknowledgement whose MSA-2 is
//! that control id and whose MSA-1 is AA or CA marks the row sent. AE, AR, CE or CR is a
//! refusal (counted; after `max_refusals` the row is `failed` and holds the queue for an
//! analyst); a timeout, a closed or refused connection or an acknowledgement that answers
//! another message is a transport failure (the connection is dropped and opened afresh). Both
//! wait the back-off (doubling from `backoff_start` to at most `backoff_max`).
//!
//! Nothing is lost on restart: a row is left only by its acknowledgement or an analyst, and a
//! row claimed by a worker that died is claimed again once its lease (longer than the
//! acknowledgement timeout) has run out.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::time::Duration;

use aliquot_app::App;
use aliquot_app::connections::{
    OutboundDocument, OutboundItem, OutboundNext, OutboundTarget, RetryPolicy,
};
use aliquot_hl7::{
    Document, MllpDecoder, MllpEvent, Msa, OwnedMessage, OwnedSegment, encode_frame,
};
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The sender's timing and identity.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// How often an idle queue looks for new rows (and the destination list is refreshed).
    pub poll: Duration,
    pub connect_timeout: Duration,
    pub ack_timeout: Duration,
    pub backoff_start: Duration,
    pub backoff_max: Duration,
    /// Refusals after which a row is `failed`.
    pub max_refusals: i64,
    /// MSH-3.
    pub sending_application: String,
    /// MSH-4.
    pub sending_facility: String,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            poll: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(30),
            backoff_start: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            max_refusals: 10,
            sending_application: "ALIQUOT".into(),
            sending_facility: "LAB".into(),
        }
    }
}

impl OutboxConfig {
    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            backoff_start: self.backoff_start,
            backoff_max: self.backoff_max,
            max_refusals: self.max_refusals,
            lease: self.connect_timeout + self.ack_timeout + Duration::from_secs(5),
        }
    }
}

/// A destination's task, aborted when dropped: the sender's future owns its tasks, so a
/// sender dropped (a stopped server, a test restarting it) leaves nothing running.
struct DestinationTask {
    target: OutboundTarget,
    handle: Option<JoinHandle<()>>,
}

impl Drop for DestinationTask {
    fn drop(&mut self) {
        if let Some(h) = &self.handle {
            h.abort();
        }
    }
}

/// Runs the sender until `shutdown` completes. A message being sent when it does is allowed
/// to finish (its acknowledgement recorded) for at most the connect and acknowledgement
/// timeouts.
pub async fn run_outbox(app: App, config: OutboxConfig, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: HashMap<i64, DestinationTask> = HashMap::new();
    tokio::pin!(shutdown);
    loop {
        match app.outbox_targets().await {
            Ok(targets) => {
                // Retired or moved destinations stop; new ones start.
                tasks.retain(|_, t| {
                    targets.contains(&t.target)
                        && t.handle.as_ref().is_some_and(|h| !h.is_finished())
                });
                for t in targets {
                    if let std::collections::hash_map::Entry::Vacant(slot) = tasks.entry(t.id) {
                        let handle = tokio::spawn(drain(
                            app.clone(),
                            t.clone(),
                            config.clone(),
                            stop_rx.clone(),
                        ));
                        slot.insert(DestinationTask {
                            target: t,
                            handle: Some(handle),
                        });
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "outbox: destinations not read"),
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(config.poll.max(Duration::from_millis(10)) * 4) => {}
        }
    }
    let _ = stop_tx.send(true);
    let grace = config.ack_timeout + config.connect_timeout;
    for (_, mut t) in tasks {
        if let Some(handle) = t.handle.take() {
            let abort = handle.abort_handle();
            if tokio::time::timeout(grace, handle).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// One destination's connection.
struct Link {
    stream: TcpStream,
    decoder: MllpDecoder,
    buf: Vec<u8>,
}

impl Link {
    async fn open(t: &OutboundTarget, timeout: Duration) -> io::Result<Link> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect((t.host.as_str(), t.port)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(Link {
            stream,
            decoder: MllpDecoder::new(1 << 20),
            buf: vec![0; 16 * 1024],
        })
    }

    async fn exchange(&mut self, message: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
        let mut framed = Vec::with_capacity(message.len() + 3);
        encode_frame(message, &mut framed);
        self.stream.write_all(&framed).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(e) = self.decoder.next_event() {
                if let MllpEvent::Frame(f) = e {
                    return Ok(f);
                }
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf))
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "no acknowledgement in time")
                })??;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the destination closed the connection",
                ));
            }
            self.decoder.push(&self.buf[..n]);
        }
    }
}

/// Sleeps `d`, or less when the worker stops; true when it stops.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

async fn drain(
    app: App,
    target: OutboundTarget,
    config: OutboxConfig,
    mut stop: watch::Receiver<bool>,
) {
    let policy = config.policy();
    let mut link: Option<Link> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let next = match app.outbox_next(target.id, &policy).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(destination = %target.code, error = %e, "outbox: queue not read");
                if pause(config.poll, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let item = match next {
            OutboundNext::Send(item) => item,
            OutboundNext::Idle | OutboundNext::Blocked => {
                if pause(config.poll, &mut stop).await {
                    return;
                }
                continue;
            }
            OutboundNext::Wait(until) => {
                let wait = Duration::try_from(until.duration_since(app.now()))
                    .unwrap_or(Duration::ZERO)
                    .min(config.poll);
                if pause(wait.max(Duration::from_millis(5)), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let message = encode_oru(&item, &target, &config);
        let outcome = send(&mut link, &target, &config, &message).await;
        let recorded = match outcome {
            Outcome::Accepted(ack) => match check_ack(&ack, &item.control_id) {
                AckCheck::Accepted => app.outbox_sent(&item, &message, &ack).await.map(|_| ()),
                AckCheck::Refused(reason) => app
                    .outbox_not_sent(&item, &message, Some(&ack), &reason, true, &policy)
                    .await
                    .map(|status| {
                        tracing::warn!(destination = %target.code, outbox = item.id, status, "outbox: message refused");
                    }),
                AckCheck::Mismatch(reason) => {
                    // Out of step: never take another message's answer. Start afresh.
                    link = None;
                    app.outbox_not_sent(&item, &message, Some(&ack), &reason, false, &policy)
                        .await
                        .map(|_| ())
                }
            },
            Outcome::Transport(reason) => {
                link = None;
                tracing::info!(destination = %target.code, outbox = item.id, "outbox: not delivered, will retry");
                app.outbox_not_sent(&item, &message, None, &reason, false, &policy)
                    .await
                    .map(|_| ())
            }
        };
        if let Err(e) = recorded {
            // The claim's lease runs out and the row is sent again: never lost.
            tracing::warn!(destination = %target.code, error = %e, "outbox: attempt not recorded");
            if pause(config.poll, &mut stop).await {
                return;
            }
        }
    }
}

enum Outcome {
    Accepted(Vec<u8>),
    Transport(String),
}

async fn send(
    link: &mut Option<Link>,
    target: &OutboundTarget,
    config: &OutboxConfig,
    message: &[u8],
) -> Outcome {
    if link.is_none() {
        match Link::open(target, config.connect_timeout).await {
            Ok(l) => *link = Some(l),
            Err(e) => return Outcome::Transport(format!("connection failed: {e}")),
        }
    }
    let Some(l) = link.as_mut() else {
        return Outcome::Transport("no connection".into());
    };
    match l.exchange(message, config.ack_timeout).await {
        Ok(ack) => Outcome::Accepted(ack),
        Err(e) => Outcome::Transport(format!("no acknowledgement: {e}")),
    }
}

/// How an acknowledgement answers the message with control id `control_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckCheck {
    /// MSA-2 names it and MSA-1 is AA or CA.
    Accepted,
    /// MSA-2 names it and MSA-1 is AE, AR, CE or CR: the reason, with the receiver's text.
    Refused(String),
    /// Not an acknowledgement of this message.
    Mismatch(String),
}

/// Checks an acknowledgement against the control id of the message it should answer.
pub fn check_ack(ack: &[u8], control_id: &str) -> AckCheck {
    let doc = Document::parse(ack);
    let Some(msg) = doc.messages().next() else {
        return AckCheck::Mismatch("the answer is not an HL7 message".into());
    };
    let Some(msa) = msg.segments_named("MSA").next().and_then(Msa::from_segment) else {
        return AckCheck::Mismatch("the answer has no MSA segment".into());
    };
    let code = msa
        .ack_code()
        .map(|v| v.value().trim().to_owned())
        .unwrap_or_default();
    let answered = msa
        .control_id()
        .map(|v| v.value().trim().to_owned())
        .unwrap_or_default();
    if answered != control_id {
        return AckCheck::Mismatch(format!(
            "the acknowledgement answers another message (MSA-2 {answered:?}, {code})"
        ));
    }
    match code.as_str() {
        "AA" | "CA" => AckCheck::Accepted,
        "AE" | "AR" | "CE" | "CR" => {
            let mut text = msa
                .text()
                .map(|v| v.value().trim().to_owned())
                .unwrap_or_default();
            if let Some(err) = msg.segments_named("ERR").next() {
                let detail = err
                    .field(8)
                    .map(|v| v.value().trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .or_else(|| err.field(3).map(|v| v.value().trim().to_owned()))
                    .unwrap_or_default();
                if !detail.is_empty() {
                    if !text.is_empty() {
                        text.push_str("; ");
                    }
                    text.push_str(&detail);
                }
            }
            let text: String = text.chars().take(300).collect();
            if text.is_empty() {
                AckCheck::Refused(format!("refused: {code}"))
            } else {
                AckCheck::Refused(format!("refused: {code} {text}"))
            }
        }
        other => AckCheck::Mismatch(format!("unknown acknowledgement code {other:?}")),
    }
}

fn hl7_time(t: Timestamp) -> String {
    t.strftime("%Y%m%d%H%M%S+0000").to_string()
}

/// Encodes an outbox row as an HL7 v2.5.1 ORU^R01: MSH, PID, then per result ORC (ORC-12 the
/// ordering provider), OBR (OBR-3 the result's tube, OBR-16 the ordering provider as an XCN
/// with its NPI, OBR-25 F or C), OBX (value, units, reference range, flags, OBX-11 F or C, performing lab in
/// OBX-23) and NTEs (the critical-call note, the comment). MSH-7 is the row's creation time,
/// MSH-10 its control id: a resend is byte for byte the same message.
pub fn encode_oru(item: &OutboundItem, target: &OutboundTarget, config: &OutboxConfig) -> Vec<u8> {
    encode_document(
        &item.document,
        &item.control_id,
        item.created_at,
        &target.code,
        config,
    )
}

/// See [`encode_oru`].
pub fn encode_document(
    d: &OutboundDocument,
    control_id: &str,
    created_at: Timestamp,
    receiver: &str,
    config: &OutboxConfig,
) -> Vec<u8> {
    let mut m = OwnedMessage::new();
    let mut msh = OwnedSegment::new("MSH");
    msh.set(1, "|")
        .set(2, "^~\\&")
        .set(3, &config.sending_application)
        .set(4, &config.sending_facility)
        .set(5, receiver)
        .set(6, receiver)
        .set(7, &hl7_time(created_at))
        .set_components(9, &["ORU", "R01", "ORU_R01"])
        .set(10, control_id)
        .set(11, "P")
        .set(12, "2.5.1")
        .set(18, "UNICODE UTF-8");
    m.segments.push(msh);
    let p = &d.patient;
    let mut pid = OwnedSegment::new("PID");
    pid.set(1, "1")
        .set_components(3, &[&p.mrn, "", "", &config.sending_facility, "MR"])
        .set_components(
            5,
            &[
                &p.family_name,
                &p.given_name,
                p.middle_name.as_deref().unwrap_or(""),
            ],
        )
        .set(7, &p.birth_date.replace('-', ""))
        .set(8, &p.sex);
    m.segments.push(pid);
    let o = &d.order;
    let placer = o.placer_order_number.as_deref().unwrap_or("");
    let filler = o.order_id.to_string();
    // XCN: NPI, family, given, …, assigning authority (9) and identifier type (13) `NPI`.
    let provider: Option<Vec<&str>> = o.ordering_provider.as_ref().map(|p| {
        vec![
            p.npi.as_str(),
            p.family_name.as_str(),
            p.given_name.as_str(),
            "",
            "",
            "",
            "",
            "",
            "NPI",
            "",
            "",
            "",
            "NPI",
        ]
    });
    for (i, r) in d.results.iter().enumerate() {
        let status = if r.status == "corrected" { "C" } else { "F" };
        let mut orc = OwnedSegment::new("ORC");
        orc.set(1, "RE").set(2, placer).set(3, &filler).set(5, "CM");
        if let Some(p) = &provider {
            orc.set_components(12, p);
        }
        m.segments.push(orc);
        let (accession, collected_at) = match &r.specimen {
            Some(s) => (s.accession.as_str(), s.collected_at),
            None => (o.accession.as_str(), o.collected_at),
        };
        let service: Vec<&str> = match r.loinc.as_deref() {
            Some(l) => vec![l, &r.name, "LN", &r.test_code, &r.name, "L"],
            None => vec![&r.test_code, &r.name, "L"],
        };
        let released = r.released_at.map(hl7_time).unwrap_or_default();
        let collected = collected_at.map(hl7_time).unwrap_or_default();
        let mut obr = OwnedSegment::new("OBR");
        obr.set(1, &(i + 1).to_string())
            .set(2, placer)
            .set(3, accession)
            .set_components(4, &service)
            .set(7, &collected);
        if let Some(p) = &provider {
            obr.set_components(16, p);
        }
        obr.set(22, &released).set(25, status);
        m.segments.push(obr);
        let (value_type, value): (&str, Vec<&str>) = match r.kind.as_str() {
            "numeric" => {
                let v = r.value.trim();
                if let Some(rest) = v.strip_prefix("<=").or_else(|| v.strip_prefix(">=")) {
                    ("SN", vec![&v[..2], rest])
                } else if let Some(rest) = v.strip_prefix('<').or_else(|| v.strip_prefix('>')) {
                    ("SN", vec![&v[..1], rest])
                } else {
                    ("NM", vec![v])
                }
            }
            // A coded answer is a CWE: the answer as the catalogue spells it is its local
            // code and its text.
            "coded" => ("CWE", vec![r.value.as_str(), r.value.as_str(), "L"]),
            _ => ("ST", vec![r.value.as_str()]),
        };
        let mut obx = OwnedSegment::new("OBX");
        obx.set(1, "1")
            .set(2, value_type)
            .set_components(3, &service)
            .set_components(5, &value)
            .set(7, r.reference_interval.as_deref().unwrap_or(""))
            .set(11, status)
            .set(14, &collected)
            .set(19, &released)
            .set(23, &r.performing_lab);
        if let Some(u) = r.units.as_deref() {
            obx.set_components(6, &[u, u, "UCUM"]);
        }
        if !r.flags.is_empty() {
            obx.set_field(8, r.flags.iter().map(|f| vec![vec![f.clone()]]).collect());
        }
        m.segments.push(obx);
        let mut n = 0;
        for note in [r.critical_note.as_deref(), r.comment.as_deref()]
            .into_iter()
            .flatten()
        {
            n += 1;
            let mut nte = OwnedSegment::new("NTE");
            nte.set(1, &n.to_string()).set(2, "L").set(3, note);
            m.segments.push(nte);
        }
    }
    m.encode()
}

#[cfg(test)]
mod tests {
    use aliquot_app::connections::{
        OutboundOrder, OutboundPatient, OutboundProvider, OutboundResult, OutboundSpecimen,
    };

    use super::*;

    fn ack(code: &str, control: &str) -> Vec<u8> {
        format!("MSH|^~\\&|EMR|H|ALIQUOT|LAB|20260101||ACK|X1|P|2.5.1\rMSA|{code}|{control}|bad\rERR|||204|E||||Unknown patient\r")
            .into_bytes()
    }

    #[test]
    fn only_the_ack_naming_the_control_id_accepts() {
        assert_eq!(check_ack(&ack("AA", "AQ1"), "AQ1"), AckCheck::Accepted);
        assert_eq!(check_ack(&ack("CA", "AQ1"), "AQ1"), AckCheck::Accepted);
        assert!(matches!(
            check_ack(&ack("AA", "AQ2"), "AQ1"),
            AckCheck::Mismatch(_)
        ));
        assert!(matches!(
            check_ack(&ack("AA", ""), "AQ1"),
            AckCheck::Mismatch(_)
        ));
        assert!(matches!(
            check_ack(b"garbage", "AQ1"),
            AckCheck::Mismatch(_)
        ));
        assert!(matches!(
            check_ack(&ack("ZZ", "AQ1"), "AQ1"),
            AckCheck::Mismatch(_)
        ));
        for code in ["AE", "AR", "CE", "CR"] {
            let AckCheck::Refused(reason) = check_ack(&ack(code, "AQ1"), "AQ1") else {
                panic!("{code} is a refusal");
            };
            assert!(
                reason.starts_with(&format!("refused: {code} bad")),
                "{reason}"
            );
            assert!(reason.contains("Unknown patient"), "{reason}");
        }
    }

    #[test]
    fn the_document_is_encoded_with_escapes_and_its_control_id() {
        let d = OutboundDocument {
            patient: OutboundPatient {
                mrn: "M|1".into(),
                family_name: "O^Brien".into(),
                given_name: "Zoë".into(),
                middle_name: None,
                birth_date: "1961-04-09".into(),
                sex: "F".into(),
            },
            order: OutboundOrder {
                order_id: 7,
                placer_order_number: Some("P-1".into()),
                accession: "A26000001X".into(),
                specimen_type: "serum".into(),
                collected_at: None,
                priority: "routine".into(),
                ordering_provider: Some(OutboundProvider {
                    npi: "1234567893".into(),
                    family_name: "Okafor".into(),
                    given_name: "Ada".into(),
                }),
            },
            results: vec![OutboundResult {
                result_id: 1,
                version: 2,
                test_code: "K".into(),
                loinc: Some("2823-3".into()),
                name: "Potassium".into(),
                value: "<0.5".into(),
                kind: "numeric".into(),
                units: Some("mmol/L".into()),
                reference_interval: Some("3.5–5.1".into()),
                flags: vec!["LL".into()],
                status: "corrected".into(),
                released_at: None,
                performing_lab: "Main lab".into(),
                critical_note: Some("Critical value".into()),
                comment: None,
                specimen: None,
            }],
        };
        let at = Timestamp::from_second(1_767_225_600).unwrap();
        let m = encode_document(&d, "AQ42", at, "EMR", &OutboxConfig::default());
        let text = String::from_utf8(m.clone()).unwrap();
        assert!(
            text.starts_with(
                "MSH|^~\\&|ALIQUOT|LAB|EMR|EMR|20260101000000+0000||ORU^R01^ORU_R01|AQ42|P|2.5.1|"
            ),
            "{text}"
        );
        assert!(
            text.contains("\rPID|1||M\\F\\1^^^LAB^MR||O\\S\\Brien^Zoë^||19610409|F\r"),
            "{text}"
        );
        assert!(
            text.contains(
                "|SN|2823-3^Potassium^LN^K^Potassium^L||<^0.5|mmol/L^mmol/L^UCUM|3.5–5.1|LL|||C|"
            ),
            "{text}"
        );
        assert!(text.contains("\rNTE|1|L|Critical value\r"), "{text}");
        // The ordering provider in ORC-12 and OBR-16 (XCN with the NPI), byte for byte.
        assert!(
            text.contains(
                "\rORC|RE|P-1|7||CM|||||||1234567893^Okafor^Ada^^^^^^NPI^^^^NPI\r\
                 OBR|1|P-1|A26000001X|2823-3^Potassium^LN^K^Potassium^L||||||||||||\
                 1234567893^Okafor^Ada^^^^^^NPI^^^^NPI|||||||||C\r"
            ),
            "{text}"
        );
        // One message per order: a second result of another tube names its own tube in
        // OBR-3, under its own ORC/OBR, after the first.
        let mut two = d.clone();
        let mut second = d.results[0].clone();
        second.result_id = 2;
        second.test_code = "NA".into();
        second.loinc = None;
        second.name = "Sodium".into();
        second.specimen = Some(OutboundSpecimen {
            accession: "A26000002Y".into(),
            specimen_type: "plasma".into(),
            collected_at: Some(at),
        });
        two.results.push(second);
        let text2 = String::from_utf8(encode_document(
            &two,
            "AQ45",
            at,
            "EMR",
            &OutboxConfig::default(),
        ))
        .unwrap();
        assert_eq!(text2.matches("\rORC|").count(), 2, "{text2}");
        assert!(
            text2.contains("\rOBR|2|P-1|A26000002Y|NA^Sodium^L|||20260101000000+0000|"),
            "{text2}"
        );
        // A document written before the provider and tubes were kept still reads and sends.
        let old_json = serde_json::to_value(&d).unwrap();
        let mut old_json = old_json;
        old_json["order"]
            .as_object_mut()
            .unwrap()
            .remove("ordering_provider");
        old_json["results"][0]
            .as_object_mut()
            .unwrap()
            .remove("specimen");
        let old: OutboundDocument = serde_json::from_value(old_json).unwrap();
        let text3 = String::from_utf8(encode_document(
            &old,
            "AQ46",
            at,
            "EMR",
            &OutboxConfig::default(),
        ))
        .unwrap();
        assert!(text3.contains("\rORC|RE|P-1|7||CM\r"), "{text3}");
        assert!(text3.contains("\rOBR|1|P-1|A26000001X|"), "{text3}");
        // A coded answer goes as a CWE, a text one as ST.
        let mut coded = d.clone();
        coded.results[0].kind = "coded".into();
        coded.results[0].value = "2+".into();
        coded.results[0].units = None;
        let text = String::from_utf8(encode_document(
            &coded,
            "AQ43",
            at,
            "EMR",
            &OutboxConfig::default(),
        ))
        .unwrap();
        assert!(
            text.contains("|CWE|2823-3^Potassium^LN^K^Potassium^L||2+^2+^L||"),
            "{text}"
        );
        coded.results[0].kind = "text".into();
        let text = String::from_utf8(encode_document(
            &coded,
            "AQ44",
            at,
            "EMR",
            &OutboxConfig::default(),
        ))
        .unwrap();
        assert!(
            text.contains("|ST|2823-3^Potassium^LN^K^Potassium^L||2+||"),
            "{text}"
        );
        // Deterministic: a resend is the same bytes.
        assert_eq!(
            m,
            encode_document(&d, "AQ42", at, "EMR", &OutboxConfig::default())
        );
    }
}
