//! Starting `aliquot serve` for the CLI test binaries (each includes this module).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_aliquot");

/// A running `aliquot serve` on a free loopback port, with the address it printed
/// (`http://127.0.0.1:PORT`). Killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// The MLLP listener's `HOST:PORT` (read by the README walkthrough; this module is
    /// compiled into every CLI test binary).
    #[allow(dead_code)]
    pub mllp: String,
}

impl Server {
    /// Runs `aliquot <db_args> serve --http 127.0.0.1:0 --mllp 127.0.0.1:0 --astm 127.0.0.1:0 <extra>` and waits until it prints
    /// its address (after migrating and, with `--demo`, seeding).
    pub fn start(db_args: &[String], extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(db_args)
            .args([
                "serve",
                "--http",
                "127.0.0.1:0",
                "--mllp",
                "127.0.0.1:0",
                "--astm",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("ALIQUOT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("server exited before printing its address")
                .unwrap();
            if let Some(rest) = line.strip_prefix("Aliquot is running at ") {
                break rest.split('/').take(3).collect::<Vec<_>>().join("/");
            }
        };
        let mllp = loop {
            let line = lines
                .next()
                .expect("server exited before printing its MLLP address")
                .unwrap();
            if let Some(rest) = line.strip_prefix("HL7 v2 over MLLP at ") {
                break rest.trim().to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base, mllp }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
