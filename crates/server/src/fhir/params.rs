//! Search parameters as FHIR writes them: repeated parameters, `system|code` tokens with
//! comma-separated alternatives, references (`123` or `Patient/123`), dates with prefixes
//! (`ge2026-01-01`, `lt2026-02-01T08:00:00Z`), `_count`. An unknown parameter is refused by
//! name rather than ignored (a misspelt filter must not widen a search over patient data).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::{FhirError, FhirResult};

/// Results per page unless `_count` says otherwise.
pub const DEFAULT_COUNT: i64 = 20;

/// The parsed query string.
pub struct Params {
    pairs: Vec<(String, String)>,
}

/// Parameters every search accepts.
const COMMON: &[&str] = &["_count", "_format", "_cursor"];

impl Params {
    /// Parses the query and refuses parameters outside `allowed` (and the common ones).
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> FhirResult<Params> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|_| FhirError::invalid("query", "the query string is not valid"))?;
        for (k, v) in &pairs {
            // Modifiers such as `:exact` are not supported: refuse rather than ignore.
            if !allowed.contains(&k.as_str()) && !COMMON.contains(&k.as_str()) {
                return Err(FhirError::invalid(
                    k,
                    format!(
                        "search parameter {k} is not supported here; supported: {}",
                        allowed.join(", ")
                    ),
                ));
            }
            if k == "_format" && !matches!(v.as_str(), "json" | "application/fhir+json") {
                return Err(FhirError::invalid("_format", "only JSON is served"));
            }
        }
        Ok(Params { pairs })
    }

    /// Every value of a parameter.
    pub fn all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The one value of a parameter (given twice: refused).
    pub fn one<'a>(&'a self, name: &str) -> FhirResult<Option<&'a str>> {
        let mut it = self.all(name);
        let first = it.next();
        if it.next().is_some() {
            return Err(FhirError::invalid(name, format!("give {name} once")));
        }
        Ok(first.map(str::trim).filter(|v| !v.is_empty()))
    }

    /// `_count`: 1 to `max`, default [`DEFAULT_COUNT`].
    pub fn count(&self, max: i64) -> FhirResult<i64> {
        match self.one("_count")? {
            None => Ok(DEFAULT_COUNT.min(max)),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(FhirError::invalid(
                    "_count",
                    format!("_count must be a whole number from 1 to {max}"),
                )),
            },
        }
    }

    /// `_cursor`: where the previous page ended (opaque to clients; a number here).
    pub fn cursor(&self) -> FhirResult<Option<i64>> {
        self.one("_cursor")?
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| FhirError::invalid("_cursor", "not a cursor of this server"))
            })
            .transpose()
    }

    /// The patient of `patient` or `subject` (`123` or `Patient/123`).
    pub fn patient(&self) -> FhirResult<Option<i64>> {
        let p = self.one("patient")?;
        let s = self.one("subject")?;
        let (name, v) = match (p, s) {
            (None, None) => return Ok(None),
            (Some(p), None) => ("patient", p),
            (None, Some(s)) => ("subject", s),
            (Some(_), Some(_)) => {
                return Err(FhirError::invalid(
                    "subject",
                    "give patient or subject, not both",
                ));
            }
        };
        let id = v.strip_prefix("Patient/").unwrap_or(v);
        id.parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| FhirError::invalid(name, "a patient reference is Patient/{id}"))
    }

    /// A token parameter's alternatives (comma-separated), each as (system, code).
    pub fn tokens(&self, name: &str) -> FhirResult<Vec<(Option<String>, String)>> {
        let Some(v) = self.one(name)? else {
            return Ok(Vec::new());
        };
        v.split(',')
            .map(|t| {
                let (system, code) = match t.split_once('|') {
                    Some((s, c)) => (Some(s.to_owned()).filter(|s| !s.is_empty()), c),
                    None => (None, t),
                };
                if code.trim().is_empty() {
                    return Err(FhirError::invalid(name, "a token needs a code"));
                }
                Ok((system, code.trim().to_owned()))
            })
            .collect()
    }

    /// The half-open range `[from, before)` every value of a date parameter allows together.
    pub fn date_range(
        &self,
        name: &str,
        tz: &TimeZone,
    ) -> FhirResult<(Option<Timestamp>, Option<Timestamp>)> {
        let mut from: Option<Timestamp> = None;
        let mut before: Option<Timestamp> = None;
        for v in self.all(name) {
            let (prefix, value) = match v.get(..2) {
                Some(p) if p.chars().all(|c| c.is_ascii_lowercase()) => (p, &v[2..]),
                _ => ("eq", v),
            };
            let (start, end) = period(value, tz).ok_or_else(|| {
                FhirError::invalid(
                    name,
                    format!(
                        "{name} must be a date (YYYY, YYYY-MM, YYYY-MM-DD) or a date-time with a zone"
                    ),
                )
            })?;
            let (lo, hi) = match prefix {
                "eq" => (Some(start), Some(end)),
                "ge" => (Some(start), None),
                "gt" => (Some(end), None),
                "lt" => (None, Some(start)),
                "le" => (None, Some(end)),
                _ => {
                    return Err(FhirError::invalid(
                        name,
                        format!("prefix {prefix} is not supported; use eq, ge, gt, le or lt"),
                    ));
                }
            };
            if let Some(lo) = lo {
                from = Some(from.map_or(lo, |f| f.max(lo)));
            }
            if let Some(hi) = hi {
                before = Some(before.map_or(hi, |b| b.min(hi)));
            }
        }
        Ok((from, before))
    }

    /// One page of a list held in memory (`_cursor` is the offset): the page, the total and
    /// the query of the next page when there is one.
    pub fn page<T>(&self, items: Vec<T>) -> FhirResult<(Vec<T>, usize, Option<String>)> {
        let count = usize::try_from(self.count(aliquot_app::RELEASED_PAGE_MAX)?).unwrap_or(0);
        let offset = usize::try_from(self.cursor()?.unwrap_or(0)).unwrap_or(usize::MAX);
        let total = items.len();
        let start = offset.min(total);
        let end = start.saturating_add(count).min(total);
        let next = (end < total).then(|| self.with_cursor(i64::try_from(end).unwrap_or(0)));
        Ok((
            items.into_iter().skip(start).take(end - start).collect(),
            total,
            next,
        ))
    }

    /// The query string again with `_cursor` set to `cursor` (for the `next` link).
    pub fn with_cursor(&self, cursor: i64) -> String {
        let mut pairs: Vec<(&str, String)> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "_cursor")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        pairs.push(("_cursor", cursor.to_string()));
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// The query string as received (for the `self` link).
    pub fn query(&self) -> String {
        serde_urlencoded::to_string(&self.pairs).unwrap_or_default()
    }
}

/// The instants a date or date-time value covers: `[start, end)` at its precision; dates are
/// days of the lab's time zone.
fn period(value: &str, tz: &TimeZone) -> Option<(Timestamp, Timestamp)> {
    let day = |d: Date| d.to_zoned(tz.clone()).ok().map(|z| z.timestamp());
    if value.contains('T') {
        // A date-time must carry its zone; to the second.
        let t: Timestamp = value.parse().ok()?;
        return Some((t, t.checked_add(1.second()).ok()?));
    }
    let parts: Vec<&str> = value.split('-').collect();
    let num = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i16>().ok())
            .flatten()
    };
    let (start, end) = match parts.as_slice() {
        [y] => {
            let y = num(y, 4)?;
            (
                Date::new(y, 1, 1).ok()?,
                Date::new(y.checked_add(1)?, 1, 1).ok()?,
            )
        }
        [y, m] => {
            let d = Date::new(num(y, 4)?, i8::try_from(num(m, 2)?).ok()?, 1).ok()?;
            (d, d.checked_add(1.month()).ok()?)
        }
        [y, m, d] => {
            let d = Date::new(
                num(y, 4)?,
                i8::try_from(num(m, 2)?).ok()?,
                i8::try_from(num(d, 2)?).ok()?,
            )
            .ok()?;
            (d, d.tomorrow().ok()?)
        }
        _ => return None,
    };
    Some((day(start)?, day(end)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(Some(q), &["date", "patient", "subject", "code"]).expect("parses")
    }

    #[test]
    fn date_prefixes_make_half_open_ranges() {
        let tz = TimeZone::UTC;
        let ts = |s: &str| s.parse::<Timestamp>().unwrap();
        // (query, from, before)
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            (
                "date=2026-03-04",
                Some("2026-03-04T00:00:00Z"),
                Some("2026-03-05T00:00:00Z"),
            ),
            (
                "date=eq2026-03",
                Some("2026-03-01T00:00:00Z"),
                Some("2026-04-01T00:00:00Z"),
            ),
            ("date=ge2026", Some("2026-01-01T00:00:00Z"), None),
            ("date=gt2026-03-04", Some("2026-03-05T00:00:00Z"), None),
            ("date=lt2026-03-04", None, Some("2026-03-04T00:00:00Z")),
            ("date=le2026-03-04", None, Some("2026-03-05T00:00:00Z")),
            (
                "date=ge2026-03-01&date=lt2026-03-04T06:30:00Z",
                Some("2026-03-01T00:00:00Z"),
                Some("2026-03-04T06:30:00Z"),
            ),
            (
                "date=ge2026-03-01T08:00:00%2B01:00",
                Some("2026-03-01T07:00:00Z"),
                None,
            ),
        ];
        for (q, from, before) in cases {
            let (f, b) = params(q).date_range("date", &tz).expect(q);
            assert_eq!(f, from.map(ts), "{q}");
            assert_eq!(b, before.map(ts), "{q}");
        }
    }

    #[test]
    fn a_date_is_a_day_of_the_labs_time_zone() {
        let tz = TimeZone::get("America/Chicago").unwrap();
        let (f, b) = params("date=2026-07-01").date_range("date", &tz).unwrap();
        assert_eq!(f.unwrap().to_string(), "2026-07-01T05:00:00Z");
        assert_eq!(b.unwrap().to_string(), "2026-07-02T05:00:00Z");
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let tz = TimeZone::UTC;
        for q in [
            "date=sa2026-01-01",
            "date=2026-13-01",
            "date=26-01-01",
            "date=2026-01-01T08:00:00",
            "date=yesterday",
        ] {
            let e = params(q).date_range("date", &tz).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("date"), "{q}");
        }
        let e = Params::parse(Some("code=1&colour=red"), &["code"])
            .err()
            .unwrap();
        assert_eq!(e.field.as_deref(), Some("colour"));
        for q in [
            "patient=abc",
            "patient=Patient/",
            "patient=1&subject=Patient/2",
        ] {
            assert!(params(q).patient().is_err(), "{q}");
        }
        assert_eq!(params("subject=Patient/7").patient().unwrap(), Some(7));
        assert_eq!(params("patient=7").patient().unwrap(), Some(7));
    }

    #[test]
    fn tokens_split_alternatives_and_systems() {
        let p = params("code=http://loinc.org|2345-7,GLU,|K");
        assert_eq!(
            p.tokens("code").unwrap(),
            vec![
                (Some("http://loinc.org".to_owned()), "2345-7".to_owned()),
                (None, "GLU".to_owned()),
                (None, "K".to_owned()),
            ]
        );
        assert!(params("code=http://loinc.org|").tokens("code").is_err());
    }

    #[test]
    fn the_next_link_keeps_the_filters() {
        let p = params("patient=7&code=GLU&_cursor=99");
        assert_eq!(p.with_cursor(42), "patient=7&code=GLU&_cursor=42");
    }
}
