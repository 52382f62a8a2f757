//! `aliquot qc evaluate FILE.csv`: judge historical QC data with a Westgard rule set (issue 13
//! item 8), so a lab can check a new rule set against its past data before switching.
//!
//! The logic is [`evaluate_csv`], a function from the file's text to the JSON lines, tested
//! here and in `tests/qc_cli.rs`; the rules themselves are `aliquot_domain::qc::westgard`.

use std::path::PathBuf;

use aliquot_domain::qc::westgard::{
    Evaluator, Finding, Mode, Observation, Rule, RuleSet, Target, Verdict,
};
use anyhow::{Context, Result};
use rust_decimal::Decimal;

/// `aliquot qc …`
#[derive(Debug, clap::Subcommand)]
pub enum QcCommand {
    /// Judge each run of a CSV file of QC results with Westgard rules and print one JSON line
    /// per run.
    ///
    /// The file's header is exactly `run,level,value,mean,sd`; rows are in time order, and
    /// consecutive rows with the same `run` form one run (a run's rows must be consecutive).
    /// `level` is 1, 2 or 3; `value`, `mean` and `sd` are decimal numbers (`sd` above zero):
    /// each row carries the target mean and SD in force when it was measured. Each run is
    /// judged with all earlier runs of the file as its history (rejected runs included).
    ///
    /// Output, one line per run in file order:
    /// `{"run": "…", "accepted": true|false, "warnings": ["1-2s"], "violations": ["2-2s", …]}`
    /// (each rule once, in the order 1-2s, 1-3s, 2-2s, R-4s, 4-1s, 10x, 8x, 12x, 2of3-2s,
    /// 3-1s, 6x, 9x). Window rules are judged within the run, within each level across runs and
    /// across levels and runs. A bad row stops everything with an error naming its line and
    /// field, before anything is printed.
    Evaluate(EvaluateArgs),
}

/// The mode of `--mode`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    /// The 1-2s gate: rejection rules judge a run only when a control is beyond 2 SD.
    Classic,
    /// Every rule judges every run.
    Modern,
}

/// `aliquot qc evaluate`
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// The CSV file (header `run,level,value,mean,sd`).
    pub file: PathBuf,
    /// classic: rejection rules only when some control of the run is beyond 2 SD (a 1-2s
    /// warning is then reported); modern: every rule, every run.
    #[arg(long, value_enum, default_value = "modern")]
    pub mode: ModeArg,
    /// Comma-separated rules, e.g. `1-3s,2-2s,R-4s` (1-2s, 1-3s, 2-2s, R-4s, 4-1s, 10x, 8x,
    /// 12x, 2of3-2s, 3-1s, 6x, 9x; 1-2s only ever warns). Default: when the file has level 3,
    /// 1-3s,2of3-2s,R-4s,3-1s,6x; otherwise, in modern mode 1-3s,2-2s,R-4s,4-1s,8x, in classic
    /// mode 1-2s,1-3s,2-2s,R-4s,4-1s,10x.
    #[arg(long, value_delimiter = ',', value_parser = parse_rule)]
    pub rules: Option<Vec<Rule>>,
}

fn parse_rule(text: &str) -> Result<Rule, String> {
    Rule::parse(text).map_err(|e| e.to_string())
}

/// Runs `aliquot qc …`.
pub fn run(cmd: QcCommand) -> Result<()> {
    match cmd {
        QcCommand::Evaluate(args) => {
            let text = std::fs::read_to_string(&args.file)
                .with_context(|| format!("cannot read {}", args.file.display()))?;
            let mode = match args.mode {
                ModeArg::Classic => Mode::Classic,
                ModeArg::Modern => Mode::Modern,
            };
            let lines = evaluate_csv(&text, mode, args.rules.as_deref())
                .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
            out!("{lines}")?;
            Ok(())
        }
    }
}

/// One run of the file.
struct CsvRun {
    id: String,
    line: usize,
    observations: Vec<Observation>,
}

/// The JSON lines for the CSV `text`, or an error naming the line and field.
pub fn evaluate_csv(text: &str, mode: Mode, rules: Option<&[Rule]>) -> Result<String, String> {
    let runs = parse_runs(text)?;
    let rule_set = match rules {
        Some(rules) => RuleSet::new(mode, rules).map_err(|e| format!("--rules: {e}"))?,
        None => {
            let three = runs
                .iter()
                .flat_map(|r| &r.observations)
                .any(|o| o.level == 3);
            match (three, mode) {
                (true, mode) => RuleSet::three_level().with_mode(mode),
                (false, Mode::Classic) => RuleSet::classic_two_level(),
                (false, Mode::Modern) => RuleSet::modern_two_level(),
            }
        }
    };
    let mut evaluator = Evaluator::new(rule_set);
    let mut out = String::new();
    for run in &runs {
        let verdict = evaluator
            .evaluate_run(&run.observations)
            .map_err(|e| format!("run {:?} (line {}): {e}", run.id, run.line))?;
        out.push_str(&json_line(&run.id, &verdict));
        out.push('\n');
    }
    Ok(out)
}

/// `{"run": "…", "accepted": …, "warnings": […], "violations": […]}`
fn json_line(run: &str, v: &Verdict) -> String {
    let list = |findings: &[Finding]| {
        Verdict::rules(findings)
            .iter()
            .map(|r| format!("\"{}\"", r.code()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{{\"run\": {}, \"accepted\": {}, \"warnings\": [{}], \"violations\": [{}]}}",
        serde_json::Value::String(run.to_owned()),
        v.accepted,
        list(&v.warnings),
        list(&v.violations),
    )
}

const HEADER: [&str; 5] = ["run", "level", "value", "mean", "sd"];

fn parse_runs(text: &str) -> Result<Vec<CsvRun>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (_, header) = lines.next().ok_or("the file is empty")?;
    let names = split_csv(header).map_err(|e| format!("line 1: {e}"))?;
    let names: Vec<&str> = names.iter().map(|n| n.trim()).collect();
    if names != HEADER {
        let problem = match HEADER.iter().find(|h| !names.contains(h)) {
            Some(missing) => format!("column {missing:?} is missing"),
            None => "the columns are not in that order or there are others".to_owned(),
        };
        return Err(format!(
            "line 1: the header must be exactly run,level,value,mean,sd; {problem}"
        ));
    }
    let mut runs: Vec<CsvRun> = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields = split_csv(line).map_err(|e| format!("line {n}: {e}"))?;
        if fields.len() != HEADER.len() {
            return Err(format!(
                "line {n}: expected 5 fields (run,level,value,mean,sd), found {}",
                fields.len()
            ));
        }
        let field = |name: &str, problem: String| format!("line {n}, field {name}: {problem}");
        let id = fields[0].trim();
        if id.is_empty() {
            return Err(field("run", "empty".into()));
        }
        let level_text = fields[1].trim();
        let level = level_text
            .parse::<u8>()
            .ok()
            .filter(|l| (1..=3).contains(l))
            .ok_or_else(|| {
                field(
                    "level",
                    format!("{level_text:?} is not a control level (1, 2 or 3)"),
                )
            })?;
        let number = |i: usize| {
            let t = fields[i].trim();
            Decimal::from_str_exact(t)
                .map_err(|_| field(HEADER[i], format!("{t:?} is not a number")))
        };
        let (value, mean, sd) = (number(2)?, number(3)?, number(4)?);
        let target =
            Target::new(mean, sd).map_err(|e| field(e.field().unwrap_or("sd"), e.to_string()))?;
        let observation = Observation::new(level, value, target);
        match runs.last_mut() {
            Some(last) if last.id == id => last.observations.push(observation),
            _ => {
                if let Some(earlier) = runs.iter().find(|r| r.id == id) {
                    return Err(field(
                        "run",
                        format!(
                            "run {id:?} already appeared at line {}; the rows of a run must be consecutive",
                            earlier.line
                        ),
                    ));
                }
                runs.push(CsvRun {
                    id: id.to_owned(),
                    line: n,
                    observations: vec![observation],
                });
            }
        }
    }
    if runs.is_empty() {
        return Err("no QC rows after the header".into());
    }
    Ok(runs)
}

/// Splits one CSV line (RFC 4180 quoting: `"a,b"`, `"say ""hi"""`).
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cur.push('"');
                }
                '"' => quoted = false,
                _ => cur.push(c),
            }
        } else {
            match c {
                ',' => {
                    fields.push(std::mem::take(&mut cur));
                    was_quoted = false;
                }
                '"' if cur.trim().is_empty() && !was_quoted => {
                    cur.clear();
                    quoted = true;
                    was_quoted = true;
                }
                _ => cur.push(c),
            }
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    fields.push(cur);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "run,level,value,mean,sd\n\
        r1,1,100.5,100,2\n\
        r1,2,200,200,4\n\
        r2,1,104.8,100,2\n\
        r2,2,200.1,200,4\n\
        r3,1,104.2,100,2\n\
        r3,2,199,200,4\n";

    #[test]
    fn judges_each_run_with_the_earlier_ones() {
        let out = evaluate_csv(CSV, Mode::Modern, None).unwrap();
        assert_eq!(
            out,
            "{\"run\": \"r1\", \"accepted\": true, \"warnings\": [], \"violations\": []}\n\
             {\"run\": \"r2\", \"accepted\": true, \"warnings\": [], \"violations\": []}\n\
             {\"run\": \"r3\", \"accepted\": false, \"warnings\": [], \"violations\": [\"2-2s\"]}\n"
        );
        let out = evaluate_csv(CSV, Mode::Classic, None).unwrap();
        assert!(out.contains(
            "{\"run\": \"r2\", \"accepted\": true, \"warnings\": [\"1-2s\"], \"violations\": []}"
        ));
    }

    #[test]
    fn csv_fields_may_be_quoted() {
        assert_eq!(
            split_csv("a,\"b,c\",\"d \"\"e\"\"\"").unwrap(),
            ["a", "b,c", "d \"e\""]
        );
        assert!(split_csv("\"open").is_err());
        let out = evaluate_csv(
            "run,level,value,mean,sd\n\"2026-11-01, am\",1,100,100,2\n",
            Mode::Modern,
            None,
        )
        .unwrap();
        assert!(out.starts_with("{\"run\": \"2026-11-01, am\","));
    }
}
