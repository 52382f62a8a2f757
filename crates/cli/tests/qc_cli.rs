//! `aliquot qc evaluate FILE.csv` as a lab uses it: one JSON line per run, byte for byte; bad
//! input refused with the line and field named and a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn aliquot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aliquot"))
        .args(args)
        .output()
        .expect("run aliquot")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aliquot-qc-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Glucose controls, level 1 mean 100 SD 2.5, level 2 mean 300 SD 6; z per run:
/// r01 [0.2, 0.5]; r02 [2.4, −0.5]; r03 [2.4, 2.1] (rows given level 2 first): 2-2s;
/// r04 [−0.5, 0.5]; r05 [1.2, 1.2]; r06 [1.4, 1.3]: 4-1s across levels; r07 [−3.2, 2.0]:
/// 1-3s (2.0 is no 2s violation); r08 [3.0, 0] (3.0 is no 1-3s); r09 [−0.3, 0.3];
/// r10 [2.1, −2.1]: R-4s; r11–r14 [0.5, 0.3]: 8x at r14.
const GLUCOSE: &str = "run,level,value,mean,sd
r01,1,100.5,100,2.5
r01,2,303,300,6
r02,1,106,100,2.5
r02,2,297,300,6
r03,2,312.6,300,6
r03,1,106,100,2.5
r04,1,98.75,100,2.5
r04,2,303,300,6
r05,1,103,100,2.5
r05,2,307.2,300,6
r06,1,103.5,100,2.5
r06,2,307.8,300,6
r07,1,92,100,2.5
r07,2,312,300,6
r08,1,107.5,100,2.5
r08,2,300,300,6
r09,1,99.25,100,2.5
r09,2,301.8,300,6
r10,1,105.25,100,2.5
r10,2,287.4,300,6
r11,1,101.25,100,2.5
r11,2,301.8,300,6
r12,1,101.25,100,2.5
r12,2,301.8,300,6
r13,1,101.25,100,2.5
r13,2,301.8,300,6
r14,1,101.25,100,2.5
r14,2,301.8,300,6
";

fn line(run: &str, accepted: bool, warnings: &[&str], violations: &[&str]) -> String {
    let list = |l: &[&str]| {
        l.iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{{\"run\": \"{run}\", \"accepted\": {accepted}, \"warnings\": [{}], \"violations\": [{}]}}\n",
        list(warnings),
        list(violations)
    )
}

#[test]
fn evaluates_runs_as_json_lines() {
    let dir = temp_dir("ok");
    let file = write(&dir, "glucose.csv", GLUCOSE);
    let ok = |run| line(run, true, &[], &[]);
    let w = ["1-2s"];

    let modern = stdout(&aliquot(&["qc", "evaluate", &file]));
    // The exact text of one line, as issue 13 shows it.
    assert!(modern.starts_with(
        "{\"run\": \"r01\", \"accepted\": true, \"warnings\": [], \"violations\": []}\n"
    ));
    let want = [
        ok("r01"),
        ok("r02"),
        line("r03", false, &[], &["2-2s"]),
        ok("r04"),
        ok("r05"),
        line("r06", false, &[], &["4-1s"]),
        line("r07", false, &[], &["1-3s"]),
        ok("r08"),
        ok("r09"),
        line("r10", false, &[], &["R-4s"]),
        ok("r11"),
        ok("r12"),
        ok("r13"),
        line("r14", false, &[], &["8x"]),
    ];
    assert_eq!(modern, want.concat());

    let classic = stdout(&aliquot(&["qc", "evaluate", &file, "--mode", "classic"]));
    let want = [
        ok("r01"),
        line("r02", true, &w, &[]),
        line("r03", false, &w, &["2-2s"]),
        ok("r04"),
        ok("r05"),
        ok("r06"), // 4-1s under 2 SD: the classic gate stays closed
        line("r07", false, &w, &["1-3s"]),
        line("r08", true, &w, &[]),
        ok("r09"),
        line("r10", false, &w, &["R-4s"]),
        ok("r11"),
        ok("r12"),
        ok("r13"),
        ok("r14"),
    ];
    assert_eq!(classic, want.concat());

    let chosen = stdout(&aliquot(&[
        "qc",
        "evaluate",
        &file,
        "--rules",
        "1-2s,1-3s,R-4s",
    ]));
    let want = [
        ok("r01"),
        line("r02", true, &w, &[]),
        line("r03", true, &w, &[]),
        ok("r04"),
        ok("r05"),
        ok("r06"),
        line("r07", false, &w, &["1-3s"]),
        line("r08", true, &w, &[]),
        ok("r09"),
        line("r10", false, &w, &["R-4s"]),
        ok("r11"),
        ok("r12"),
        ok("r13"),
        ok("r14"),
    ];
    assert_eq!(chosen, want.concat());

    // Three levels: the three-level rules by default (z 2.5, 2.2, 0.1: 2of3-2s).
    let three = write(
        &dir,
        "three.csv",
        "run,level,value,mean,sd\nA,1,5.5,5,0.2\nA,2,10.44,10,0.2\nA,3,15.02,15,0.2\n",
    );
    assert_eq!(
        stdout(&aliquot(&["qc", "evaluate", &three])),
        "{\"run\": \"A\", \"accepted\": false, \"warnings\": [], \"violations\": [\"2of3-2s\"]}\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_refused_by_line_and_field() {
    let dir = temp_dir("bad");
    let header = "run,level,value,mean,sd\n";
    // file text, what stderr must say
    let cases: &[(&str, &str)] = &[
        (
            "run,level,value,mean\nr1,1,100,100,2\n",
            "line 1: the header must be exactly run,level,value,mean,sd; column \"sd\" is missing",
        ),
        ("run,level,result,mean,sd\n", "column \"value\" is missing"),
        ("", "the file is empty"),
        (header, "no QC rows after the header"),
        (
            "run,level,value,mean,sd\nr1,1,100,100,2\nr1,2,abc,200,4\n",
            "line 3, field value: \"abc\" is not a number",
        ),
        (
            "run,level,value,mean,sd\nr1,1,100,1OO,2\n",
            "line 2, field mean: \"1OO\" is not a number",
        ),
        (
            "run,level,value,mean,sd\nr1,1,100,100,0\n",
            "line 2, field sd: the target SD must be greater than zero; got 0",
        ),
        (
            "run,level,value,mean,sd\nr1,1,100,100,-2.5\n",
            "line 2, field sd: the target SD must be greater than zero; got -2.5",
        ),
        (
            "run,level,value,mean,sd\nr1,4,100,100,2\n",
            "line 2, field level: \"4\" is not a control level (1, 2 or 3)",
        ),
        (
            "run,level,value,mean,sd\nr1,0,100,100,2\n",
            "line 2, field level: \"0\" is not a control level (1, 2 or 3)",
        ),
        (
            "run,level,value,mean,sd\nr1,1,100,100\n",
            "line 2: expected 5 fields (run,level,value,mean,sd), found 4",
        ),
        (
            "run,level,value,mean,sd\nr1,1,100,100,2\nr2,1,100,100,2\nr1,2,100,100,2\n",
            "line 4, field run: run \"r1\" already appeared at line 2",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let file = write(&dir, &format!("bad{i}.csv"), text);
        let out = aliquot(&["qc", "evaluate", &file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} should fail");
        assert!(
            out.stdout.is_empty(),
            "case {i}: nothing printed before the error"
        );
        assert!(
            stderr.contains(want),
            "case {i}: {stderr:?} should contain {want:?}"
        );
    }
    let file = write(&dir, "ok.csv", "run,level,value,mean,sd\nr1,1,100,100,2\n");
    let out = aliquot(&["qc", "evaluate", &file, "--rules", "1-3s,7T"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown QC rule \"7T\""));
    let out = aliquot(&["qc", "evaluate", &file, "--rules", "1-2s"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one rejection rule"));
    let out = aliquot(&["qc", "evaluate", &file, "--mode", "strict"]);
    assert!(!out.status.success());
    let out = aliquot(&["qc", "evaluate", &dir.join("missing.csv").to_string_lossy()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let _ = std::fs::remove_dir_all(&dir);
}
