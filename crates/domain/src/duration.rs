//! Durations as people write them in a lab: "2 min 52 s", "3 h 5 min", "2 d 4 h".
//!
//! Messages that a technician reads (stability exceeded, clotting time) show at most the two
//! largest units, rounded down to whole seconds; never milliseconds or microseconds.

use std::fmt;

use jiff::SignedDuration;

/// Displays a duration with at most its two largest units (d, h, min, s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Human(pub SignedDuration);

/// `Human` for a field, for error messages (`#[error("… {}", human(.elapsed))]`).
pub fn human(d: &SignedDuration) -> Human {
    Human(*d)
}

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        if secs < 0 {
            f.write_str("-")?;
        }
        let total = secs.unsigned_abs();
        let units = [
            (total / 86_400, "d"),
            (total % 86_400 / 3_600, "h"),
            (total % 3_600 / 60, "min"),
            (total % 60, "s"),
        ];
        let shown: Vec<String> = units
            .iter()
            .skip_while(|(n, _)| *n == 0)
            .take(2)
            .filter(|(n, _)| *n != 0)
            .map(|(n, u)| format!("{n} {u}"))
            .collect();
        if shown.is_empty() {
            f.write_str("0 s")
        } else {
            f.write_str(&shown.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row: seconds (and nanoseconds) → text.
    const CASES: &[(i64, i32, &str)] = &[
        (0, 0, "0 s"),
        (0, 999_999_999, "0 s"),
        (45, 0, "45 s"),
        (172, 181_602_000, "2 min 52 s"),
        (3_600, 0, "1 h"),
        (3_660, 0, "1 h 1 min"),
        (3_661, 0, "1 h 1 min"),
        (10_800, 0, "3 h"),
        (7_200 + 59, 0, "2 h"),
        (30 * 3_600, 0, "1 d 6 h"),
        (2 * 86_400 + 60, 0, "2 d"),
        (-90, 0, "-1 min 30 s"),
    ];

    #[test]
    fn durations_read_as_people_write_them() {
        for (secs, nanos, text) in CASES {
            assert_eq!(
                Human(SignedDuration::new(*secs, *nanos)).to_string(),
                *text,
                "{secs} s {nanos} ns"
            );
        }
    }
}
