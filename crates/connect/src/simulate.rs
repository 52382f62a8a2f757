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

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
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
