//! Code 128 planning: validation, code-set selection and module patterns.
//!
//! Both renderers share one [`Plan`]: the accession split into runs of code
//! set B (any printable ASCII) and code set C (digit pairs). The SVG renderer
//! turns the plan into bars through `barcoders`; the ZPL renderer spells the
//! same plan with the printer's invocation codes, so the printer draws the
//! same symbol and the width computed here holds for both outputs.

use crate::LabelError;

/// Modules in one Code 128 symbol character.
const SYMBOL_MODULES: u32 = 11;
/// Modules of the stop pattern, including the final two-module bar.
const STOP_MODULES: u32 = 13;

/// A run of the accession encoded in a single code set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Code set B: one printable ASCII character per symbol.
    B(String),
    /// Code set C: an even number of digits, two per symbol.
    C(String),
}

/// The accession split into code-set runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    segments: Vec<Segment>,
}

/// Checks that `accession` can be carried by Code 128 code set B/C:
/// non-empty and printable ASCII only (`0x20..=0x7E`).
pub(crate) fn validate_accession(accession: &str) -> Result<(), LabelError> {
    if accession.is_empty() {
        return Err(LabelError::EmptyAccession);
    }
    match accession
        .char_indices()
        .find(|(_, c)| !(' '..='~').contains(c))
    {
        Some((position, character)) => Err(LabelError::InvalidAccessionChar {
            character,
            position,
        }),
        None => Ok(()),
    }
}

impl Plan {
    /// Validates the accession and chooses code sets.
    ///
    /// A run of digits is packed into code set C when that saves symbols,
    /// counting the code-switch symbols it costs: at least 4 digits at the
    /// start or end of the data, at least 6 in the middle. An odd run keeps
    /// its first digit in code set B.
    pub(crate) fn new(accession: &str) -> Result<Self, LabelError> {
        validate_accession(accession)?;
        let bytes = accession.as_bytes();
        let mut segments: Vec<Segment> = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let run_end = bytes[i..]
                .iter()
                .position(|b| !b.is_ascii_digit())
                .map_or(bytes.len(), |p| i + p);
            let run = run_end - i;
            if run == 0 {
                push_b(&mut segments, &accession[i..=i]);
                i += 1;
                continue;
            }
            let odd = run % 2;
            let paired = run - odd;
            // The odd digit stays in B, before the pairs, so a run at the very
            // start only gets the free start code if it is even.
            let at_start = i == 0 && odd == 0;
            let at_end = run_end == bytes.len();
            let switches = usize::from(!at_start) + usize::from(!at_end);
            if paired >= 2 && paired / 2 + switches < paired {
                if odd == 1 {
                    push_b(&mut segments, &accession[i..=i]);
                }
                segments.push(Segment::C(accession[i + odd..run_end].to_owned()));
            } else {
                push_b(&mut segments, &accession[i..run_end]);
            }
            i = run_end;
        }
        Ok(Self { segments })
    }

    /// Number of symbol characters: start, data, code switches and checksum
    /// (the stop pattern is counted separately).
    fn symbol_count(&self) -> u32 {
        let data: usize = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::B(text) => text.len(),
                Segment::C(digits) => digits.len() / 2,
            })
            .sum();
        let switches = self.segments.len().saturating_sub(1);
        u32::try_from(1 + data + switches + 1).unwrap_or(u32::MAX)
    }

    /// Width of the symbol in modules, without quiet zones.
    pub(crate) fn modules(&self) -> u32 {
        self.symbol_count()
            .saturating_mul(SYMBOL_MODULES)
            .saturating_add(STOP_MODULES)
    }

    /// The module pattern (`true` = bar), encoded by `barcoders`.
    pub(crate) fn bars(&self) -> Result<Vec<bool>, LabelError> {
        let mut spec = String::new();
        for segment in &self.segments {
            match segment {
                Segment::B(text) => {
                    spec.push('Ɓ');
                    spec.push_str(text);
                }
                Segment::C(digits) => {
                    spec.push('Ć');
                    spec.push_str(digits);
                }
            }
        }
        let symbol = barcoders::sym::code128::Code128::new(&spec).map_err(LabelError::Encoder)?;
        let bars: Vec<bool> = symbol.encode().into_iter().map(|m| m == 1).collect();
        debug_assert_eq!(bars.len(), self.modules() as usize);
        Ok(bars)
    }

    /// ZPL `^FD` data for `^BC` in mode N: start code (`>:` set B, `>;` set
    /// C) and code switches (`>5` to C, `>6` to B). The three characters
    /// ZPL cannot take literally in this field are written with the
    /// invocation codes of the Zebra manual (table "Code 128 Invocation
    /// Characters"): `>0` for `>` (value 30), `><` for `^` (value 62) and
    /// `>=` for `~` (value 94). The result is plain printable ASCII without
    /// `^` or `~`, so it needs no `^FH`.
    pub(crate) fn zpl_field_data(&self) -> String {
        let mut out = String::new();
        for (index, segment) in self.segments.iter().enumerate() {
            let first = index == 0;
            match segment {
                Segment::B(text) => {
                    out.push_str(if first { ">:" } else { ">6" });
                    for c in text.chars() {
                        match c {
                            '>' => out.push_str(">0"),
                            '^' => out.push_str("><"),
                            '~' => out.push_str(">="),
                            c => out.push(c),
                        }
                    }
                }
                Segment::C(digits) => {
                    out.push_str(if first { ">;" } else { ">5" });
                    out.push_str(digits);
                }
            }
        }
        out
    }
}

fn push_b(segments: &mut Vec<Segment>, text: &str) {
    if let Some(Segment::B(last)) = segments.last_mut() {
        last.push_str(text);
    } else {
        segments.push(Segment::B(text.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(accession: &str) -> Vec<Segment> {
        Plan::new(accession).unwrap().segments
    }

    #[test]
    fn all_digits_even_starts_in_c() {
        assert_eq!(segments("123456"), vec![Segment::C("123456".into())]);
    }

    #[test]
    fn short_digit_runs_stay_in_b() {
        assert_eq!(segments("A12B"), vec![Segment::B("A12B".into())]);
        assert_eq!(segments("AB12"), vec![Segment::B("AB12".into())]);
    }

    #[test]
    fn trailing_run_of_four_switches_to_c() {
        assert_eq!(
            segments("S-1234"),
            vec![Segment::B("S-".into()), Segment::C("1234".into())]
        );
    }

    #[test]
    fn middle_run_needs_six_digits() {
        assert_eq!(segments("A1234B"), vec![Segment::B("A1234B".into())]);
        assert_eq!(
            segments("A123456B"),
            vec![
                Segment::B("A".into()),
                Segment::C("123456".into()),
                Segment::B("B".into())
            ]
        );
    }

    #[test]
    fn odd_run_keeps_first_digit_in_b() {
        assert_eq!(
            segments("24-12345"),
            vec![Segment::B("24-1".into()), Segment::C("2345".into())]
        );
        assert_eq!(
            segments("12345"),
            vec![Segment::B("1".into()), Segment::C("2345".into())]
        );
    }

    #[test]
    fn module_count_matches_barcoders_output() {
        for accession in ["S-1234", "A123456B", "12345", "HELLO world~", "0"] {
            let plan = Plan::new(accession).unwrap();
            assert_eq!(plan.bars().unwrap().len(), plan.modules() as usize);
        }
    }

    #[test]
    fn zpl_field_data_spells_the_plan() {
        assert_eq!(Plan::new("A>1").unwrap().zpl_field_data(), ">:A>01");
        assert_eq!(Plan::new("^~_>").unwrap().zpl_field_data(), ">:><>=_>0");
        assert_eq!(
            Plan::new("A123456B").unwrap().zpl_field_data(),
            ">:A>5123456>6B"
        );
        assert_eq!(Plan::new("1234").unwrap().zpl_field_data(), ">;1234");
    }

    #[test]
    fn rejects_non_printable_and_non_ascii() {
        assert_eq!(
            Plan::new("AB\tC"),
            Err(LabelError::InvalidAccessionChar {
                character: '\t',
                position: 2
            })
        );
        assert!(matches!(
            Plan::new("AÜ"),
            Err(LabelError::InvalidAccessionChar {
                character: 'Ü', ..
            })
        ));
        assert_eq!(Plan::new(""), Err(LabelError::EmptyAccession));
    }
}
