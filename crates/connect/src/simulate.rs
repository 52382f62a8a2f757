//! An analyzer that talks like a real one: it "runs" a rack of specimens and sends each
//! specimen's results as an ORU^R01 over MLLP, waiting for each acknowledgement. Used by the
//! tests, the demo, the benchmark (`aliquot bench mllp-ingest`) and anyone evaluating Aliquot
//! (`aliquot simulate analyzer`).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use aliquot_hl7::{MllpDecoder, MllpEvent, encode_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One assay of the simulated chemistry analyzer: its own code, the unit it reports in, a
/// typical range, the decimals it reports, and a rare abnormal value.
#[derive(Debug, Clone, Copy)]
pub struct Assay {
    pub code: &'static str,
    /// The catalogue test it measures (what the lab maps the code to).
    pub test: &'static str,
    pub units: &'static str,
    pub low: i64,
    pub high: i64,
    /// Values are `low..high` in units of 10^-decimals.
    pub decimals: u32,
    /// Once in a while (1 in 50) the analyzer reports this value with flag `H`.
    pub abnormal: i64,
}

/// The simulated chemistry analyzer's menu (codes in the style of a vendor's assay names).
pub const CHEMISTRY: &[Assay] = &[
    Assay {
        code: "NA",
        test: "NA",
        units: "mmol/L",
        low: 136,
        high: 145,
        decimals: 0,
        abnormal: 152,
    },
    Assay {
        code: "K",
        test: "K",
        units: "mmol/L",
        low: 35,
        high: 51,
        decimals: 1,
        abnormal: 58,
    },
    Assay {
        code: "CL",
        test: "CL",
        units: "mmol/L",
        low: 98,
        high: 107,
        decimals: 0,
        abnormal: 112,
    },
    Assay {
        code: "CO2-L",
        test: "CO2",
        units: "mmol/L",
        low: 22,
        high: 29,
        decimals: 0,
        abnormal: 33,
    },
    Assay {
        code: "UREAL",
        test: "BUN",
        units: "mg/dL",
        low: 7,
        high: 20,
        decimals: 0,
        abnormal: 38,
    },
    Assay {
        code: "CREJ2",
        test: "CREA",
        units: "mg/dL",
        low: 60,
        high: 120,
        decimals: 2,
        abnormal: 210,
    },
    Assay {
        code: "GLUC3",
        test: "GLU",
        units: "mg/dL",
        low: 70,
        high: 105,
        decimals: 0,
        abnormal: 182,
    },
    Assay {
        code: "CA2",
        test: "CA",
        units: "mg/dL",
        low: 86,
        high: 102,
        decimals: 1,
        abnormal: 109,
    },
];

/// The analyzer's assay for a catalogue test.
pub fn assay_for(test: &str) -> Option<&'static Assay> {
    CHEMISTRY.iter().find(|a| a.test.eq_ignore_ascii_case(test))
}

/// A small deterministic generator (xorshift64*), so a run can be repeated.
#[derive(Debug, Clone)]
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(seed.max(1))
    }

    pub fn roll(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.roll() % n.max(1)
    }
}

fn decimal(v: i64, decimals: u32) -> String {
    if decimals == 0 {
        return v.to_string();
    }
    let p = 10i64.pow(decimals);
    format!("{}.{:0width$}", v / p, v % p, width = decimals as usize)
}

/// One result the analyzer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub code: String,
    pub value: String,
    pub units: String,
    pub flags: Vec<String>,
}

/// A realistic reading of `assay` (now and then abnormal and flagged `H`).
pub fn measure(assay: &Assay, dice: &mut Dice) -> Reading {
    let abnormal = dice.below(50) == 0;
    let v = if abnormal {
        assay.abnormal
    } else {
        assay.low + dice.below((assay.high - assay.low + 1) as u64) as i64
    };
    Reading {
        code: assay.code.to_owned(),
        value: decimal(v, assay.decimals),
        units: assay.units.to_owned(),
        flags: if abnormal {
            vec!["H".into()]
        } else {
            Vec::new()
        },
    }
}

/// An ORU^R01 (v2.5.1) from `sender` for one specimen, with one OBX per reading.
pub fn oru(sender: &str, control_id: &str, accession: &str, readings: &[Reading]) -> Vec<u8> {
    let now = jiff::Timestamp::now().strftime("%Y%m%d%H%M%S").to_string();
    let mut m = format!(
        "MSH|^~\\&|{sender}|LAB|ALIQUOT|LAB|{now}||ORU^R01^ORU_R01|{control_id}|P|2.5.1\r\
         OBR|1||{accession}|CHEM^Chemistry|||{now}\r"
    );
    for (i, r) in readings.iter().enumerate() {
        m.push_str(&format!(
            "OBX|{}|NM|{}^{}||{}|{}||{}|||F|||{now}\r",
            i + 1,
            r.code,
            r.code,
            r.value,
            r.units,
            r.flags.join("~"),
        ));
    }
    m.into_bytes()
}

/// An MLLP client: sends a message and waits for its acknowledgement.
#[derive(Debug)]
pub struct MllpClient {
    stream: TcpStream,
    decoder: MllpDecoder,
    buf: Vec<u8>,
}

impl MllpClient {
    pub async fn connect(addr: SocketAddr) -> io::Result<MllpClient> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(MllpClient {
            stream,
            decoder: MllpDecoder::new(1 << 20),
            buf: vec![0; 16 * 1024],
        })
    }

    /// Sends `message` (unframed) and returns the next acknowledgement frame, or an error
    /// after `timeout` (the sender's ACK timeout) or when the connection closes.
    pub async fn send(&mut self, message: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
        let mut framed = Vec::with_capacity(message.len() + 3);
        encode_frame(message, &mut framed);
        self.stream.write_all(&framed).await?;
        self.next_frame(timeout).await
    }

    /// The next frame the listener sends (the second acknowledgement in enhanced mode).
    pub async fn next_frame(&mut self, timeout: Duration) -> io::Result<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(e) = self.decoder.next_event() {
                if let MllpEvent::Frame(f) = e {
                    return Ok(f);
                }
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no acknowledgement"))??;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the listener closed the connection",
                ));
            }
            self.decoder.push(&self.buf[..n]);
        }
    }
}

/// MSA-1 of an acknowledgement (`AA`, `AE`, …), or empty.
pub fn ack_code(ack: &[u8]) -> String {
    ack.split(|b| *b == b'\r')
        .find(|s| s.starts_with(b"MSA|"))
        .and_then(|s| s.split(|b| *b == b'|').nth(1))
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default()
}

/// An ASTM instrument over TCP (E1381 link, instrument role): asks the host which tests its
/// rack needs, then sends the results of each specimen, one message per specimen.
#[derive(Debug)]
pub struct AstmInstrument<S = TcpStream> {
    stream: S,
    link: aliquot_astm::Link,
    origin: tokio::time::Instant,
    buf: Vec<u8>,
    /// Messages the host sent (its query answers), in order.
    pub received: Vec<Vec<u8>>,
}

/// What the host asked the instrument to run: `(accession, patient id, instrument codes)`.
pub type Worklist = Vec<(String, String, Vec<String>)>;

impl AstmInstrument<TcpStream> {
    pub async fn connect(addr: SocketAddr) -> io::Result<AstmInstrument<TcpStream>> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(AstmInstrument::over(stream))
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> AstmInstrument<S> {
    /// The instrument over any byte stream (a serial line, see `crate::serial`).
    pub fn over(stream: S) -> AstmInstrument<S> {
        AstmInstrument {
            stream,
            link: aliquot_astm::Link::new(aliquot_astm::LinkConfig {
                auto_ack: true,
                ..aliquot_astm::LinkConfig::instrument()
            }),
            origin: tokio::time::Instant::now(),
            buf: vec![0; 16 * 1024],
            received: Vec::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs the link until `done` says so, or `timeout`.
    async fn drive(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(Option<&aliquot_astm::LinkEvent>, usize) -> Option<io::Result<()>>,
    ) -> io::Result<()> {
        use aliquot_astm::Output;
        let give_up = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(out) = self.link.poll() {
                match out {
                    Output::Write(b) => self.stream.write_all(&b).await?,
                    Output::Message(m) | Output::HeldMessage { message: m, .. } => {
                        self.received.push(m);
                        if let Some(r) = done(None, self.received.len()) {
                            return r;
                        }
                    }
                    Output::Event(e) => {
                        if let Some(r) = done(Some(&e), self.received.len()) {
                            return r;
                        }
                    }
                }
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time"));
            }
            let deadline = self
                .link
                .next_deadline()
                .map(|ms| self.origin + Duration::from_millis(ms))
                .map_or(give_up, |d| d.min(give_up));
            match tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf)).await {
                Ok(Ok(0)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the host closed the connection",
                    ));
                }
                Ok(Ok(n)) => {
                    let now = self.now();
                    let (buf, link) = (&self.buf, &mut self.link);
                    link.receive(&buf[..n], now);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    let now = self.now();
                    self.link.tick(now);
                }
            }
        }
    }

    /// Sends `message` (E1394 records) and waits until the host acknowledged its last frame.
    pub async fn send(&mut self, message: Vec<u8>, timeout: Duration) -> io::Result<()> {
        let now = self.now();
        let id = self
            .link
            .send(message, now)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:?}")))?;
        self.drive(timeout, |e, _| match e {
            Some(aliquot_astm::LinkEvent::SendComplete { id: done }) if *done == id => Some(Ok(())),
            Some(aliquot_astm::LinkEvent::SendFailed { id: failed, reason }) if *failed == id => {
                Some(Err(io::Error::other(reason.clone())))
            }
            _ => None,
        })
        .await
    }

    /// Asks the host which tests `accessions` need (a Q record per specimen) and waits for
    /// its answer.
    pub async fn host_query(
        &mut self,
        sender: &str,
        accessions: &[String],
        timeout: Duration,
    ) -> io::Result<Worklist> {
        let ts = jiff::Timestamp::now().strftime("%Y%m%d%H%M%S").to_string();
        let mut q = format!("H|\\^&|||{sender}^1.0|||||||P|LIS2-A2|{ts}\r");
        for (i, a) in accessions.iter().enumerate() {
            q.push_str(&format!("Q|{}|^{a}||ALL||||||||O\r", i + 1));
        }
        q.push_str("L|1|N\r");
        let before = self.received.len();
        self.send(q.into_bytes(), timeout).await?;
        if self.received.len() == before {
            self.drive(timeout, |_, n| (n > before).then_some(Ok(())))
                .await?;
        }
        let answer = self.received[before].clone();
        let records = aliquot_astm::parse_records(&answer);
        let mut out: Worklist = Vec::new();
        let mut patient = String::new();
        for r in &records.records {
            if let Some(p) = aliquot_astm::records::Patient::from_record(r) {
                patient = p.practice_id().component(1).trim().to_owned();
            } else if let Some(o) = aliquot_astm::records::Order::from_record(r) {
                out.push((o.specimen_id(), patient.clone(), o.tests()));
            }
        }
        Ok(out)
    }
}

/// An ASTM result message from `sender` for one specimen; `decimal_comma` writes values as a
/// European analyzer does (`4,2`).
pub fn astm_results(
    sender: &str,
    patient_id: &str,
    accession: &str,
    readings: &[Reading],
    decimal_comma: bool,
) -> Vec<u8> {
    let ts = jiff::Timestamp::now().strftime("%Y%m%d%H%M%S").to_string();
    let tests: Vec<String> = readings.iter().map(|r| format!("^^^{}", r.code)).collect();
    let mut m = format!(
        "H|\\^&|||{sender}^1.0|||||||P|LIS2-A2|{ts}\rP|1|{patient_id}\rO|1|{accession}||{}|R||||||||||||||||||||F\r",
        tests.join("\\")
    );
    for (i, r) in readings.iter().enumerate() {
        let value = if decimal_comma {
            r.value.replace('.', ",")
        } else {
            r.value.clone()
        };
        m.push_str(&format!(
            "R|{}|^^^{}|{value}|{}||{}||F||||{ts}\r",
            i + 1,
            r.code,
            r.units,
            r.flags.join("\\"),
        ));
    }
    m.push_str("L|1|N\r");
    m.into_bytes()
}

/// The analyzer's assay for one of its own codes.
pub fn assay_by_code(code: &str) -> Option<&'static Assay> {
    CHEMISTRY.iter().find(|a| a.code == code)
}
