//! Specimen storage: retention and disposal, storage location paths.
//!
//! # Rules and sources
//! - Retention is a per-specimen-type policy table ([CONFIG], DOMAIN §7.2: "make retention a
//!   per-record-type policy table and never hard-delete inside the window"). Defaults from the
//!   CAP guidance quoted in DOMAIN §7.2: serum, plasma, CSF and body fluids 48 h; urine 24 h.
//!   Specimen types without an entry are **never** due for disposal — a lab must configure them
//!   explicitly (safe default: keep).
//! - A specimen is due for disposal when `now ≥ stored_at + retention`.
//! - Location path: `room/unit/rack[/box]/position` (4 or 5 levels), e.g. `LAB1/FRZ-02/R3/B12/A7`.
//!   Each of room, unit, rack, box is 1–16 characters of `[A-Z0-9_-]` (upper-cased). A position
//!   is either a grid cell — 1–2 row letters and a column number 1–999 (`A7`, `H12`) — or a slot
//!   number 1–9999, without leading zeros. A position holds one specimen; the store enforces that uniqueness, the domain
//!   only validates the shape.
//! - Holders are registered top-down as a hierarchy ([`HolderPath`], [`HolderKind`]): a room
//!   (level 1), a refrigerator or freezer (level 2), a rack (level 3), a box (level 4). A holder
//!   may have a grid of rows × columns (1–26 × 1–999, `A1` … `Z999`); a gridded holder takes
//!   only grid cells inside its grid ([`Position::fits_grid`]), so one physical cell has one
//!   name. A holder without a grid takes any cell or slot number.

pub mod retention;

use std::collections::BTreeMap;
use std::fmt;

use jiff::{SignedDuration, Timestamp};
use thiserror::Error;

use crate::catalog::{SpecimenType, code_enum};
use crate::error::impl_domain_error;

/// Retention period per specimen type ([CONFIG]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionTable {
    periods: BTreeMap<SpecimenType, SignedDuration>,
}

/// Storage configuration and location errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StorageError {
    #[error("a retention period must be positive")]
    NonPositiveRetention,
    #[error(
        "a storage path is room/unit/rack[/box]/position (4 or 5 levels); got {levels} in {input:?}"
    )]
    Depth { input: String, levels: usize },
    #[error("the {level} {segment:?} must be 1–16 characters of A–Z, 0–9, '_' or '-'")]
    Segment {
        level: &'static str,
        segment: String,
    },
    #[error(
        "the position {position:?} must be a grid cell like A7 (row letters, column 1–999) or a slot number 1–9999"
    )]
    Position { position: String },
    #[error("a holder path is room[/unit[/rack[/box]]] (1 to 4 levels); got {levels} in {input:?}")]
    HolderDepth { input: String, levels: usize },
    #[error("a {kind} is a level-{expected} holder, but the path has {levels} levels")]
    KindLevel {
        kind: HolderKind,
        expected: usize,
        levels: usize,
    },
    #[error("a grid has 1–26 rows and 1–999 columns, both given or neither")]
    Grid,
    #[error("the position {position} is outside the holder's {rows} × {columns} grid")]
    OffGrid {
        position: Position,
        rows: u16,
        columns: u16,
    },
}

impl StorageError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NonPositiveRetention => "retention_non_positive",
            Self::Depth { .. } => "storage_path_depth",
            Self::Segment { .. } => "storage_path_segment",
            Self::Position { .. } => "storage_position",
            Self::HolderDepth { .. } => "storage_holder_depth",
            Self::KindLevel { .. } => "storage_kind_level",
            Self::Grid => "storage_grid",
            Self::OffGrid { .. } => "storage_position_off_grid",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::NonPositiveRetention => Some("retention"),
            Self::HolderDepth { .. } => Some("path"),
            Self::KindLevel { .. } => Some("kind"),
            Self::Grid => Some("grid"),
            _ => Some("location"),
        }
    }
}

impl Default for RetentionTable {
    fn default() -> Self {
        Self::defaults()
    }
}

impl RetentionTable {
    /// An empty table: nothing is ever due.
    pub fn empty() -> Self {
        Self {
            periods: BTreeMap::new(),
        }
    }

    /// CAP defaults quoted in DOMAIN §7.2.
    pub fn defaults() -> Self {
        let h48 = SignedDuration::from_hours(48);
        let periods = BTreeMap::from([
            (SpecimenType::Serum, h48),
            (SpecimenType::Plasma, h48),
            (SpecimenType::Csf, h48),
            (SpecimenType::BodyFluid, h48),
            (SpecimenType::Urine, SignedDuration::from_hours(24)),
        ]);
        Self { periods }
    }

    /// Sets the retention for a specimen type.
    pub fn set(
        &mut self,
        specimen_type: SpecimenType,
        period: SignedDuration,
    ) -> Result<(), StorageError> {
        if period <= SignedDuration::ZERO {
            return Err(StorageError::NonPositiveRetention);
        }
        self.periods.insert(specimen_type, period);
        Ok(())
    }

    /// The retention for a specimen type; `None` = keep until configured.
    pub fn get(&self, specimen_type: SpecimenType) -> Option<SignedDuration> {
        self.periods.get(&specimen_type).copied()
    }
}

/// Whether a specimen stored at `stored_at` may be disposed of at `now`.
pub fn disposal_due(
    stored_at: Timestamp,
    specimen_type: SpecimenType,
    now: Timestamp,
    table: &RetentionTable,
) -> bool {
    table
        .get(specimen_type)
        .and_then(|period| stored_at.checked_add(period).ok())
        .is_some_and(|due| now >= due)
}

/// A position inside a rack or box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Position {
    /// Row letters as a 1-based number (A = 1, Z = 26, AA = 27 …) and column.
    Grid { row: u16, column: u16 },
    /// Numbered slot.
    Slot(u16),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Grid { row, column } => {
                let r = row - 1;
                if r >= 26 {
                    let first = u8::try_from(r / 26 - 1).unwrap_or(0);
                    write!(f, "{}", char::from(b'A' + first))?;
                }
                let last = u8::try_from(r % 26).unwrap_or(0);
                write!(f, "{}{column}", char::from(b'A' + last))
            }
            Self::Slot(n) => write!(f, "{n}"),
        }
    }
}

impl Position {
    /// Whether the position is a cell inside a grid of `rows` × `columns`. Slot numbers never
    /// fit a grid (one physical cell has one name).
    pub fn fits_grid(self, rows: u16, columns: u16) -> bool {
        match self {
            Self::Grid { row, column } => row <= rows && column <= columns,
            Self::Slot(_) => false,
        }
    }
}

code_enum! {
    /// What a storage holder is; each kind sits at one level of the hierarchy.
    HolderKind, "holder_kind" {
        Room => "room",
        Refrigerator => "refrigerator",
        Freezer => "freezer",
        Rack => "rack",
        Box => "box",
    }
}

impl HolderKind {
    /// The level in the hierarchy: room 1, refrigerator/freezer 2, rack 3, box 4.
    pub fn level(self) -> usize {
        match self {
            Self::Room => 1,
            Self::Refrigerator | Self::Freezer => 2,
            Self::Rack => 3,
            Self::Box => 4,
        }
    }
}

/// A validated holder path (`room[/unit[/rack[/box]]]`), upper-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HolderPath {
    segments: Vec<String>,
}

impl HolderPath {
    /// Parses a holder path of 1 to 4 levels.
    pub fn parse(input: &str) -> Result<Self, StorageError> {
        let parts: Vec<&str> = input.split('/').collect();
        if !(1..=4).contains(&parts.len()) {
            return Err(StorageError::HolderDepth {
                input: input.to_owned(),
                levels: parts.len(),
            });
        }
        const LEVELS: [&str; 4] = ["room", "unit", "rack", "box"];
        let segments = parts
            .iter()
            .zip(LEVELS)
            .map(|(s, level)| {
                segment(level, s).map_err(|_| StorageError::Segment {
                    level,
                    segment: (*s).to_owned(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { segments })
    }

    /// Number of levels (1 = room … 4 = box).
    pub fn levels(&self) -> usize {
        self.segments.len()
    }

    /// The enclosing holder's path; `None` for a room.
    pub fn parent(&self) -> Option<String> {
        (self.segments.len() > 1).then(|| self.segments[..self.segments.len() - 1].join("/"))
    }

    /// Checks that `kind` sits at this path's level.
    pub fn check_kind(&self, kind: HolderKind) -> Result<(), StorageError> {
        if kind.level() == self.levels() {
            Ok(())
        } else {
            Err(StorageError::KindLevel {
                kind,
                expected: kind.level(),
                levels: self.levels(),
            })
        }
    }
}

impl fmt::Display for HolderPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("/"))
    }
}

/// Validates a holder grid: both dimensions or neither; rows 1–26 (`A`–`Z`), columns 1–999.
pub fn check_grid(
    rows: Option<i64>,
    columns: Option<i64>,
) -> Result<Option<(u16, u16)>, StorageError> {
    match (rows, columns) {
        (None, None) => Ok(None),
        (Some(r), Some(c)) if (1..=26).contains(&r) && (1..=999).contains(&c) => Ok(Some((
            u16::try_from(r).map_err(|_| StorageError::Grid)?,
            u16::try_from(c).map_err(|_| StorageError::Grid)?,
        ))),
        _ => Err(StorageError::Grid),
    }
}

/// Checks that `location` may go into a holder with this grid (no grid: any position).
pub fn check_fits(
    location: &StorageLocation,
    grid: Option<(u16, u16)>,
) -> Result<(), StorageError> {
    match grid {
        Some((rows, columns)) if !location.position().fits_grid(rows, columns) => {
            Err(StorageError::OffGrid {
                position: location.position(),
                rows,
                columns,
            })
        }
        _ => Ok(()),
    }
}

fn parse_position(input: &str) -> Option<Position> {
    let s = input.to_ascii_uppercase();
    let letters = s.bytes().take_while(u8::is_ascii_alphabetic).count();
    let (row_text, number) = s.split_at(letters);
    if number.is_empty() || number.starts_with('0') || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u16 = number.parse().ok()?;
    match row_text.len() {
        0 => (n <= 9999).then_some(Position::Slot(n)),
        1 | 2 => {
            let row = row_text
                .bytes()
                .fold(0u16, |acc, b| acc * 26 + u16::from(b - b'A' + 1));
            (n <= 999).then_some(Position::Grid { row, column: n })
        }
        _ => None,
    }
}

/// A validated storage location path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageLocation {
    room: String,
    unit: String,
    rack: String,
    box_id: Option<String>,
    position: Position,
}

fn segment(level: &'static str, s: &str) -> Result<String, StorageError> {
    let ok = (1..=16).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(StorageError::Segment {
            level,
            segment: s.to_owned(),
        });
    }
    Ok(s.to_ascii_uppercase())
}

impl StorageLocation {
    /// Parses `room/unit/rack[/box]/position`.
    pub fn parse(input: &str) -> Result<Self, StorageError> {
        let parts: Vec<&str> = input.split('/').collect();
        let (room, unit, rack, box_id, position) = match parts.as_slice() {
            [room, unit, rack, position] => (room, unit, rack, None, position),
            [room, unit, rack, b, position] => (room, unit, rack, Some(b), position),
            _ => {
                return Err(StorageError::Depth {
                    input: input.to_owned(),
                    levels: parts.len(),
                });
            }
        };
        Ok(Self {
            room: segment("room", room)?,
            unit: segment("unit", unit)?,
            rack: segment("rack", rack)?,
            box_id: box_id.map(|b| segment("box", b)).transpose()?,
            position: parse_position(position).ok_or_else(|| StorageError::Position {
                position: (*position).to_owned(),
            })?,
        })
    }

    /// Room.
    pub fn room(&self) -> &str {
        &self.room
    }
    /// Storage unit (fridge, freezer).
    pub fn unit(&self) -> &str {
        &self.unit
    }
    /// Rack.
    pub fn rack(&self) -> &str {
        &self.rack
    }
    /// Box, if the rack holds boxes.
    pub fn box_id(&self) -> Option<&str> {
        self.box_id.as_deref()
    }
    /// Position.
    pub fn position(&self) -> Position {
        self.position
    }
    /// The path without the position (the rack or box holding it).
    pub fn holder_path(&self) -> String {
        let mut s = format!("{}/{}/{}", self.room, self.unit, self.rack);
        if let Some(b) = &self.box_id {
            s.push('/');
            s.push_str(b);
        }
        s
    }
}

impl fmt::Display for StorageLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.holder_path(), self.position)
    }
}

impl_domain_error!(StorageError);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn disposal_windows() {
        let table = RetentionTable::defaults();
        let stored = ts("2026-11-21T08:00:00Z");
        assert!(!disposal_due(
            stored,
            SpecimenType::Serum,
            ts("2026-11-23T07:59:59Z"),
            &table
        ));
        assert!(disposal_due(
            stored,
            SpecimenType::Serum,
            ts("2026-11-23T08:00:00Z"),
            &table
        ));
        assert!(disposal_due(
            stored,
            SpecimenType::Urine,
            ts("2026-11-22T08:00:00Z"),
            &table
        ));
        // Not configured: never due.
        assert!(!disposal_due(
            stored,
            SpecimenType::Tissue,
            ts("2036-11-21T08:00:00Z"),
            &table
        ));
        let mut custom = RetentionTable::empty();
        custom
            .set(SpecimenType::WholeBlood, SignedDuration::from_hours(168))
            .unwrap();
        assert!(disposal_due(
            stored,
            SpecimenType::WholeBlood,
            ts("2026-11-28T08:00:00Z"),
            &custom
        ));
        assert_eq!(
            custom
                .set(SpecimenType::Urine, SignedDuration::ZERO)
                .unwrap_err()
                .code(),
            "retention_non_positive"
        );
    }

    #[test]
    fn location_paths() {
        let loc = StorageLocation::parse("lab1/frz-02/r3/b12/a7").unwrap();
        assert_eq!(loc.to_string(), "LAB1/FRZ-02/R3/B12/A7");
        assert_eq!(loc.position(), Position::Grid { row: 1, column: 7 });
        assert_eq!(loc.holder_path(), "LAB1/FRZ-02/R3/B12");
        let no_box = StorageLocation::parse("LAB1/FRIDGE1/RACK2/15").unwrap();
        assert_eq!(no_box.box_id(), None);
        assert_eq!(no_box.position(), Position::Slot(15));
        assert_eq!(
            StorageLocation::parse("AA/B/C/AB10").unwrap().position(),
            Position::Grid {
                row: 28,
                column: 10
            }
        );
        for (bad, code) in [
            ("LAB1/FRZ/R3", "storage_path_depth"),
            ("A/B/C/D/E/F", "storage_path_depth"),
            ("LAB 1/FRZ/R3/A1", "storage_path_segment"),
            ("LAB1//R3/A1", "storage_path_segment"),
            ("LAB1/FRZ/R3/A0", "storage_position"),
            ("LAB1/FRZ/R3/ABC1", "storage_position"),
            ("LAB1/FRZ/R3/A", "storage_position"),
            ("LAB1/FRZ/R3/A1000", "storage_position"),
        ] {
            assert_eq!(
                StorageLocation::parse(bad).unwrap_err().code(),
                code,
                "{bad}"
            );
        }
    }

    #[test]
    fn holders_and_grids() {
        let p = HolderPath::parse("lab1/frz-02/r3").unwrap();
        assert_eq!(p.to_string(), "LAB1/FRZ-02/R3");
        assert_eq!(p.levels(), 3);
        assert_eq!(p.parent().as_deref(), Some("LAB1/FRZ-02"));
        assert_eq!(HolderPath::parse("LAB1").unwrap().parent(), None);
        assert!(p.check_kind(HolderKind::Rack).is_ok());
        assert_eq!(
            p.check_kind(HolderKind::Freezer).unwrap_err().code(),
            "storage_kind_level"
        );
        for (bad, code) in [
            ("", "storage_path_segment"),
            ("A/B/C/D/E", "storage_holder_depth"),
            ("LAB 1", "storage_path_segment"),
            ("LAB1//R3", "storage_path_segment"),
        ] {
            assert_eq!(HolderPath::parse(bad).unwrap_err().code(), code, "{bad}");
        }
        assert_eq!(check_grid(None, None), Ok(None));
        assert_eq!(check_grid(Some(9), Some(9)), Ok(Some((9, 9))));
        for (r, c) in [
            (Some(9), None),
            (None, Some(9)),
            (Some(0), Some(9)),
            (Some(27), Some(1)),
            (Some(1), Some(1000)),
        ] {
            assert_eq!(check_grid(r, c).unwrap_err().code(), "storage_grid");
        }
        let a9 = StorageLocation::parse("L/F/R/B/A9").unwrap();
        let i1 = StorageLocation::parse("L/F/R/B/I1").unwrap();
        let j1 = StorageLocation::parse("L/F/R/B/J1").unwrap();
        let slot = StorageLocation::parse("L/F/R/B/5").unwrap();
        assert!(check_fits(&a9, Some((9, 9))).is_ok());
        assert!(check_fits(&i1, Some((9, 9))).is_ok());
        assert_eq!(
            check_fits(&j1, Some((9, 9))).unwrap_err().code(),
            "storage_position_off_grid"
        );
        assert_eq!(
            check_fits(
                &StorageLocation::parse("L/F/R/B/A10").unwrap(),
                Some((9, 9))
            )
            .unwrap_err()
            .field(),
            Some("location")
        );
        assert_eq!(
            check_fits(&slot, Some((9, 9))).unwrap_err().code(),
            "storage_position_off_grid"
        );
        assert!(check_fits(&slot, None).is_ok());
        assert!(check_fits(&j1, None).is_ok());
        for kind in HolderKind::ALL {
            assert_eq!(HolderKind::parse(kind.as_str()), Ok(*kind));
        }
    }

    proptest! {
        #[test]
        fn grid_fit_matches_bounds(rows in 1u16..=26, cols in 1u16..=999, r in 1u16..=30, c in 1u16..=999) {
            let pos = Position::Grid { row: r, column: c };
            prop_assert_eq!(pos.fits_grid(rows, cols), r <= rows && c <= cols);
        }

        #[test]
        fn location_display_round_trips(
            room in "[A-Za-z0-9_-]{1,16}", unit in "[A-Z0-9]{1,16}", rack in "[A-Z0-9]{1,16}",
            box_id in proptest::option::of("[A-Z0-9]{1,16}"), row in "[A-Z]{1,2}", col in 1u16..=999,
        ) {
            let mut path = format!("{room}/{unit}/{rack}");
            if let Some(b) = &box_id { path.push('/'); path.push_str(b); }
            path.push_str(&format!("/{row}{col}"));
            let loc = StorageLocation::parse(&path).unwrap();
            prop_assert_eq!(loc.to_string(), path.to_ascii_uppercase());
            prop_assert_eq!(StorageLocation::parse(&loc.to_string()).unwrap(), loc);
        }

        #[test]
        fn disposal_is_monotone(hours in 0i64..200, more in 0i64..200) {
            let table = RetentionTable::defaults();
            let stored = ts("2026-01-01T00:00:00Z");
            let t1 = stored + SignedDuration::from_hours(hours);
            let t2 = t1 + SignedDuration::from_hours(more);
            if disposal_due(stored, SpecimenType::Plasma, t1, &table) {
                prop_assert!(disposal_due(stored, SpecimenType::Plasma, t2, &table));
            }
            prop_assert_eq!(disposal_due(stored, SpecimenType::Plasma, t1, &table), hours >= 48);
        }
    }
}
