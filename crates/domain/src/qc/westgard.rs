//! The Westgard multirule evaluator (DOMAIN §1.1–1.5).
//!
//! # Definitions
//! - Every observation carries **its own** [`Target`] (mean and SD of its level and lot at the
//!   time it was measured): limits change prospectively and history is never re-judged with new
//!   limits (DOMAIN §1.6).
//! - "Beyond k SD" is judged exactly, without dividing: `value − mean > k·sd` or
//!   `value − mean < −k·sd`, strictly, so a z of exactly 2.00 never violates a 2s rule, 1.00
//!   never a 1s rule and 3.00 never 1-3s; a value exactly on the mean is on neither side and
//!   breaks an n_x sequence. [`Observation::z`] is for display only.
//! - 1-2s is **never** a rejection: it is a warning ([`Verdict::warnings`]).
//! - [`Mode::Classic`]: the rejection rules judge the run only when some observation of the
//!   current run is beyond 2 SD (the 1-2s gate; when it opens, a 1-2s warning is reported whether
//!   or not 1-2s is listed in the rule set). [`Mode::Modern`]: every selected rule, every run;
//!   1-2s is reported only when it is listed.
//! - 1-2s, 1-3s and R-4s look at the observations of the current run alone (R-4s: one beyond
//!   +2 SD and another beyond −2 SD **in the same run**, never across runs); they are reported
//!   with [`Scope::WithinRun`] and are not switched off by the scopes.
//! - The other rules (2-2s, 4-1s, 3-1s, 2of3-2s, 6x/8x/9x/10x/12x) are "consecutive
//!   observations" rules, judged on three kinds of window (DOMAIN §1.2):
//!   - [`Scope::WithinRun`]: the current run's observations ordered by level (2-2s across
//!     levels, 2of3-2s and 3-1s across three levels);
//!   - [`Scope::WithinMaterial`]: one level's stream across runs;
//!   - [`Scope::AcrossMaterial`]: the interleaved stream of every level (runs in time order,
//!     levels in order within a run) across runs (e.g. 4-1s over two runs of two levels).
//!
//!   A window counts only when it ends at (so includes) an observation of the current run:
//!   otherwise every later run would re-fire on old data (DOMAIN §1.4). Every such window is
//!   judged, not only the one ending at the stream's last observation, so with two levels the
//!   across-material 2-2s also catches "level 2 of the previous run and level 1 of this run"
//!   (DOMAIN §1.2 "some texts also allow") and 4-1s/n_x windows may start mid-run.
//!   For 2of3-2s the two observations beyond 2 SD may both be earlier ones: the rule is "two of
//!   the last three".
//! - Observations of one run are ordered by level, then (replicates of one level) by value,
//!   mean and SD, so the order in which a run's observations are given never changes the
//!   verdict.
//! - History: every run evaluated or pushed stays in the history, rejected or not (the chart
//!   keeps them; DOMAIN §1.4 policy 1). A new control lot or a documented recalibration starts
//!   a new history: [`Evaluator::reset`] (policy 2).
//! - Levels are 1, 2 or 3: an observation of another level makes the whole run refused
//!   ([`QcError::LevelOutOfRange`]) before anything is judged or kept; an empty run is refused
//!   ([`QcError::EmptyRun`]).
//!
//! # Cost
//! Each observation is classified once into a byte (side of the mean, beyond 1/2/3 SD on that
//! side). The evaluator keeps, per level and for the interleaved stream, only the last 11
//! classified observations (the longest rule, 12x, needs 11 before the newest), in vectors whose
//! capacity is reused: evaluating a run allocates nothing unless a rule fires.

use std::fmt::Write as _;

use rust_decimal::Decimal;

use super::QcError;

// ---------------------------------------------------------------------------------------------
// Rules, modes, scopes

/// A Westgard rule (DOMAIN §1.1), in the spelling of issue 13.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// One observation beyond ±2 SD: a **warning**, never a rejection.
    OneTwoS,
    /// One observation beyond ±3 SD.
    OneThreeS,
    /// Two consecutive observations beyond the same 2 SD limit.
    TwoTwoS,
    /// In the same run, one observation beyond +2 SD and another beyond −2 SD.
    RFourS,
    /// Four consecutive observations beyond the same 1 SD limit.
    FourOneS,
    /// Ten consecutive observations on the same side of the mean.
    TenX,
    /// Eight consecutive observations on the same side of the mean.
    EightX,
    /// Twelve consecutive observations on the same side of the mean.
    TwelveX,
    /// Two of the last three observations beyond the same 2 SD limit.
    TwoOfThreeTwoS,
    /// Three consecutive observations beyond the same 1 SD limit.
    ThreeOneS,
    /// Six consecutive observations on the same side of the mean.
    SixX,
    /// Nine consecutive observations on the same side of the mean.
    NineX,
}

impl Rule {
    /// Every rule, in the order of issue 13 (also the order of findings in a [`Verdict`]).
    pub const ALL: [Rule; 12] = [
        Rule::OneTwoS,
        Rule::OneThreeS,
        Rule::TwoTwoS,
        Rule::RFourS,
        Rule::FourOneS,
        Rule::TenX,
        Rule::EightX,
        Rule::TwelveX,
        Rule::TwoOfThreeTwoS,
        Rule::ThreeOneS,
        Rule::SixX,
        Rule::NineX,
    ];

    /// The spelling of issue 13: `1-2s`, `1-3s`, `2-2s`, `R-4s`, `4-1s`, `10x`, `8x`, `12x`,
    /// `2of3-2s`, `3-1s`, `6x`, `9x`.
    pub fn code(&self) -> &'static str {
        match self {
            Rule::OneTwoS => "1-2s",
            Rule::OneThreeS => "1-3s",
            Rule::TwoTwoS => "2-2s",
            Rule::RFourS => "R-4s",
            Rule::FourOneS => "4-1s",
            Rule::TenX => "10x",
            Rule::EightX => "8x",
            Rule::TwelveX => "12x",
            Rule::TwoOfThreeTwoS => "2of3-2s",
            Rule::ThreeOneS => "3-1s",
            Rule::SixX => "6x",
            Rule::NineX => "9x",
        }
    }

    /// Parses [`Rule::code`]'s spelling; also, ignoring case, the underscore spelling of DOMAIN
    /// §1 and westgard-python (`1_3s`, `R_4s`, `10_x`, `2of3_2s`). Surrounding blanks are
    /// ignored; anything else is refused (`qc_unknown_rule`, field `rules`).
    pub fn parse(text: &str) -> Result<Rule, QcError> {
        let t = text.trim();
        Rule::ALL
            .into_iter()
            .find(|r| {
                let code = r.code();
                t.eq_ignore_ascii_case(code)
                    || t.eq_ignore_ascii_case(&code.replace('-', "_"))
                    || t.eq_ignore_ascii_case(&code.replace('x', "_x"))
            })
            .ok_or_else(|| QcError::UnknownRule {
                text: text.to_owned(),
            })
    }

    /// Whether a violation of this rule rejects the run (every rule but 1-2s).
    pub fn rejects(&self) -> bool {
        *self != Rule::OneTwoS
    }

    fn index(self) -> usize {
        self as usize
    }

    fn bit(self) -> u16 {
        1 << self.index()
    }

    /// The number of consecutive observations a window rule looks at; `None` for the rules that
    /// judge single observations or the run as a whole (1-2s, 1-3s, R-4s).
    fn window(self) -> Option<usize> {
        match self {
            Rule::OneTwoS | Rule::OneThreeS | Rule::RFourS => None,
            Rule::TwoTwoS => Some(2),
            Rule::TwoOfThreeTwoS | Rule::ThreeOneS => Some(3),
            Rule::FourOneS => Some(4),
            Rule::SixX => Some(6),
            Rule::EightX => Some(8),
            Rule::NineX => Some(9),
            Rule::TenX => Some(10),
            Rule::TwelveX => Some(12),
        }
    }

    /// The SD multiple of the limit (0: the mean).
    fn limit(self) -> u8 {
        match self {
            Rule::OneThreeS => 3,
            Rule::OneTwoS | Rule::TwoTwoS | Rule::RFourS | Rule::TwoOfThreeTwoS => 2,
            Rule::FourOneS | Rule::ThreeOneS => 1,
            Rule::TenX | Rule::EightX | Rule::TwelveX | Rule::SixX | Rule::NineX => 0,
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// When the rejection rules judge a run (DOMAIN §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The 1-2s gate: the rejection rules judge the run only when some observation of the
    /// current run is beyond 2 SD; otherwise the run is accepted without looking further.
    Classic,
    /// Every selected rule judges every run (computerised QC; Westgard's current advice).
    Modern,
}

impl Mode {
    /// `classic` or `modern`.
    pub fn code(&self) -> &'static str {
        match self {
            Mode::Classic => "classic",
            Mode::Modern => "modern",
        }
    }
}

/// Which observations a finding's window spans (DOMAIN §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The current run alone, across its levels.
    WithinRun,
    /// One level (control material) across runs.
    WithinMaterial,
    /// The interleaved stream of all levels across runs.
    AcrossMaterial,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 3] = [
        Scope::WithinRun,
        Scope::WithinMaterial,
        Scope::AcrossMaterial,
    ];

    /// `within_run`, `within_material` or `across_material`.
    pub fn code(&self) -> &'static str {
        match self {
            Scope::WithinRun => "within_run",
            Scope::WithinMaterial => "within_material",
            Scope::AcrossMaterial => "across_material",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

const ALL_SCOPES: u8 = 0b111;

/// A selection of rules with a mode and the scopes the window rules are judged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleSet {
    mode: Mode,
    rules: u16,
    scopes: u8,
}

impl RuleSet {
    /// The given rules in `mode`, judged in every scope. Refused without any rejection rule
    /// (1-2s alone never rejects anything).
    pub fn new(mode: Mode, rules: &[Rule]) -> Result<RuleSet, QcError> {
        let bits = rules.iter().fold(0u16, |b, r| b | r.bit());
        if bits & !Rule::OneTwoS.bit() == 0 {
            return Err(QcError::NoRejectionRule);
        }
        Ok(RuleSet {
            mode,
            rules: bits,
            scopes: ALL_SCOPES,
        })
    }

    fn preset(mode: Mode, rules: &[Rule]) -> RuleSet {
        RuleSet {
            mode,
            rules: rules.iter().fold(0u16, |b, r| b | r.bit()),
            scopes: ALL_SCOPES,
        }
    }

    /// Modern two-level multirule (DOMAIN §1.3): 1-3s / 2-2s / R-4s / 4-1s / 8x, no 1-2s
    /// warning (Westgard no longer recommends it with computerised QC, and Westgard Sigma Rules
    /// have none; add it with [`RuleSet::with_rule`] to show warnings).
    pub fn modern_two_level() -> RuleSet {
        use Rule::*;
        RuleSet::preset(
            Mode::Modern,
            &[OneThreeS, TwoTwoS, RFourS, FourOneS, EightX],
        )
    }

    /// Classic two-level "Westgard Rules" (1981): the 1-2s warning gates 1-3s / 2-2s / R-4s /
    /// 4-1s / 10x.
    pub fn classic_two_level() -> RuleSet {
        use Rule::*;
        RuleSet::preset(
            Mode::Classic,
            &[OneTwoS, OneThreeS, TwoTwoS, RFourS, FourOneS, TenX],
        )
    }

    /// Three-level multirule (hematology, immunoassay, blood gas; DOMAIN §1.3), modern mode:
    /// 1-3s / 2of3-2s / R-4s / 3-1s / 6x.
    pub fn three_level() -> RuleSet {
        use Rule::*;
        RuleSet::preset(
            Mode::Modern,
            &[OneThreeS, TwoOfThreeTwoS, RFourS, ThreeOneS, SixX],
        )
    }

    /// The same rules in another mode.
    pub fn with_mode(self, mode: Mode) -> RuleSet {
        RuleSet { mode, ..self }
    }

    /// The same rule set with one more rule.
    pub fn with_rule(self, rule: Rule) -> RuleSet {
        RuleSet {
            rules: self.rules | rule.bit(),
            ..self
        }
    }

    /// The same rules judged in the given scopes only (by default all three). The scopes
    /// narrow the window rules; 1-2s, 1-3s and R-4s always judge the current run.
    pub fn with_scopes(self, scopes: &[Scope]) -> RuleSet {
        RuleSet {
            scopes: scopes.iter().fold(0u8, |b, s| b | s.bit()),
            ..self
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether `rule` is selected.
    pub fn contains(&self, rule: Rule) -> bool {
        self.rules & rule.bit() != 0
    }

    /// The selected rules, in [`Rule::ALL`] order.
    pub fn rules(&self) -> impl Iterator<Item = Rule> + '_ {
        Rule::ALL.into_iter().filter(|r| self.contains(*r))
    }

    /// Whether window rules are judged in `scope`.
    pub fn scope_enabled(&self, scope: Scope) -> bool {
        self.scopes & scope.bit() != 0
    }

    /// The longest window among the selected window rules (0 when there is none).
    fn longest_window(&self) -> usize {
        self.rules().filter_map(Rule::window).max().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// Targets and observations

/// A control level's target mean and SD (the lab's own, for the lot, at the time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    mean: Decimal,
    sd: Decimal,
}

impl Target {
    /// A target; the SD must be above zero (`qc_sd_not_positive`, field `sd`) and small enough
    /// that 3 SD can be computed (`qc_overflow`, field `sd`).
    pub fn new(mean: Decimal, sd: Decimal) -> Result<Target, QcError> {
        if sd <= Decimal::ZERO {
            return Err(QcError::SdNotPositive { sd });
        }
        sd.checked_mul(Decimal::from(3))
            .ok_or(QcError::Overflow { field: "sd" })?;
        Ok(Target { mean, sd })
    }

    /// The target mean.
    pub fn mean(&self) -> Decimal {
        self.mean
    }

    /// The target SD.
    pub fn sd(&self) -> Decimal {
        self.sd
    }
}

/// One control measurement: its level (1–3), value and the target in force when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Observation {
    pub level: u8,
    pub value: Decimal,
    pub target: Target,
}

impl Observation {
    /// A control observation (the level is checked when the run is judged).
    pub fn new(level: u8, value: Decimal, target: Target) -> Observation {
        Observation {
            level,
            value,
            target,
        }
    }

    /// z = (value − mean) / SD, for display only: the rules never divide (see the module
    /// documentation). Saturates at `Decimal::MAX`/`MIN` for absurd inputs.
    pub fn z(&self) -> Decimal {
        let d = self.value.checked_sub(self.target.mean);
        match d.and_then(|d| d.checked_div(self.target.sd)) {
            Some(z) => z,
            None if self.value >= self.target.mean => Decimal::MAX,
            None => Decimal::MIN,
        }
    }

    /// The classification byte; errors only on overflow.
    fn mark(&self) -> Result<u8, QcError> {
        let d = self
            .value
            .checked_sub(self.target.mean)
            .ok_or(QcError::Overflow { field: "value" })?;
        let (mut m, a, one, two, three) = if d > Decimal::ZERO {
            (POS, d, P1, P2, P3)
        } else if d < Decimal::ZERO {
            (NEG, -d, N1, N2, N3)
        } else {
            return Ok(0);
        };
        let sd = self.target.sd;
        if a > sd {
            m |= one;
            let sd2 = sd + sd;
            if a > sd2 {
                m |= two;
                if a > sd2 + sd {
                    m |= three;
                }
            }
        }
        Ok(m)
    }
}

// Classification bits: side of the mean, and beyond +k / −k SD.
const POS: u8 = 1;
const NEG: u8 = 2;
const P1: u8 = 4;
const N1: u8 = 8;
const P2: u8 = 16;
const N2: u8 = 32;
const P3: u8 = 64;
const N3: u8 = 128;

/// Above (z > 0) or below (z < 0) the mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Above,
    Below,
}

impl Side {
    fn sign(self) -> char {
        match self {
            Side::Above => '+',
            Side::Below => '-',
        }
    }
}

/// One observation that a finding rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObsRef {
    /// 0: the current run; 1: the run before; …
    pub runs_back: u32,
    /// The control level.
    pub level: u8,
    /// Its side of the mean.
    pub side: Side,
}

/// A rule violated (or, for 1-2s, a warning) in one scope, with the observations it rests on
/// (the union over every window that fired, ordered by run then level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub scope: Scope,
    pub observations: Vec<ObsRef>,
}

impl Finding {
    /// A sentence for a person, e.g. "2-2s across runs: level 1 beyond +2 SD in this run and
    /// the previous one".
    pub fn description(&self) -> String {
        let scope = match self.scope {
            Scope::WithinRun => "within the run",
            Scope::WithinMaterial => "across runs",
            Scope::AcrossMaterial => "across runs and levels",
        };
        let mut out = format!("{} {scope}: ", self.rule.code());
        let mut groups: Vec<(u8, Side, Vec<u32>)> = Vec::new();
        for o in &self.observations {
            match groups
                .iter_mut()
                .find(|(l, s, _)| *l == o.level && *s == o.side)
            {
                Some((_, _, runs)) => runs.push(o.runs_back),
                None => groups.push((o.level, o.side, vec![o.runs_back])),
            }
        }
        groups.sort_by_key(|(l, s, _)| (*l, *s));
        for (i, (level, side, mut runs)) in groups.into_iter().enumerate() {
            runs.sort_unstable();
            runs.dedup();
            if i > 0 {
                out.push_str("; ");
            }
            let where_ = match self.rule.limit() {
                0 if side == Side::Above => "above the mean".to_owned(),
                0 => "below the mean".to_owned(),
                k => format!("beyond {}{k} SD", side.sign()),
            };
            let _ = write!(out, "level {level} {where_} {}", runs_phrase(&runs));
        }
        out
    }
}

fn runs_phrase(runs: &[u32]) -> String {
    let contiguous = runs.windows(2).all(|w| w[1] == w[0] + 1);
    match runs {
        [0] => "in this run".to_owned(),
        [1] => "in the previous run".to_owned(),
        [0, 1] => "in this run and the previous one".to_owned(),
        [0, .., last] if contiguous => format!("in this run and the {last} previous ones"),
        [n] => format!("{n} runs back"),
        _ => {
            let list: Vec<String> = runs.iter().map(u32::to_string).collect();
            format!("in the runs {} back", list.join(", "))
        }
    }
}

/// The judgement of one run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// No rejection rule fired (warnings alone accept).
    pub accepted: bool,
    /// 1-2s findings: shown, never rejecting.
    pub warnings: Vec<Finding>,
    /// Rejection findings, one per (rule, scope), in [`Rule::ALL`] then [`Scope::ALL`] order.
    pub violations: Vec<Finding>,
}

impl Verdict {
    /// The distinct rules among `findings`, in [`Rule::ALL`] order.
    pub fn rules(findings: &[Finding]) -> Vec<Rule> {
        let mut rules: Vec<Rule> = findings.iter().map(|f| f.rule).collect();
        rules.sort_unstable();
        rules.dedup();
        rules
    }
}

// ---------------------------------------------------------------------------------------------
// The evaluator

/// A classified observation kept in a stream.
#[derive(Debug, Clone, Copy)]
struct Obs {
    mark: u8,
    level: u8,
    /// The evaluator's run counter when it was added (wrapping).
    run: u32,
}

/// An observation of the run being judged, classified, with its ordering key.
#[derive(Debug, Clone, Copy)]
struct Staged {
    level: u8,
    mark: u8,
    key: (Decimal, Decimal, Decimal),
}

/// The longest rule (12x) needs the 11 observations before the newest.
const KEEP: usize = 11;

/// Judges runs one after another against the history before them.
#[derive(Debug, Clone)]
pub struct Evaluator {
    rules: RuleSet,
    longest: usize,
    /// Per level (1–3): the last [`KEEP`] observations, oldest first.
    levels: [Vec<Obs>; 3],
    /// All levels interleaved (runs in order, levels in order within a run).
    across: Vec<Obs>,
    run: u32,
    staged: Vec<Staged>,
}

impl Evaluator {
    /// An evaluator with no history.
    pub fn new(rules: RuleSet) -> Evaluator {
        Evaluator {
            rules,
            longest: rules.longest_window(),
            levels: std::array::from_fn(|_| Vec::with_capacity(KEEP + 4)),
            across: Vec::with_capacity(KEEP + 8),
            run: 0,
            staged: Vec::with_capacity(8),
        }
    }

    /// The rule set.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Forgets the history (a new control lot, a documented recalibration).
    pub fn reset(&mut self) {
        self.levels.iter_mut().for_each(Vec::clear);
        self.across.clear();
    }

    /// Adds a past run to the history without judging it. Refused (and nothing kept) for an
    /// empty run or a level outside 1–3.
    pub fn push_history(&mut self, run: &[Observation]) -> Result<(), QcError> {
        self.stage(run)?;
        self.append();
        self.finish();
        Ok(())
    }

    /// Judges `run` against the history so far, then adds it to the history. Refused (nothing
    /// judged, nothing kept) for an empty run or a level outside 1–3.
    pub fn evaluate_run(&mut self, run: &[Observation]) -> Result<Verdict, QcError> {
        self.stage(run)?;
        let mut found = Found::default();
        let any_two = self.staged.iter().any(|s| s.mark & (P2 | N2) != 0);
        let gate_open = self.rules.mode == Mode::Modern || any_two;
        if (self.rules.contains(Rule::OneTwoS) || self.rules.mode == Mode::Classic) && any_two {
            for s in &self.staged {
                if s.mark & (P2 | N2) != 0 {
                    found.add(
                        Rule::OneTwoS,
                        Scope::WithinRun,
                        self.obs_ref(s.level, s.mark, self.run),
                    );
                }
            }
        }
        let (starts, across_start) = self.append();
        if gate_open {
            self.single_run_rules(&mut found);
            if self.longest > 0 {
                if self.rules.scope_enabled(Scope::WithinRun)
                    || self.rules.scope_enabled(Scope::AcrossMaterial)
                {
                    self.scan(&self.across, across_start, StreamKind::Across, &mut found);
                }
                if self.rules.scope_enabled(Scope::WithinMaterial) {
                    for (stream, start) in self.levels.iter().zip(starts) {
                        self.scan(stream, start, StreamKind::Level, &mut found);
                    }
                }
            }
        }
        self.finish();
        Ok(found.into_verdict())
    }

    /// Validates and classifies `run` into `self.staged`, ordered.
    fn stage(&mut self, run: &[Observation]) -> Result<(), QcError> {
        self.staged.clear();
        if run.is_empty() {
            return Err(QcError::EmptyRun);
        }
        for o in run {
            if !(1..=3).contains(&o.level) {
                self.staged.clear();
                return Err(QcError::LevelOutOfRange { level: o.level });
            }
            let mark = o.mark().inspect_err(|_| self.staged.clear())?;
            self.staged.push(Staged {
                level: o.level,
                mark,
                key: (o.value, o.target.mean, o.target.sd),
            });
        }
        if self.staged.len() > 1 {
            self.staged
                .sort_unstable_by(|a, b| a.level.cmp(&b.level).then_with(|| a.key.cmp(&b.key)));
        }
        Ok(())
    }

    /// Appends the staged run to the streams; returns where the run starts in each.
    fn append(&mut self) -> ([usize; 3], usize) {
        let starts = std::array::from_fn(|i| self.levels[i].len());
        let across_start = self.across.len();
        for s in &self.staged {
            let obs = Obs {
                mark: s.mark,
                level: s.level,
                run: self.run,
            };
            self.levels[usize::from(s.level - 1)].push(obs);
            self.across.push(obs);
        }
        (starts, across_start)
    }

    /// Trims the streams to what later runs can need and advances the run counter.
    fn finish(&mut self) {
        for v in self
            .levels
            .iter_mut()
            .chain(std::iter::once(&mut self.across))
        {
            if v.len() > KEEP {
                v.drain(..v.len() - KEEP);
            }
        }
        self.run = self.run.wrapping_add(1);
    }

    fn obs_ref(&self, level: u8, mark: u8, run: u32) -> ObsRef {
        ObsRef {
            runs_back: self.run.wrapping_sub(run),
            level,
            side: if mark & POS != 0 {
                Side::Above
            } else {
                Side::Below
            },
        }
    }

    /// 1-3s and R-4s on the current run.
    fn single_run_rules(&self, found: &mut Found) {
        if self.rules.contains(Rule::OneThreeS) {
            for s in &self.staged {
                if s.mark & (P3 | N3) != 0 {
                    found.add(
                        Rule::OneThreeS,
                        Scope::WithinRun,
                        self.obs_ref(s.level, s.mark, self.run),
                    );
                }
            }
        }
        if self.rules.contains(Rule::RFourS) {
            let high = self.staged.iter().any(|s| s.mark & P2 != 0);
            let low = self.staged.iter().any(|s| s.mark & N2 != 0);
            if high && low {
                for s in &self.staged {
                    if s.mark & (P2 | N2) != 0 {
                        found.add(
                            Rule::RFourS,
                            Scope::WithinRun,
                            self.obs_ref(s.level, s.mark, self.run),
                        );
                    }
                }
            }
        }
    }

    /// Judges every window of `stream` that ends at an observation of the current run (those
    /// from `start` on).
    fn scan(&self, stream: &[Obs], start: usize, kind: StreamKind, found: &mut Found) {
        let rules = &self.rules;
        for end in start..stream.len() {
            let mut and = 0xFFu8;
            let max = self.longest.min(end + 1);
            for len in 1..=max {
                let first = end + 1 - len;
                and &= stream[first].mark;
                let scope = match kind {
                    StreamKind::Across if first >= start => Scope::WithinRun,
                    StreamKind::Across => Scope::AcrossMaterial,
                    // A level's windows inside the current run are windows of the run itself.
                    StreamKind::Level if first >= start => continue,
                    StreamKind::Level => Scope::WithinMaterial,
                };
                if !rules.scope_enabled(scope) {
                    if and == 0 && len >= 3 {
                        break;
                    }
                    continue;
                }
                let window = &stream[first..=end];
                match len {
                    2 => {
                        if let Some(bits) = same(and, P2, N2) {
                            self.fire(found, Rule::TwoTwoS, scope, window, bits);
                        }
                    }
                    3 => {
                        if let Some(bits) = same(and, P1, N1) {
                            self.fire(found, Rule::ThreeOneS, scope, window, bits);
                        }
                        if rules.contains(Rule::TwoOfThreeTwoS) {
                            let count = |b: u8| window.iter().filter(|o| o.mark & b != 0).count();
                            for bit in [P2, N2] {
                                if count(bit) >= 2 {
                                    self.fire(found, Rule::TwoOfThreeTwoS, scope, window, bit);
                                }
                            }
                        }
                    }
                    4 => {
                        if let Some(bits) = same(and, P1, N1) {
                            self.fire(found, Rule::FourOneS, scope, window, bits);
                        }
                    }
                    6 | 8 | 9 | 10 | 12 => {
                        if let Some(bits) = same(and, POS, NEG) {
                            let rule = match len {
                                6 => Rule::SixX,
                                8 => Rule::EightX,
                                9 => Rule::NineX,
                                10 => Rule::TenX,
                                _ => Rule::TwelveX,
                            };
                            self.fire(found, rule, scope, window, bits);
                        }
                    }
                    _ => {}
                }
                // Every rule from here on needs all of its window on one side.
                if and & (POS | NEG) == 0 && len >= 3 {
                    break;
                }
            }
        }
    }

    /// Records a fired window rule (if selected) with the observations carrying `bit`.
    fn fire(&self, found: &mut Found, rule: Rule, scope: Scope, window: &[Obs], bit: u8) {
        if !self.rules.contains(rule) {
            return;
        }
        for o in window {
            if o.mark & bit != 0 {
                found.add(rule, scope, self.obs_ref(o.level, o.mark, o.run));
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum StreamKind {
    Level,
    Across,
}

/// `Some(bit)` when every observation of the window carries `above` or every one `below`.
fn same(and: u8, above: u8, below: u8) -> Option<u8> {
    if and & above != 0 {
        Some(above)
    } else if and & below != 0 {
        Some(below)
    } else {
        None
    }
}

/// Findings gathered while judging one run, one per (rule, scope).
#[derive(Default)]
struct Found {
    findings: Vec<Finding>,
}

impl Found {
    fn add(&mut self, rule: Rule, scope: Scope, obs: ObsRef) {
        match self
            .findings
            .iter_mut()
            .find(|f| f.rule == rule && f.scope == scope)
        {
            Some(f) => f.observations.push(obs),
            None => self.findings.push(Finding {
                rule,
                scope,
                observations: vec![obs],
            }),
        }
    }

    fn into_verdict(mut self) -> Verdict {
        self.findings.sort_by_key(|f| (f.rule, f.scope));
        for f in &mut self.findings {
            f.observations.sort_unstable();
            f.observations.dedup();
        }
        let (warnings, violations): (Vec<Finding>, Vec<Finding>) =
            self.findings.into_iter().partition(|f| !f.rule.rejects());
        Verdict {
            accepted: violations.is_empty(),
            warnings,
            violations,
        }
    }
}

/// Judges `run` against `history` (earlier runs, oldest first) with `rules`: a new
/// [`Evaluator`] given the history, then the run. Refused for an empty run or a level outside
/// 1–3 anywhere.
pub fn evaluate(
    history: &[Vec<Observation>],
    run: &[Observation],
    rules: &RuleSet,
) -> Result<Verdict, QcError> {
    let mut evaluator = Evaluator::new(*rules);
    for past in history {
        evaluator.push_history(past)?;
    }
    evaluator.evaluate_run(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    /// Glucose-like control: mean 100, SD 2.5 (so z·SD is exact).
    fn target() -> Target {
        Target::new(d("100"), d("2.5")).unwrap()
    }

    /// A run of z-scores for levels 1, 2, 3… in order.
    fn run(zs: &[&str]) -> Vec<Observation> {
        zs.iter()
            .enumerate()
            .map(|(i, z)| {
                let t = target();
                Observation::new(i as u8 + 1, t.mean() + d(z) * t.sd(), t)
            })
            .collect()
    }

    fn history(runs: &[&[&str]]) -> Vec<Vec<Observation>> {
        runs.iter().map(|r| run(r)).collect()
    }

    /// "accept" / "reject", then `w:<rule>@<scope>` per warning and `<rule>@<scope>` per violation.
    fn show(v: &Verdict) -> String {
        let mut out = vec![if v.accepted { "accept" } else { "reject" }.to_owned()];
        for f in &v.warnings {
            out.push(format!("w:{}@{}", f.rule.code(), f.scope.code()));
        }
        for f in &v.violations {
            out.push(format!("{}@{}", f.rule.code(), f.scope.code()));
        }
        out.join(" ")
    }

    fn rules(mode: Mode, codes: &[&str]) -> RuleSet {
        let rules: Vec<Rule> = codes.iter().map(|c| Rule::parse(c).unwrap()).collect();
        RuleSet::new(mode, &rules).unwrap()
    }

    fn modern() -> RuleSet {
        RuleSet::modern_two_level()
    }
    fn modern_warn() -> RuleSet {
        RuleSet::modern_two_level().with_rule(Rule::OneTwoS)
    }
    fn legacy_10x() -> RuleSet {
        rules(Mode::Modern, &["1-3s", "2-2s", "R-4s", "4-1s", "10x"])
    }
    fn classic() -> RuleSet {
        RuleSet::classic_two_level()
    }
    fn three() -> RuleSet {
        RuleSet::three_level()
    }
    fn no_across() -> RuleSet {
        modern().with_scopes(&[Scope::WithinRun, Scope::WithinMaterial])
    }

    type Case = (
        &'static str,
        fn() -> RuleSet,
        &'static [&'static [&'static str]],
        &'static [&'static str],
        &'static str,
    );

    const P8: &[&[&str]] = &[
        &["0.2", "0"],
        &["0.3", "0"],
        &["0.25", "0"],
        &["0.2", "0"],
        &["0.3", "0"],
        &["0.2", "0"],
        &["0.3", "0"],
    ];
    const P10: &[&[&str]] = &[
        &["0.2", "0"],
        &["0.3", "0"],
        &["0.25", "0"],
        &["0.2", "0"],
        &["0.3", "0"],
        &["0.2", "0"],
        &["0.3", "0"],
        &["0.2", "0"],
        &["0.3", "0"],
    ];

    #[test]
    fn westgard_case_table() {
        // name, rule set, history (z per run, levels 1..), current run → verdict
        let cases: &[Case] = &[
            // DOMAIN §1.9 vectors A–O (modern 2-control unless noted)
            ("A", modern, &[], &["3.2", "0.1"], "reject 1-3s@within_run"),
            ("B: 3.0 is not > 3", modern, &[], &["3.0", "0.1"], "accept"),
            ("C", modern, &[], &["2.3", "2.1"], "reject 2-2s@within_run"),
            (
                "D",
                modern,
                &[&["2.4", "0.2"]],
                &["2.2", "-0.3"],
                "reject 2-2s@within_material",
            ),
            ("E", modern, &[], &["2.1", "-2.1"], "reject R-4s@within_run"),
            (
                "F: Westgard R-4s, not Bio-Rad's range",
                modern,
                &[],
                &["2.8", "-1.3"],
                "accept",
            ),
            (
                "G: R-4s never across runs",
                modern,
                &[&["2.5", "0.0"]],
                &["-2.5", "0.0"],
                "accept",
            ),
            (
                "H",
                modern,
                &[&["1.2", "1.5"]],
                &["1.1", "1.3"],
                "reject 4-1s@across_material",
            ),
            (
                "H within-material only",
                no_across,
                &[&["1.2", "1.5"]],
                &["1.1", "1.3"],
                "accept",
            ),
            (
                "I",
                modern,
                &[&["1.2", "0"], &["1.5", "0"], &["1.1", "0"]],
                &["1.3", "0"],
                "reject 4-1s@within_material",
            ),
            ("J", modern, P8, &["0.25", "0"], "reject 8x@within_material"),
            (
                "J minus one run",
                modern,
                &P8[1..],
                &["0.25", "0"],
                "accept",
            ),
            (
                "K",
                legacy_10x,
                P10,
                &["0.2", "0"],
                "reject 10x@within_material",
            ),
            (
                "K minus one run",
                legacy_10x,
                &P10[1..],
                &["0.2", "0"],
                "accept",
            ),
            (
                "L: case I in classic mode",
                classic,
                &[&["1.2", "0"], &["1.5", "0"], &["1.1", "0"]],
                &["1.3", "0"],
                "accept",
            ),
            (
                "M",
                three,
                &[],
                &["2.2", "2.4", "0.1"],
                "reject 2of3-2s@within_run",
            ),
            (
                "N",
                three,
                &[],
                &["1.2", "1.4", "1.1"],
                "reject 3-1s@within_run",
            ),
            (
                "O",
                three,
                &[
                    &["0.2", "0", "0"],
                    &["0.3", "0", "0"],
                    &["0.1", "0", "0"],
                    &["0.2", "0", "0"],
                    &["0.4", "0", "0"],
                ],
                &["0.2", "0", "0"],
                "reject 6x@within_material",
            ),
            (
                "O minus one run",
                three,
                &[
                    &["0.3", "0", "0"],
                    &["0.1", "0", "0"],
                    &["0.2", "0", "0"],
                    &["0.4", "0", "0"],
                ],
                &["0.2", "0", "0"],
                "accept",
            ),
            // 1-2s: a warning, strict
            (
                "1-2s warns",
                modern_warn,
                &[],
                &["2.01", "0"],
                "accept w:1-2s@within_run",
            ),
            (
                "1-2s below",
                modern_warn,
                &[],
                &["0", "-2.01"],
                "accept w:1-2s@within_run",
            ),
            (
                "1-2s at exactly 2.00",
                modern_warn,
                &[],
                &["2.00", "-2.00"],
                "accept",
            ),
            (
                "1-2s not selected in modern",
                modern,
                &[],
                &["2.5", "0"],
                "accept",
            ),
            (
                "classic gate opens: warning only",
                classic,
                &[],
                &["2.5", "0"],
                "accept w:1-2s@within_run",
            ),
            (
                "classic gate, 1-2s not listed",
                || rules(Mode::Classic, &["1-3s", "2-2s"]),
                &[],
                &["2.5", "0"],
                "accept w:1-2s@within_run",
            ),
            // 1-3s
            (
                "1-3s below",
                modern,
                &[],
                &["0", "-3.01"],
                "reject 1-3s@within_run",
            ),
            (
                "1-3s at exactly -3.00",
                modern,
                &[],
                &["0", "-3.00"],
                "accept",
            ),
            (
                "1-3s both levels, one finding",
                modern,
                &[],
                &["3.5", "3.2"],
                "reject 1-3s@within_run 2-2s@within_run",
            ),
            (
                "1-3s in classic",
                classic,
                &[],
                &["3.2", "0"],
                "reject w:1-2s@within_run 1-3s@within_run",
            ),
            (
                "3.00 in classic is a warning",
                classic,
                &[],
                &["3.00", "0"],
                "accept w:1-2s@within_run",
            ),
            (
                "1-3s does not re-fire",
                modern,
                &[&["3.5", "0"]],
                &["0.1", "-0.1"],
                "accept",
            ),
            // 2-2s
            (
                "2-2s below within run",
                modern,
                &[],
                &["-2.1", "-2.2"],
                "reject 2-2s@within_run",
            ),
            ("2-2s boundary", modern, &[], &["2.00", "2.5"], "accept"),
            (
                "2-2s needs the same side",
                modern,
                &[],
                &["2.5", "-2.5"],
                "reject R-4s@within_run",
            ),
            (
                "2-2s across runs, other side",
                modern,
                &[&["2.4", "0"]],
                &["-2.2", "0"],
                "accept",
            ),
            (
                "2-2s across runs, boundary",
                modern,
                &[&["2.00", "0"]],
                &["2.2", "0"],
                "accept",
            ),
            (
                "2-2s level 2 across runs, below",
                modern,
                &[&["0", "-2.4"]],
                &["0", "-2.2"],
                "reject 2-2s@within_material",
            ),
            (
                "2-2s previous L2 then this L1",
                modern,
                &[&["0", "2.5"]],
                &["2.5", "0"],
                "reject 2-2s@across_material",
            ),
            (
                "2-2s previous L1 then this L2: not consecutive",
                modern,
                &[&["2.5", "0"]],
                &["0", "2.5"],
                "accept",
            ),
            (
                "2-2s does not re-fire",
                modern,
                &[&["2.5", "2.5"]],
                &["0.5", "0.5"],
                "accept",
            ),
            // R-4s
            ("R-4s boundary", modern, &[], &["2.00", "-2.5"], "accept"),
            (
                "R-4s with 1-3s",
                modern,
                &[],
                &["3.5", "-2.5"],
                "reject 1-3s@within_run R-4s@within_run",
            ),
            (
                "R-4s not across runs",
                modern,
                &[&["2.5", "0"]],
                &["0", "-2.5"],
                "accept",
            ),
            (
                "R-4s three levels",
                three,
                &[],
                &["2.1", "0", "-2.1"],
                "reject R-4s@within_run",
            ),
            // 4-1s
            (
                "4-1s boundary 1.00",
                modern,
                &[&["1.0", "1.5"]],
                &["1.5", "1.5"],
                "accept",
            ),
            (
                "4-1s needs the same side",
                modern,
                &[&["1.2", "-1.5"]],
                &["1.1", "1.3"],
                "accept",
            ),
            (
                "4-1s below",
                modern,
                &[&["-1.2", "-1.5"]],
                &["-1.1", "-1.3"],
                "reject 4-1s@across_material",
            ),
            (
                "4-1s window ending at this run's level 1",
                modern,
                &[&["0", "1.2"], &["1.3", "1.4"]],
                &["1.1", "0"],
                "reject 4-1s@across_material",
            ),
            (
                "4-1s within material, mean breaks nothing else",
                modern,
                &[&["-1.2", "0"], &["-1.5", "0"], &["-1.1", "0"]],
                &["-1.3", "0"],
                "reject 4-1s@within_material",
            ),
            (
                "4-1s three runs only",
                modern,
                &[&["1.5", "0"], &["1.1", "0"]],
                &["1.3", "0"],
                "accept",
            ),
            // n_x
            (
                "8x across materials",
                modern,
                &[&["0.5", "0.3"], &["0.5", "0.3"], &["0.5", "0.3"]],
                &["0.5", "0.3"],
                "reject 8x@across_material",
            ),
            (
                "8x below",
                modern,
                &[&["-0.5", "-0.3"], &["-0.5", "-0.3"], &["-0.5", "-0.3"]],
                &["-0.5", "-0.3"],
                "reject 8x@across_material",
            ),
            (
                "8x broken by a value on the mean",
                modern,
                &[&["0.5", "0.3"], &["0.5", "0.0"], &["0.5", "0.3"]],
                &["0.5", "0.3"],
                "accept",
            ),
            (
                "8x broken by the other side",
                modern,
                &[&["0.5", "0.3"], &["0.5", "-0.01"], &["0.5", "0.3"]],
                &["0.5", "0.3"],
                "accept",
            ),
            (
                "12x",
                || rules(Mode::Modern, &["1-3s", "12x"]),
                &[
                    &["0.1", "0.1"],
                    &["0.1", "0.1"],
                    &["0.1", "0.1"],
                    &["0.1", "0.1"],
                    &["0.1", "0.1"],
                ],
                &["0.1", "0.1"],
                "reject 12x@across_material",
            ),
            (
                "12x with 11",
                || rules(Mode::Modern, &["1-3s", "12x"]),
                &[
                    &["0.1", "0.1"],
                    &["0.1", "0.1"],
                    &["0.1", "0.1"],
                    &["0.1", "0.1"],
                    &["0.1", "0.1"],
                ],
                &["0.1", "-0.1"],
                "accept",
            ),
            (
                "9x three levels",
                || rules(Mode::Modern, &["1-3s", "9x"]),
                &[&["0.1", "0.2", "0.3"], &["0.1", "0.2", "0.3"]],
                &["0.1", "0.2", "0.3"],
                "reject 9x@across_material",
            ),
            (
                "6x over two runs of three",
                three,
                &[&["0.1", "0.2", "0.3"]],
                &["0.4", "0.5", "0.6"],
                "reject 6x@across_material",
            ),
            (
                "10x over five runs of two",
                legacy_10x,
                &[
                    &["0.1", "0.2"],
                    &["0.1", "0.2"],
                    &["0.1", "0.2"],
                    &["0.1", "0.2"],
                ],
                &["0.1", "0.2"],
                "reject 10x@across_material",
            ),
            // 2of3-2s
            (
                "2of3-2s levels 1 and 3",
                three,
                &[],
                &["2.1", "0", "2.2"],
                "reject 2of3-2s@within_run",
            ),
            (
                "2of3-2s boundary",
                three,
                &[],
                &["2.0", "2.5", "0"],
                "accept",
            ),
            (
                "2of3-2s needs the same limit",
                three,
                &[],
                &["2.1", "-2.2", "0.5"],
                "reject R-4s@within_run",
            ),
            (
                "2of3-2s within material",
                three,
                &[&["2.5", "0", "0"], &["0", "0", "0"]],
                &["2.5", "0", "0"],
                "reject 2of3-2s@within_material",
            ),
            (
                "2of3-2s needs three observations",
                || rules(Mode::Modern, &["2of3-2s"]),
                &[],
                &["2.5", "2.5"],
                "accept",
            ),
            // 3-1s
            (
                "3-1s boundary",
                three,
                &[],
                &["1.0", "1.4", "1.1"],
                "accept",
            ),
            (
                "3-1s below",
                three,
                &[],
                &["-1.2", "-1.4", "-1.1"],
                "reject 3-1s@within_run",
            ),
            (
                "3-1s within material",
                three,
                &[&["1.5", "0", "0"], &["1.2", "0", "0"]],
                &["1.1", "0", "0"],
                "reject 3-1s@within_material",
            ),
            // classic vs modern
            (
                "classic: 4-1s pattern under 2 SD is not acted on",
                classic,
                &[&["1.2", "1.5"]],
                &["1.1", "1.3"],
                "accept",
            ),
            (
                "classic: gate opens, history rules judge",
                classic,
                &[&["1.2", "1.5"]],
                &["2.1", "1.3"],
                "reject w:1-2s@within_run 4-1s@across_material",
            ),
            (
                "classic three-level",
                || three().with_mode(Mode::Classic),
                &[],
                &["1.2", "1.4", "1.1"],
                "accept",
            ),
            (
                "classic three-level, gate open",
                || three().with_mode(Mode::Classic),
                &[],
                &["1.2", "2.4", "1.1"],
                "reject w:1-2s@within_run 3-1s@within_run",
            ),
            // replicates of one level
            ("a run of one level", modern, &[], &["2.5"], "accept"),
            // scopes
            (
                "within-run scope off",
                || modern().with_scopes(&[Scope::WithinMaterial, Scope::AcrossMaterial]),
                &[],
                &["2.3", "2.1"],
                "accept",
            ),
            (
                "within-material scope off",
                || modern().with_scopes(&[Scope::WithinRun, Scope::AcrossMaterial]),
                &[&["2.4", "0.2"]],
                &["2.2", "-0.3"],
                "accept",
            ),
            (
                "scopes never switch 1-3s off",
                || modern().with_scopes(&[]),
                &[],
                &["3.2", "0"],
                "reject 1-3s@within_run",
            ),
        ];
        for (name, rule_set, past, current, want) in cases {
            let got = evaluate(&history(past), &run(current), &rule_set()).unwrap();
            assert_eq!(show(&got), *want, "case {name}");
            assert_eq!(got.accepted, got.violations.is_empty(), "case {name}");
        }
    }

    #[test]
    fn replicates_of_one_level() {
        let t = target();
        let two = |a: &str, b: &str| {
            vec![
                Observation::new(1, t.mean() + d(a) * t.sd(), t),
                Observation::new(1, t.mean() + d(b) * t.sd(), t),
            ]
        };
        let v = evaluate(&[], &two("2.5", "2.2"), &modern()).unwrap();
        assert_eq!(show(&v), "reject 2-2s@within_run");
        let v = evaluate(&[two("0.5", "2.2")], &two("2.5", "0.1"), &modern()).unwrap();
        // Ordered by value within a level: 0.5, 2.2 | 0.1, 2.5 → (2.2, 0.1) then (0.1, 2.5).
        assert_eq!(show(&v), "accept");
    }

    #[test]
    fn boundaries_with_an_sd_that_does_not_divide_evenly() {
        // SD 2.739 (DOMAIN §1.7): a value of exactly mean + 2 SD is not beyond 2 SD.
        let t = Target::new(d("100"), d("2.739")).unwrap();
        let at = |v: &str| vec![Observation::new(1, d(v), t), Observation::new(2, d(v), t)];
        let rs = modern_warn();
        assert_eq!(show(&evaluate(&[], &at("105.478"), &rs).unwrap()), "accept");
        assert_eq!(
            show(&evaluate(&[], &at("105.4780000001"), &rs).unwrap()),
            "reject w:1-2s@within_run 2-2s@within_run"
        );
        assert_eq!(
            show(&evaluate(&[], &at("108.217"), &rs).unwrap()),
            "reject w:1-2s@within_run 2-2s@within_run"
        );
        assert_eq!(
            show(&evaluate(&[], &at("108.2170001"), &rs).unwrap()),
            "reject w:1-2s@within_run 1-3s@within_run 2-2s@within_run"
        );
        // z of 106 is 2.19…: a 1-2s warning only (DOMAIN §1.7).
        let o = Observation::new(1, d("106"), t);
        assert_eq!(o.z().round_dp(2), d("2.19"));
    }

    #[test]
    fn each_observation_is_judged_with_its_own_target() {
        // Level 1 at 105 was beyond 2 SD under the old target (SD 2), not under the new (SD 3):
        // history is never re-judged with new limits.
        let old = Target::new(d("100"), d("2")).unwrap();
        let new = Target::new(d("100"), d("3")).unwrap();
        let past = vec![vec![
            Observation::new(1, d("105"), old),
            Observation::new(2, d("100"), old),
        ]];
        let now = [
            Observation::new(1, d("106.5"), new),
            Observation::new(2, d("100"), new),
        ];
        assert_eq!(
            show(&evaluate(&past, &now, &modern()).unwrap()),
            "reject 2-2s@within_material"
        );
        let past_new = vec![vec![
            Observation::new(1, d("105"), new),
            Observation::new(2, d("100"), new),
        ]];
        assert_eq!(
            show(&evaluate(&past_new, &now, &modern()).unwrap()),
            "accept"
        );
    }

    #[test]
    fn findings_name_their_observations() {
        let v = evaluate(
            &history(&[&["2.4", "0.2"]]),
            &run(&["2.2", "-0.3"]),
            &modern(),
        )
        .unwrap();
        let f = &v.violations[0];
        assert_eq!(
            f.observations,
            vec![
                ObsRef {
                    runs_back: 0,
                    level: 1,
                    side: Side::Above
                },
                ObsRef {
                    runs_back: 1,
                    level: 1,
                    side: Side::Above
                },
            ]
        );
        assert_eq!(
            f.description(),
            "2-2s across runs: level 1 beyond +2 SD in this run and the previous one"
        );
        let v = evaluate(&[], &run(&["2.1", "-2.1"]), &modern()).unwrap();
        assert_eq!(
            v.violations[0].description(),
            "R-4s within the run: level 1 beyond +2 SD in this run; level 2 beyond -2 SD in this run"
        );
        let v = evaluate(
            &history(&[&["1.2", "1.5"]]),
            &run(&["1.1", "1.3"]),
            &modern(),
        )
        .unwrap();
        assert_eq!(
            v.violations[0].description(),
            "4-1s across runs and levels: level 1 beyond +1 SD in this run and the previous one; \
             level 2 beyond +1 SD in this run and the previous one"
        );
        let v = evaluate(&history(P8), &run(&["0.25", "0"]), &modern()).unwrap();
        assert_eq!(
            v.violations[0].description(),
            "8x across runs: level 1 above the mean in this run and the 7 previous ones"
        );
    }

    #[test]
    fn the_evaluator_keeps_history_between_runs() {
        let mut e = Evaluator::new(modern());
        let runs = [["2.4", "0.2"], ["2.2", "-0.3"], ["0.1", "0.1"]];
        let got: Vec<String> = runs
            .iter()
            .map(|r| show(&e.evaluate_run(&run(r)).unwrap()))
            .collect();
        assert_eq!(got, ["accept", "reject 2-2s@within_material", "accept"]);
        e.reset();
        assert_eq!(
            show(&e.evaluate_run(&run(&["2.2", "0"])).unwrap()),
            "accept"
        );
    }

    #[test]
    fn refusals() {
        let t = target();
        let mut e = Evaluator::new(modern());
        for level in [0u8, 4, 255] {
            let err = e
                .evaluate_run(&[
                    Observation::new(1, d("100"), t),
                    Observation::new(level, d("100"), t),
                ])
                .unwrap_err();
            assert_eq!(
                (err.code(), err.field()),
                ("qc_level_out_of_range", Some("level"))
            );
            assert!(err.to_string().contains(&level.to_string()));
        }
        assert_eq!(e.evaluate_run(&[]).unwrap_err().code(), "qc_run_empty");
        assert_eq!(e.push_history(&[]).unwrap_err().code(), "qc_run_empty");
        // Nothing refused was kept: level 1 at +2.5 now is no 2-2s with anything before.
        e.push_history(&run(&["0", "0"])).unwrap();
        assert_eq!(
            show(&e.evaluate_run(&run(&["2.5", "0"])).unwrap()),
            "accept"
        );

        for sd in ["0", "-0.1"] {
            let err = Target::new(d("100"), d(sd)).unwrap_err();
            assert_eq!(
                (err.code(), err.field()),
                ("qc_sd_not_positive", Some("sd"))
            );
        }
        let err = Target::new(d("100"), Decimal::MAX).unwrap_err();
        assert_eq!((err.code(), err.field()), ("qc_overflow", Some("sd")));
        let err = evaluate(
            &[],
            &[Observation::new(
                1,
                Decimal::MAX,
                Target::new(d("-10"), d("1")).unwrap(),
            )],
            &modern(),
        )
        .unwrap_err();
        assert_eq!((err.code(), err.field()), ("qc_overflow", Some("value")));

        let err = RuleSet::new(Mode::Modern, &[Rule::OneTwoS]).unwrap_err();
        assert_eq!(
            (err.code(), err.field()),
            ("qc_no_rejection_rule", Some("rules"))
        );
        assert_eq!(
            RuleSet::new(Mode::Classic, &[]).unwrap_err().code(),
            "qc_no_rejection_rule"
        );
    }

    #[test]
    fn rule_spellings() {
        let codes: Vec<&str> = Rule::ALL.iter().map(Rule::code).collect();
        assert_eq!(
            codes,
            [
                "1-2s", "1-3s", "2-2s", "R-4s", "4-1s", "10x", "8x", "12x", "2of3-2s", "3-1s",
                "6x", "9x"
            ]
        );
        for r in Rule::ALL {
            assert_eq!(Rule::parse(r.code()), Ok(r));
            assert_eq!(r.to_string(), r.code());
        }
        for (text, rule) in [
            ("1_3s", Rule::OneThreeS),
            ("r-4s", Rule::RFourS),
            ("R_4s", Rule::RFourS),
            (" 10_x ", Rule::TenX),
            ("2OF3_2S", Rule::TwoOfThreeTwoS),
            ("12X", Rule::TwelveX),
        ] {
            assert_eq!(Rule::parse(text), Ok(rule), "{text}");
        }
        for bad in ["", "2-2", "7T", "1-4s", "22s", "R4s", "10"] {
            let err = Rule::parse(bad).unwrap_err();
            assert_eq!(
                (err.code(), err.field()),
                ("qc_unknown_rule", Some("rules")),
                "{bad}"
            );
        }
        assert_eq!(
            Scope::ALL.map(|s| s.code()),
            ["within_run", "within_material", "across_material"]
        );
        assert!(!Rule::OneTwoS.rejects());
        assert!(Rule::ALL[1..].iter().all(Rule::rejects));
    }

    #[test]
    fn presets() {
        let names = |r: RuleSet| r.rules().map(|r| r.code()).collect::<Vec<_>>().join(" ");
        assert_eq!(names(RuleSet::modern_two_level()), "1-3s 2-2s R-4s 4-1s 8x");
        assert_eq!(RuleSet::modern_two_level().mode(), Mode::Modern);
        assert_eq!(
            names(RuleSet::classic_two_level()),
            "1-2s 1-3s 2-2s R-4s 4-1s 10x"
        );
        assert_eq!(RuleSet::classic_two_level().mode(), Mode::Classic);
        assert_eq!(names(RuleSet::three_level()), "1-3s R-4s 2of3-2s 3-1s 6x");
        for s in Scope::ALL {
            assert!(RuleSet::modern_two_level().scope_enabled(s));
        }
    }

    // -----------------------------------------------------------------------------------------
    // Properties

    const ALL_RULES: u16 = (1 << 12) - 1;

    fn rule_set_strategy() -> impl Strategy<Value = RuleSet> {
        (1u16..=ALL_RULES, any::<bool>(), 1u8..8).prop_filter_map(
            "needs a rejection rule",
            |(bits, classic, scopes)| {
                let rules: Vec<Rule> = Rule::ALL
                    .into_iter()
                    .filter(|r| bits & r.bit() != 0)
                    .collect();
                let mode = if classic { Mode::Classic } else { Mode::Modern };
                let scopes: Vec<Scope> = Scope::ALL
                    .into_iter()
                    .filter(|s| scopes & s.bit() != 0)
                    .collect();
                RuleSet::new(mode, &rules)
                    .ok()
                    .map(|r| r.with_scopes(&scopes))
            },
        )
    }

    /// z in hundredths, often exactly on a limit.
    fn z_strategy() -> impl Strategy<Value = i64> {
        prop_oneof![
            -450i64..450,
            prop::sample::select(vec![-300i64, -200, -100, 0, 100, 200, 300]),
            prop::sample::select(vec![
                -301i64, -201, -101, 101, 201, 301, 250, -250, 150, -150
            ]),
        ]
    }

    /// Runs of `levels` observations as z hundredths.
    fn runs_strategy() -> impl Strategy<Value = (u8, Vec<Vec<i64>>)> {
        (2u8..=3).prop_flat_map(|levels| {
            (
                Just(levels),
                prop::collection::vec(prop::collection::vec(z_strategy(), levels as usize), 1..16),
            )
        })
    }

    fn observations(levels: u8, zs: &[i64], mean: Decimal, sd: Decimal) -> Vec<Observation> {
        let t = Target::new(mean, sd).unwrap();
        (1..=levels)
            .zip(zs)
            .map(|(l, &z)| Observation::new(l, mean + Decimal::new(z, 2) * sd, t))
            .collect()
    }

    fn judge_all(rules: RuleSet, runs: &[Vec<Observation>]) -> Vec<Verdict> {
        let mut e = Evaluator::new(rules);
        runs.iter().map(|r| e.evaluate_run(r).unwrap()).collect()
    }

    /// accepted, warnings' (rule, scope), violations' (rule, scope)
    type RulesOnly = (bool, Vec<(Rule, Scope)>, Vec<(Rule, Scope)>);

    fn rules_only(v: &Verdict) -> RulesOnly {
        (
            v.accepted,
            v.warnings.iter().map(|f| (f.rule, f.scope)).collect(),
            v.violations.iter().map(|f| (f.rule, f.scope)).collect(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn permuting_a_runs_observations_changes_nothing(
            rules in rule_set_strategy(),
            (levels, zs) in runs_strategy(),
            seed in any::<u64>(),
        ) {
            let runs: Vec<Vec<Observation>> =
                zs.iter().map(|z| observations(levels, z, d("5.4"), d("0.13"))).collect();
            let shuffled: Vec<Vec<Observation>> = runs
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let mut r = r.clone();
                    let k = (seed as usize).wrapping_add(i * 7);
                    let n = r.len();
                    r.rotate_left(k % n);
                    if (seed >> (i % 60)) & 1 == 1 {
                        r.reverse();
                    }
                    r
                })
                .collect();
            prop_assert_eq!(judge_all(rules, &runs), judge_all(rules, &shuffled));
        }

        #[test]
        fn scaling_value_mean_and_sd_changes_nothing(
            rules in rule_set_strategy(),
            (levels, zs) in runs_strategy(),
            factor in prop::sample::select(vec!["0.001", "0.5", "3", "7.25", "1000"]),
        ) {
            let c = d(factor);
            let runs: Vec<Vec<Observation>> =
                zs.iter().map(|z| observations(levels, z, d("140"), d("1.7"))).collect();
            let scaled: Vec<Vec<Observation>> =
                zs.iter().map(|z| observations(levels, z, d("140") * c, d("1.7") * c)).collect();
            // The scaled values are exactly c times the originals.
            for (a, b) in runs.iter().flatten().zip(scaled.iter().flatten()) {
                prop_assert_eq!(a.value * c, b.value);
            }
            prop_assert_eq!(judge_all(rules, &runs), judge_all(rules, &scaled));
        }

        #[test]
        fn within_one_sd_without_history_is_accepted_silently(
            rules in rule_set_strategy(),
            zs in prop::collection::vec(-100i64..=100, 1..=3),
        ) {
            let run = observations(zs.len() as u8, &zs, d("100"), d("2.5"));
            let v = evaluate(&[], &run, &rules).unwrap();
            prop_assert!(v.accepted);
            prop_assert!(v.warnings.is_empty() && v.violations.is_empty(), "{:?}", v);
        }

        #[test]
        fn one_two_s_never_rejects(
            rules in rule_set_strategy(),
            (levels, zs) in runs_strategy(),
        ) {
            let runs: Vec<Vec<Observation>> =
                zs.iter().map(|z| observations(levels, z, d("100"), d("2.5"))).collect();
            let with = judge_all(rules.with_rule(Rule::OneTwoS), &runs);
            let bits = rules.rules().filter(|r| *r != Rule::OneTwoS).collect::<Vec<_>>();
            let scopes: Vec<Scope> = Scope::ALL.into_iter().filter(|s| rules.scope_enabled(*s)).collect();
            let without = judge_all(RuleSet::new(rules.mode(), &bits).unwrap().with_scopes(&scopes), &runs);
            for (a, b) in with.iter().zip(&without) {
                prop_assert!(a.violations.iter().all(|f| f.rule != Rule::OneTwoS));
                prop_assert!(a.warnings.iter().all(|f| f.rule == Rule::OneTwoS));
                prop_assert_eq!(a.accepted, b.accepted);
                prop_assert_eq!(&a.violations, &b.violations);
            }
        }

        #[test]
        fn mirrored_sequences_fire_the_same_rules(
            rules in rule_set_strategy(),
            (levels, zs) in runs_strategy(),
        ) {
            let runs: Vec<Vec<Observation>> =
                zs.iter().map(|z| observations(levels, z, d("100"), d("2.5"))).collect();
            let mirrored: Vec<Vec<Observation>> = zs
                .iter()
                .map(|z| observations(levels, &z.iter().map(|x| -x).collect::<Vec<_>>(), d("100"), d("2.5")))
                .collect();
            let a: Vec<_> = judge_all(rules, &runs).iter().map(rules_only).collect();
            let b: Vec<_> = judge_all(rules, &mirrored).iter().map(rules_only).collect();
            prop_assert_eq!(a, b);
        }

        #[test]
        fn evaluate_equals_the_evaluator_run_by_run(
            rules in rule_set_strategy(),
            (levels, zs) in runs_strategy(),
        ) {
            let runs: Vec<Vec<Observation>> =
                zs.iter().map(|z| observations(levels, z, d("100"), d("2.5"))).collect();
            let sequential = judge_all(rules, &runs);
            for (i, want) in sequential.iter().enumerate() {
                prop_assert_eq!(&evaluate(&runs[..i], &runs[i], &rules).unwrap(), want);
            }
        }
    }
}
