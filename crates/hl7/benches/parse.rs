//! `cargo bench -p aliquot-hl7 --bench parse`
//!
//! Corpus: 1,000 distinct, deterministically generated ORU^R01 v2.5.1
//! messages (~3.5 KB, 15 OBX, escapes in NTE/OBX), a representative subset
//! of the 100,000-message corpus of the issue (same generator, same shape;
//! throughput is reported per message).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn num(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

const TESTS: [(&str, &str, &str, &str); 15] = [
    (
        "718-7",
        "Hemoglobin [Mass/volume] in Blood",
        "g/dL",
        "13.5-17.5",
    ),
    (
        "789-8",
        "Erythrocytes [#/volume] in Blood",
        "10*6/uL",
        "4.5-5.9",
    ),
    (
        "6690-2",
        "Leukocytes [#/volume] in Blood",
        "10*3/uL",
        "4.5-11.0",
    ),
    (
        "777-3",
        "Platelets [#/volume] in Blood",
        "10*3/uL",
        "150-400",
    ),
    (
        "4544-3",
        "Hematocrit [Volume Fraction] of Blood",
        "%",
        "41-53",
    ),
    ("787-2", "MCV [Entitic volume]", "fL", "80-100"),
    ("785-6", "MCH [Entitic mass]", "pg", "26-34"),
    ("786-4", "MCHC [Mass/volume]", "g/dL", "31-37"),
    (
        "2345-7",
        "Glucose [Mass/volume] in Serum or Plasma",
        "mg/dL",
        "70-99",
    ),
    (
        "2160-0",
        "Creatinine [Mass/volume] in Serum or Plasma",
        "mg/dL",
        "0.7-1.3",
    ),
    (
        "2951-2",
        "Sodium [Moles/volume] in Serum or Plasma",
        "mmol/L",
        "136-145",
    ),
    (
        "2823-3",
        "Potassium [Moles/volume] in Serum or Plasma",
        "mmol/L",
        "3.5-5.1",
    ),
    (
        "2075-0",
        "Chloride [Moles/volume] in Serum or Plasma",
        "mmol/L",
        "98-107",
    ),
    (
        "1742-6",
        "ALT [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        "7-56",
    ),
    (
        "1920-8",
        "AST [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        "10-40",
    ),
];

pub fn oru(i: u64) -> String {
    let mut r = Lcg(i.wrapping_mul(0x9E3779B97F4A7C15) ^ 0xA11C);
    let mut m = String::with_capacity(4096);
    m.push_str(&format!(
        "MSH|^~\\&|ALIQUOT LIS^2.16.840.1.113883.3.9999.1^ISO|CENTRAL LAB^2.16.840.1.113883.3.9999.2^ISO|EHR APP^2.16.840.1.113883.3.9999.3^ISO|GENERAL HOSPITAL^2.16.840.1.113883.3.9999.4^ISO|20261121{:06}+0100||ORU^R01^ORU_R01|MSG{:08}|P|2.5.1|||NE|NE|||||LRI_Common_Component^^2.16.840.1.113883.9.16^ISO\r",
        r.num(0, 235959),
        i
    ));
    m.push_str(&format!(
        "PID|1||PAT{:07}^^^CENTRAL LAB&2.16.840.1.113883.3.9999.2&ISO^MR~{:09}^^^SSA&2.16.840.1.113883.4.1&ISO^SS||O\\S\\Brien-Smith^Mary^Anne^^Dr.^^L||19{:02}0{}1{}|F||2106-3^White^HL70005|{} Main Street\\T\\Co^Apt 3^Springfield^IL^62701^USA^H||^PRN^PH^^1^217^555{:04}|||||ACC{:08}\r",
        r.num(0, 9_999_999), r.num(100_000_000, 999_999_999), r.num(30, 99), r.num(1, 9), r.num(0, 9), r.num(1, 999), r.num(0, 9999), r.num(0, 99_999_999)
    ));
    m.push_str("PV1|1|O|LAB^ROOM 1^BED 2^GENERAL HOSPITAL||||1234567890^Welby^Marcus^J^^Dr.^MD^^NPI&2.16.840.1.113883.4.6&ISO\r");
    m.push_str(&format!("ORC|RE|PLC{0:07}^EHR APP^2.16.840.1.113883.3.9999.3^ISO|FIL{0:07}^CENTRAL LAB^2.16.840.1.113883.3.9999.2^ISO|||CM||||||1234567890^Welby^Marcus^J^^Dr.^MD\r", r.num(0, 9_999_999)));
    m.push_str(&format!(
        "OBR|1|PLC{0:07}^EHR APP|FIL{0:07}^CENTRAL LAB|58410-2^CBC panel - Blood by Automated count^LN^CBC^CBC W AUTO DIFF^L|||20261121{1:06}|||||||||1234567890^Welby^Marcus^J^^Dr.^MD||||||20261121{1:06}|||F\r",
        r.num(0, 9_999_999), r.num(0, 235959)
    ));
    for (k, (code, name, unit, range)) in TESTS.iter().enumerate() {
        let v = r.num(10, 9999) as f64 / 10.0;
        let flag = ["N", "H", "L", "N", "N"][r.num(0, 4) as usize];
        m.push_str(&format!(
            "OBX|{}|NM|{}^{}^LN||{:.1}|{}^{}^UCUM|{}|{}|||F|||20261121{:06}||||ANALYZER-{:02}^SYSMEX\\T\\XN\r",
            k + 1, code, name, v, unit, unit, range, flag, r.num(0, 235959), r.num(1, 12)
        ));
        if k % 5 == 4 {
            m.push_str("NTE|1|L|Specimen slightly hemolyzed\\.br\\Results verified by \\H\\technologist\\N\\; ratio 1\\S\\2 \\F\\ see comment\r");
        }
    }
    m.push_str(&format!("SPM|1|SPC{0:07}&EHR APP&2.16.840.1.113883.3.9999.3&ISO^SPC{0:07}&CENTRAL LAB&2.16.840.1.113883.3.9999.2&ISO||119297000^Blood specimen^SCT^^^^^^Blood|||||||P^Patient^HL70369|||||20261121080000^20261121080500|20261121090000\r", r.num(0, 9_999_999)));
    m
}

fn bench(c: &mut Criterion) {
    let corpus: Vec<String> = (0..1000).map(oru).collect();
    let total: usize = corpus.iter().map(|m| m.len()).sum();
    let avg = total / corpus.len();
    {
        let doc = aliquot_hl7::Document::parse(corpus[0].as_bytes());
        let obx = doc
            .messages()
            .next()
            .map(|m| m.segments_named("OBX").count())
            .unwrap_or(0);
        let tree: usize = corpus
            .iter()
            .map(|m| aliquot_hl7::Document::parse(m.as_bytes()).tree_len_bytes())
            .sum();
        let cap: usize = corpus
            .iter()
            .map(|m| aliquot_hl7::Document::parse(m.as_bytes()).tree_heap_bytes())
            .sum();
        eprintln!(
            "corpus: {} messages, avg {avg} bytes, {obx} OBX each; tree memory: {:.2}x message size (len), {:.2}x (allocated capacity)",
            corpus.len(),
            tree as f64 / total as f64,
            cap as f64 / total as f64
        );
    }
    let mut g = c.benchmark_group("hl7_parse_oru_r01");
    g.throughput(Throughput::Elements(corpus.len() as u64));
    g.bench_function("aliquot_full_tree", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for m in &corpus {
                let doc = aliquot_hl7::Document::parse(black_box(m.as_bytes()));
                n += doc.node_count();
            }
            n
        })
    });
    g.bench_function("aliquot_parse_and_read_all_obx5", |b| {
        let path = aliquot_hl7::FieldPath::parse("OBX-5").unwrap_or_else(|e| panic!("{e}"));
        b.iter(|| {
            let mut n = 0usize;
            for m in &corpus {
                let doc = aliquot_hl7::Document::parse(black_box(m.as_bytes()));
                for v in doc.query(&path) {
                    n += v.value().len();
                }
            }
            n
        })
    });
    g.bench_function("hl7_parser_0_3", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for m in &corpus {
                if let Ok(msg) = hl7_parser::Message::parse(black_box(m.as_str())) {
                    n += msg.segments.len();
                }
            }
            n
        })
    });
    g.finish();
    let mut g = c.benchmark_group("hl7_bytes");
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("aliquot_full_tree", |b| {
        b.iter(|| {
            corpus
                .iter()
                .map(|m| aliquot_hl7::Document::parse(black_box(m.as_bytes())).node_count())
                .sum::<usize>()
        })
    });
    let mut framed = Vec::new();
    for m in &corpus {
        aliquot_hl7::encode_frame(m.as_bytes(), &mut framed);
    }
    g.bench_function("mllp_decode", |b| {
        b.iter(|| {
            let mut d = aliquot_hl7::MllpDecoder::default();
            let mut n = 0;
            for chunk in framed.chunks(4096) {
                d.push(black_box(chunk));
                while let Some(f) = d.next_frame() {
                    n += f.len();
                }
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
