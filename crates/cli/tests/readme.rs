//! The README's walkthrough, run **as written** against `aliquot serve --demo` (the project's
//! rule: a newcomer can follow it). Every ```sh block of the "Try the API" section is taken
//! from README.md, its `127.0.0.1:8080` replaced by the test server's address, and run in
//! order in one `bash` with `set -euo pipefail` and a `curl` that fails on any 4xx/5xx
//! (`--fail-with-body`). A step that expects an error says so in the README, in a comment on
//! the line(s) before it: `(expect HTTP <status> <code>)`; it must answer exactly that error.
//! The README's `cargo run --release -q -- …` (the simulated analyzer) runs the test's own
//! build of the same binary, and its MLLP address `127.0.0.1:2575` is the test server's.

use std::process::{Command, Stdio};

use sqlx::migrate::MigrateDatabase;

mod common;
use common::Server;
const README: &str = include_str!("../../../README.md");
/// The section whose shell blocks are the walkthrough (up to the next `## ` heading).
const SECTION: &str = "## Try the API";
/// The address the README uses for the demo server.
const README_ADDR: &str = "127.0.0.1:8080";
/// The address the README uses for the demo server's MLLP listener.
const README_MLLP: &str = "127.0.0.1:2575";
/// In a comment, marks the next command as one that must answer an error, e.g.
/// `# … (expect HTTP 422 idempotency_key_reused):`.
const EXPECT: &str = "expect HTTP ";

/// The ```sh blocks of `section`, in order.
fn sh_blocks(readme: &str, section: &str) -> Vec<String> {
    let start = readme
        .find(&format!("\n{section}\n"))
        .unwrap_or_else(|| panic!("README.md has no `{section}` section"));
    let body = &readme[start + section.len() + 2..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in body.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(lines), "```") => {
                blocks.push(lines.join("\n"));
                current = None;
            }
            (Some(lines), _) => lines.push(line),
            (None, _) => {}
        }
    }
    assert!(
        current.is_none(),
        "an unterminated ```sh block in {section}"
    );
    blocks
}

/// A comment saying `(expect HTTP <status> <code>)` marks the command on the next line as one
/// that must answer exactly that error: its `curl` becomes `expect_error <status> <code>`.
fn mark_expected_errors(block: &str) -> String {
    let mut out = Vec::new();
    let mut expected: Option<(String, String)> = None;
    for line in block.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            if let Some(at) = line.find(EXPECT) {
                let mut words = line[at + EXPECT.len()..]
                    .split(|c: char| c.is_whitespace() || c == ')' || c == ':')
                    .filter(|w| !w.is_empty());
                let (Some(status), Some(code)) = (words.next(), words.next()) else {
                    panic!("`{EXPECT}` needs a status and an error code: {line}");
                };
                expected = Some((status.to_owned(), code.to_owned()));
            }
            out.push(line.to_owned());
            continue;
        }
        match expected.take() {
            Some((status, code)) => {
                let command = trimmed
                    .strip_prefix("curl ")
                    .unwrap_or_else(|| panic!("`{EXPECT}` must precede a curl command: {line}"));
                out.push(format!("expect_error {status} {code} {command}"));
            }
            None => out.push(line.to_owned()),
        }
    }
    assert!(expected.is_none(), "`{EXPECT}` at the end of a block");
    out.join("\n")
}

/// The script: strict mode, the failing `curl`, the expected-error helper, then the blocks.
fn script(blocks: &[String], addr: &str, mllp: &str) -> String {
    let mut s = String::from(
        r#"set -Eeuo pipefail
shopt -s inherit_errexit
trap 'echo "README STEP FAILED (exit $?) at script line $LINENO: $BASH_COMMAND" >&2' ERR
# Every 4xx/5xx fails the step, with the answer's body shown and the command named.
curl() {
  local rc=0
  command curl --fail-with-body --show-error "$@" || rc=$?
  if [ "$rc" != 0 ]; then echo "README STEP FAILED: curl $*" >&2; return "$rc"; fi
}
# A step the README marks `(expect HTTP <status> <code>)`: exactly that error, nothing else.
expect_error() {
  local status=$1 code=$2 out got body
  shift 2
  out=$(command curl --show-error -w '\n%{http_code}' "$@")
  got=${out##*$'\n'}
  body=${out%$'\n'*}
  printf '%s\n' "$body"
  if [ "$got" != "$status" ]; then
    echo "expected HTTP $status, got $got: curl $*" >&2
    return 1
  fi
  printf '%s' "$body" | python3 -c 'import sys,json; sys.exit(json.load(sys.stdin)["error"]["code"] != sys.argv[1])' "$code" ||
    { echo "expected error code $code: curl $*" >&2; return 1; }
}
# `cargo run --release -q -- ARGS` is the binary under test.
cargo() {
  if [ "$1 $2 $3 $4" != "run --release -q --" ]; then echo "README: unexpected cargo $*" >&2; return 1; fi
  shift 4
  "$ALIQUOT_BIN" "$@"
}
"#,
    );
    for (i, block) in blocks.iter().enumerate() {
        s.push_str(&format!("\nprintf '\\n>>> README block {}\\n'\n", i + 1));
        s.push_str(&mark_expected_errors(
            &block.replace(README_ADDR, addr).replace(README_MLLP, mllp),
        ));
        s.push('\n');
    }
    s.push_str("\nprintf '\\n>>> README walkthrough done\\n'\n");
    s
}

fn run_walkthrough(db_args: &[String]) {
    let blocks = sh_blocks(README, SECTION);
    assert!(
        blocks.len() >= 3,
        "expected the API, order and lifecycle blocks, found {}",
        blocks.len()
    );
    let server = Server::start(db_args, &["--demo"]);
    // http://HOST:PORT -> HOST:PORT
    let script = script(
        &blocks,
        server.base.trim_start_matches("http://"),
        &server.mllp,
    );
    let work = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env("ALIQUOT_BIN", common::BIN)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    drop(server);
    let numbered: String = script
        .lines()
        .enumerate()
        .map(|(i, line)| format!("{:4} {line}\n", i + 1))
        .collect();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Shown with --no-capture: what a newcomer would see.
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the README walkthrough failed ({})\n--- script ---\n{numbered}--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
    assert!(stdout.contains(">>> README walkthrough done"), "{stdout}");
    // What the README promises of the steps, beyond their success.
    let label = std::fs::read_to_string(work.path().join("label.svg")).unwrap();
    assert!(label.contains("<svg"), "label.svg is not an SVG: {label}");
    assert!(
        stdout
            .to_ascii_lowercase()
            .contains("idempotent-replayed: true"),
        "the retried order was not replayed:\n{stdout}"
    );
    // The simulated analyzer's results were acknowledged (AA) after their commit.
    assert!(
        stdout.lines().any(|l| l.split('\t').nth(1) == Some("AA")),
        "the analyzer's message was not accepted:\n{stdout}"
    );
}

#[test]
fn readme_walkthrough_runs_as_written_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    run_walkthrough(&[
        "--data-dir".to_owned(),
        dir.path().join("data").display().to_string(),
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_walkthrough_runs_as_written_on_postgres() {
    let server = std::env::var("ALIQUOT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let url = format!("{server}/aliquot_t_{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let args = vec![
        "--data-dir".to_owned(),
        dir.path().join("data").display().to_string(),
        "--database".to_owned(),
        url.clone(),
    ];
    let ran = tokio::task::spawn_blocking(move || run_walkthrough(&args)).await;
    let _ = sqlx::Postgres::force_drop_database(&url).await;
    if let Err(e) = ran {
        std::panic::resume_unwind(e.into_panic());
    }
}
