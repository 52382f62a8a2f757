//! The bench web UI in a real browser: headless Chromium driven through chromedriver
//! (Debian's `chromium` and `chromium-driver`) against `aliquot serve --demo`, on SQLite and on
//! PostgreSQL. A technician walks each station as at the bench: types into the scan field and
//! presses Enter. Every page gets an axe-core check (no serious or critical violation) and a
//! screenshot under `$CARGO_TARGET_TMPDIR/web-screenshots/<backend>/` (not committed).
//!
//! These tests fail, never skip, when the browser is missing: CI installs it (`.ci/run`).
//! Also here, without a browser: the CSRF and cookie/bearer separation rules over plain HTTP.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use sqlx::migrate::MigrateDatabase;

mod common;
use common::Server;

/// axe-core 4.14.1 from the npm package `axe-core` (MPL-2.0, `fixtures/axe.LICENSE`); a test
/// fixture only, never shipped in the binary.
const AXE: &str = include_str!("fixtures/axe-4.14.1.min.js");

/// `\n` in typed text is the Enter key, as a scanner sends it.
fn enter(text: &str) -> String {
    text.replace('\n', &char::from(Key::Enter).to_string())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver and a headless Chromium session; both end when dropped.
struct Browser {
    driver: Child,
    client: Client,
    base: String,
    shots: PathBuf,
    _profile: tempfile::TempDir,
    step: usize,
}

impl Browser {
    async fn start(base: &str, backend: &str) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver is not installed: apt-get install chromium chromium-driver \
                 (the browser tests never skip)",
            );
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--lang=en-US",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("chromium did not start under chromedriver");
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("web-screenshots")
            .join(backend);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            driver,
            client,
            base: base.to_owned(),
            shots,
            _profile: profile,
            step: 0,
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                // What the browser showed, for the person reading the failure.
                if let Ok(png) = self.client.screenshot().await {
                    let _ = std::fs::write(self.shots.join("FAILED.png"), png);
                }
                let url = self.client.current_url().await.map(|u| u.to_string());
                panic!(
                    "no `{css}` on {url:?}: {e} (see {}/FAILED.png)",
                    self.shots.display()
                )
            }
        }
    }

    async fn text(&self, css: &str) -> String {
        self.wait(css).await.text().await.unwrap()
    }

    /// The text of `css` once it contains `needle` (at most 10 s; after a form's submit the
    /// old page's element may still be there, or gone stale, for a moment): the last text
    /// seen, for the caller's assertion.
    async fn text_with(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = String::new();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && let Ok(t) = e.text().await
            {
                if t.contains(needle) {
                    return t;
                }
                last = t;
            }
            if Instant::now() > deadline {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks a link or a GET form's button and waits for the new address to load.
    async fn click_to_new_url(&self, css: &str) {
        let before = self.client.current_url().await.unwrap();
        self.wait(css).await.click().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.client.current_url().await.unwrap() == before {
            assert!(Instant::now() < deadline, "{css} led nowhere");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.wait("main").await;
    }

    /// The current value of a form field.
    async fn value(&self, css: &str) -> String {
        self.wait(css)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Types into a field as a person (or a keyboard-wedge scanner) does.
    async fn type_into(&self, css: &str, text: &str) {
        let e = self.wait(css).await;
        e.clear().await.unwrap();
        e.send_keys(&enter(text)).await.unwrap();
    }

    /// Types into whatever has focus (the page's autofocus field, say), then Enter.
    async fn scan(&self, text: &str) {
        let active = self.client.active_element().await.unwrap();
        active
            .send_keys(&format!("{text}{}", char::from(Key::Enter)))
            .await
            .unwrap();
    }

    /// A date field: typed digit by digit as in an en-US browser (mm dd yyyy).
    async fn type_date(&self, css: &str, iso: &str) {
        let (y, rest) = iso.split_at(4);
        let (m, d) = (&rest[1..3], &rest[4..6]);
        let e = self.wait(css).await;
        e.send_keys(&format!("{m}{d}{y}")).await.unwrap();
        let value = e.prop("value").await.unwrap().unwrap_or_default();
        assert_eq!(value, iso, "typing the date into {css}");
    }

    /// The id of the focused element. The pages move focus from script after a swap or a
    /// load, so on a busy machine focus can still be elsewhere for a moment: this waits (at
    /// most 10 s) until the element `expected` has it, and answers what had it last.
    async fn active_id_becomes(&self, expected: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let a = self.client.active_element().await.unwrap();
            let id = a.attr("id").await.unwrap().unwrap_or_default();
            if id == expected || std::time::Instant::now() > deadline {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// axe-core on the current page: no serious or critical violation; then a screenshot.
    async fn check_page(&mut self, name: &str) {
        let htmx: serde_json::Value = self
            .client
            .execute(
                "return document.querySelector('script[src*=htmx]') ? typeof window.htmx : 'object'",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(htmx, "object", "htmx did not load on {name} (CSP?)");
        self.client.execute(AXE, vec![]).await.unwrap();
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']}).then(r => done(
                   r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' +
                          v.nodes.map(n => n.target.join(' ')).join(', '))));",
                vec![],
            )
            .await
            .unwrap();
        let violations: Vec<String> = serde_json::from_value(found).unwrap();
        self.shot(name).await;
        assert!(
            violations.is_empty(),
            "axe-core on {name}:\n{}",
            violations.join("\n")
        );
    }

    async fn shot(&mut self, name: &str) {
        self.step += 1;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{:02}-{name}.png", self.step)), png).unwrap();
    }

    async fn login(&self, user: &str) {
        self.goto("/login").await;
        self.type_into("#username", user).await;
        self.type_into("#password", &format!("demo-{user}-pass\n"))
            .await;
        self.wait("#who").await;
    }

    async fn close(self) {
        let _ = self.client.close().await;
        let mut driver = self.driver;
        let _ = driver.kill();
        let _ = driver.wait();
    }
}

async fn rows_of(b: &Browser, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in b.client.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.text().await.unwrap());
    }
    out
}

/// The whole walk: a technician registers a patient, orders, prints labels, draws, receives a
/// STAT tube by scanning, rejects a stale one with one key, spins, pours an aliquot, stores,
/// and tracks the tube; a phlebotomist sees only their stations.
async fn walk(server: &Server, backend: &str) {
    let mut b = Browser::start(&server.base, backend).await;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let mrn = format!("WEB-{suffix}").to_uppercase();
    let birth = "1980-03-15";

    // Login: the start page sends a stranger to it.
    b.goto("/").await;
    assert_eq!(b.path().await, "/login");
    assert_eq!(
        b.active_id_becomes("username").await,
        "username",
        "the username field has focus"
    );
    b.check_page("login").await;
    b.type_into("#username", "technician").await;
    b.type_into("#password", "wrong-password\n").await;
    assert!(
        b.text("#login-error")
            .await
            .contains("Invalid username or password")
    );
    b.login("technician").await;
    assert_eq!(b.text("#who").await, "technician");
    b.check_page("home").await;

    // Registration: search with two identifiers, nobody, register.
    b.goto("/patients").await;
    assert_eq!(b.active_id_becomes("mrn").await, "mrn");
    b.type_into("#mrn", &mrn).await;
    b.type_date("#birth_date", birth).await;
    b.wait("#birth_date")
        .await
        .send_keys(&enter("\n"))
        .await
        .unwrap();
    b.wait("#no-results").await;
    b.check_page("patient-search").await;
    b.client
        .find(Locator::LinkText("New patient"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait("#family_name").await;
    b.type_into("#family_name", "Webtest").await;
    b.type_into("#given_name", "Rosa").await;
    b.wait("#sex").await.send_keys("F").await.unwrap();
    b.wait("#clinical_sex")
        .await
        .send_keys("female")
        .await
        .unwrap();
    b.check_page("patient-new").await;
    b.type_into("#phone", "+1 555 0100\n").await;
    assert_eq!(b.text("#patient-mrn").await, mrn);
    assert_eq!(b.text("#patient-clinical-sex").await, "female");
    assert!(b.text("#patient-name").await.contains("Webtest, Rosa"));
    b.check_page("patient").await;

    // Order: identify with two identifiers, pick tests by code and by name, STAT.
    b.wait("#new-order").await.click().await.unwrap();
    b.type_into("#mrn", &mrn).await;
    b.type_date("#birth_date", birth).await;
    b.type_into("#codes", "CBC").await;
    b.type_into("#test-filter", "prothrombin time\n").await;
    b.wait("#priority").await.send_keys("STAT").await.unwrap();
    b.check_page("order-new").await;
    b.wait("#place-order").await.click().await.unwrap();
    b.wait("#tubes").await;
    assert_eq!(b.text("#order-priority").await, "stat");
    let tubes = rows_of(&b, "#tubes tbody tr").await;
    assert_eq!(tubes.len(), 2, "{tubes:?}");
    assert!(
        tubes[0].contains("BLU") || tubes[0].contains("blue"),
        "citrate first: {tubes:?}"
    );
    let accessions: Vec<String> = {
        let mut v = Vec::new();
        for e in b
            .client
            .find_all(Locator::Css("#tubes td.acc"))
            .await
            .unwrap()
        {
            v.push(e.text().await.unwrap());
        }
        v
    };
    b.check_page("order").await;

    // Labels: the SVG labels, through the label use case.
    b.wait("#print-labels").await.click().await.unwrap();
    let labels = b
        .client
        .wait()
        .for_element(Locator::Css("figure.label svg"))
        .await;
    assert!(labels.is_ok());
    assert_eq!(rows_of(&b, "figure.label").await.len(), 2);
    b.check_page("labels").await;

    // Collection: scan each tube, confirm two identifiers, record the draw.
    for acc in &accessions {
        b.goto("/collect").await;
        assert_eq!(b.active_id_becomes("scan").await, "scan");
        b.scan(acc).await;
        b.wait("#record-draw").await;
        assert_eq!(b.active_id_becomes("mrn").await, "mrn");
        if acc == &accessions[0] {
            b.check_page("collect-tube").await;
        }
        b.client
            .active_element()
            .await
            .unwrap()
            .send_keys(&mrn) // the wristband
            .await
            .unwrap();
        b.type_date("#birth_date", birth).await;
        b.wait("#mrn").await.send_keys(&enter("\n")).await.unwrap();
        assert!(b.text("#collect-done").await.contains(acc.as_str()));
    }
    b.check_page("collect-done").await;

    // A second order whose lactate tube came with its requisition, drawn 3 hours ago: lactate
    // keeps 1 hour at room temperature, so receipt will find it too old.
    b.goto("/patients").await;
    b.type_into("#mrn", &mrn).await;
    b.type_date("#birth_date", birth).await;
    b.wait("#birth_date")
        .await
        .send_keys(&enter("\n"))
        .await
        .unwrap();
    b.client
        .find(Locator::LinkText("Webtest, Rosa"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait("#new-order").await.click().await.unwrap();
    b.type_into("#mrn", &mrn).await;
    b.type_date("#birth_date", birth).await;
    b.type_into("#codes", "LACT").await;
    // The draw time: datetime-local typing is locale-bound; the value is set as the field
    // holds it (lab time), 3 hours ago.
    b.client
        .execute(
            "const d = new Date(Date.now() - 3 * 3600 * 1000);
             const lab = document.getElementById('collected_at');
             const p = n => String(n).padStart(2, '0');
             const tz = arguments[0];
             const f = new Intl.DateTimeFormat('en-CA', {timeZone: tz, year: 'numeric',
               month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23'});
             const parts = Object.fromEntries(f.formatToParts(d).map(x => [x.type, x.value]));
             lab.value = `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;",
            vec![serde_json::json!("America/Chicago")],
        )
        .await
        .unwrap();
    b.type_into("#collector", "Outreach nurse\n").await;
    b.wait("#tubes").await;
    let stale: String = b.text("#tubes td.acc").await;

    // Receiving: scan the STAT tube (accepted, marked STAT), the stale tube (a problem in
    // words; Enter rejects it with the suggested reason), and a mistyped code (refused).
    b.goto("/receive").await;
    assert_eq!(b.active_id_becomes("scan").await, "scan");
    // Each scan attests the label, the container and the fill: the defaults shown beside the
    // scan field (label OK, the planned container, full to the line) are what the technician
    // confirms by scanning; a citrate tube is judged against its line, not in µL.
    assert_eq!(b.value("#label").await, "ok");
    assert_eq!(b.value("#container").await, "");
    assert_eq!(b.value("#fill").await, "to_line");
    b.scan(&accessions[0]).await;
    let first = format!("#scans li[data-accession='{}']", accessions[0]);
    b.wait(&format!("{first}[data-outcome=accepted]")).await;
    assert!(b.text(&format!("{first} .stat")).await.contains("STAT"));
    assert_eq!(
        b.active_id_becomes("scan").await,
        "scan",
        "focus back on the scan field"
    );
    b.scan(&stale).await;
    let row = format!("#scans li[data-accession='{stale}']");
    b.wait(&format!("{row}[data-outcome=problem]")).await;
    let problem = b.text(&format!("{row} .problems")).await;
    assert!(problem.contains("stability"), "{problem}");
    b.check_page("receive-problem").await;
    let focused = b.client.active_element().await.unwrap();
    assert_eq!(
        focused.attr("value").await.unwrap().as_deref(),
        Some("stability_exceeded"),
        "the suggested reason has focus"
    );
    focused
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .unwrap();
    b.wait(&format!("{row}[data-outcome=rejected]")).await;
    assert_eq!(b.active_id_becomes("scan").await, "scan");
    b.scan("NOT-A-TUBE").await;
    b.wait("#scans li[data-accession='NOT-A-TUBE'][data-outcome=refused]")
        .await;
    b.scan(&accessions[1]).await;
    b.wait(&format!(
        "#scans li[data-accession='{}'][data-outcome=accepted]",
        accessions[1]
    ))
    .await;
    // The same citrate tube again: refused in words, nothing changes.
    b.scan(&accessions[0]).await;
    b.wait(&format!(
        "#scans > li:first-child[data-accession='{}'][data-outcome=refused]",
        accessions[0]
    ))
    .await;
    assert_eq!(
        rows_of(&b, "#scans > li").await.len(),
        5,
        "the running list"
    );
    b.check_page("receive").await;

    // Processing: spin the citrate tube in a run, pour an aliquot (child label), finish.
    // Citrate for coagulation is spun to platelet-poor plasma: the form's 1,300 g × 10 min is
    // refused in words (the container's protocol), 1,500 g × 15 min is accepted.
    b.goto("/process").await;
    assert_eq!(b.active_id_becomes("scan").await, "scan");
    b.scan(&accessions[0]).await;
    b.wait(&format!(
        "#spun li[data-accession='{}'][data-outcome=refused]",
        accessions[0]
    ))
    .await;
    assert!(b.text("#spun").await.contains("platelet-poor"));
    b.type_into("#rcf_g", "1500").await;
    b.type_into("#minutes", "15").await;
    b.type_into("#scan", &format!("{}\n", accessions[0])).await;
    b.wait(&format!(
        "#spun li[data-accession='{}'][data-outcome=ok]",
        accessions[0]
    ))
    .await;
    b.type_into("#aliquot-scan", &format!("{}\n", accessions[0]))
        .await;
    let child = format!("{}-01", accessions[0]);
    b.wait(&format!(
        "#poured li[data-accession='{child}'] figure.label svg"
    ))
    .await;
    b.type_into("#done-scan", &format!("{}\n", accessions[0]))
        .await;
    b.wait(&format!(
        "#poured li[data-accession='{}'][data-outcome=ok]",
        accessions[0]
    ))
    .await;
    b.check_page("process").await;

    // Storage: scan the position, then the tube. Coagulation plasma is never refrigerated:
    // the refrigerator is refused in words, the freezer takes it.
    b.goto("/storage").await;
    assert_eq!(b.active_id_becomes("location").await, "location");
    b.scan("CORE/REF-01/R1/B1/I9").await;
    assert_eq!(
        b.active_id_becomes("scan").await,
        "scan",
        "the position scan moves on to the tube"
    );
    b.scan(&accessions[0]).await;
    b.wait(&format!(
        "#stored li[data-accession='{}'][data-outcome=refused]",
        accessions[0]
    ))
    .await;
    assert!(b.text("#stored").await.contains("refrigerated"));
    b.type_into("#location", "CORE/FRZ-01/R1/B1/I9\n").await;
    assert_eq!(b.active_id_becomes("scan").await, "scan");
    b.scan(&accessions[0]).await;
    b.wait(&format!(
        "#stored li[data-accession='{}'][data-outcome=ok]",
        accessions[0]
    ))
    .await;
    b.check_page("storage").await;

    // Tracking: the chain of custody and the lineage.
    b.goto("/track").await;
    b.scan(&accessions[0]).await;
    assert_eq!(b.text("#track-status").await, "stored");
    let custody = rows_of(&b, "#custody tbody tr").await.join("\n");
    for step in ["collect", "receive", "centrifuge", "aliquot", "store"] {
        assert!(custody.contains(step), "{step} missing from\n{custody}");
    }
    assert!(b.text("#lineage").await.contains(&child));
    b.check_page("track").await;

    // Results: the haematology worklist lists the EDTA tube's tests; a value typed and Enter
    // posts it through the results use case and answers in words.
    b.goto("/results?department=hematology").await;
    let cell = format!(
        "#worklist tr[data-accession='{}'][data-test='HGB'] input[name=value]",
        accessions[1]
    );
    b.wait(&cell).await.click().await.unwrap();
    b.type_into(&cell, "14.1\n").await;
    let notice = b.text("#result-notice").await;
    assert!(notice.contains("HGB: released"), "{notice}");
    assert!(
        rows_of(
            &b,
            &format!(
                "#worklist tbody tr[data-accession='{}'][data-test='HGB']",
                accessions[1]
            )
        )
        .await
        .is_empty(),
        "a released result leaves the worklist: {:?}",
        rows_of(&b, "#worklist tbody tr").await
    );
    b.check_page("results").await;

    // Interfaces: a message with a code the analyzer's mapping lacks waits in the error
    // queue; the technologist (switching user on this terminal) sees where it went wrong and
    // replays it (still unmapped: it stays).
    let mut mllp = aliquot_connect::simulate::MllpClient::connect(server.mllp.parse().unwrap())
        .await
        .unwrap();
    let ack = mllp
        .send(
            &aliquot_connect::simulate::oru(
                "CHEM1",
                "WEB-0001",
                &accessions[0],
                &[aliquot_connect::simulate::Reading {
                    code: "LDH-X".into(),
                    value: "180".into(),
                    units: "U/L".into(),
                    flags: Vec::new(),
                }],
            ),
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(aliquot_connect::simulate::ack_code(&ack), "AE");
    b.goto("/login").await;
    b.login("technologist").await;
    b.goto("/interfaces").await;
    let queue = rows_of(&b, "#queue tbody tr").await.join("\n");
    assert!(
        queue.contains("OBX[1]-3") && queue.contains("unknown_test_code"),
        "{queue}"
    );
    b.check_page("interfaces").await;
    b.client
        .find(Locator::Css("#queue tbody tr button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let error = b.text("#error").await;
    assert!(error.contains("still in error"), "{error}");

    // QC: the demo's CHEM2 is locked for potassium (this morning's 2-2s) and listed first;
    // a run on CHEM1 is judged at once; the corrective action is documented in the form; the
    // Levey-Jennings charts of glucose (with last month's rejected run) are drawn.
    b.goto("/qc").await;
    let first = rows_of(&b, "#qc-status tbody tr").await;
    assert!(
        first[0].contains("CHEM2") && first[0].contains("LOCKED"),
        "{first:?}"
    );
    assert!(b.text("main").await.contains("2-2s within the run"));
    b.check_page("qc").await;
    b.client
        .find(Locator::Css("#instrument"))
        .await
        .unwrap()
        .send_keys("CHEM1")
        .await
        .unwrap();
    b.type_into("#test", "K").await;
    b.type_into("#lot1", "CC1-26051").await;
    b.type_into("#value1", "3.52").await;
    b.type_into("#lot2", "CC2-26052").await;
    b.type_into("#value2", "5.97\n").await;
    let notice = b.text("#notice").await;
    assert!(notice.contains("K on CHEM1: run accepted"), "{notice}");
    b.goto("/qc").await;
    b.type_into(
        "#action-CHEM2-K",
        "Cleaned the ISE module, new reference electrode",
    )
    .await;
    b.type_into(
        "#reason-CHEM2-K",
        "both levels read high after the electrode drifted\n",
    )
    .await;
    let notice = b.text("#notice").await;
    assert!(
        notice.contains("Run QC again: an accepted run lifts the lock"),
        "{notice}"
    );
    b.goto("/qc?instrument=CHEM1&test=GLU").await;
    b.wait("#chart-2").await;
    let loaded: serde_json::Value = b
        .client
        .execute(
            "const i = document.querySelector('#chart-1');
             return i.complete && i.naturalWidth > 0;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(loaded, true, "the chart image did not load");
    b.check_page("qc-charts").await;

    // A shared terminal: switch to the phlebotomist in one form; no receiving for them.
    b.goto("/login").await;
    assert!(b.text("main").await.contains("Switch user"));
    b.check_page("switch-user").await;
    b.login("phlebotomist").await;
    assert_eq!(b.text("#who").await, "phlebotomist");
    let nav = b.text("header nav").await;
    assert!(
        nav.contains("Collection") && !nav.contains("Receiving"),
        "{nav}"
    );
    b.goto("/receive").await;
    assert!(b.text("h1").await.contains("Not allowed"));

    // Log out: the session ends; pages send back to the login.
    b.goto("/").await;
    b.client
        .find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait("#username").await;
    b.goto("/track").await;
    assert_eq!(b.path().await, "/login");
    b.close().await;
}

/// A JSON call to the REST API with a bearer token (the walk's set-up, as an analyser or an
/// outreach site would do it): the answer's body, after checking its status is a success.
async fn api(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = http
        .post(format!("{base}/api/v1{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

async fn api_token(http: &reqwest::Client, base: &str, user: &str) -> String {
    let v: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/token"))
        .json(&serde_json::json!({"username": user, "password": format!("demo-{user}-pass")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// A potassium order drawn `minutes_ago` and received: its tube's accession and the order id.
async fn received_potassium(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    mrn: &str,
    birth: &str,
    minutes_ago: i64,
) -> (String, i64) {
    let order = api(
        http,
        base,
        token,
        "/orders",
        serde_json::json!({"patient": {"mrn": mrn, "birth_date": birth}, "provider_id": 1,
                           "location_id": 1, "tests": ["K"], "priority": "routine"}),
    )
    .await;
    let acc = order["specimens"][0]["accession"]
        .as_str()
        .unwrap()
        .to_owned();
    let drawn = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(minutes_ago);
    api(
        http,
        base,
        token,
        &format!("/specimens/{acc}/collect"),
        serde_json::json!({"collected_at": drawn.to_string(), "site": "Ward 3",
                           "patient": {"mrn": mrn, "birth_date": birth}}),
    )
    .await;
    api(
        http,
        base,
        token,
        &format!("/specimens/{acc}/receive"),
        serde_json::json!({"label": "ok", "container": "SST", "volume_ul": 2000}),
    )
    .await;
    (acc, order["id"].as_i64().unwrap())
}

/// The office stations: result entry beside the interval and the previous result with the
/// flags shown as the value is typed; review and release (re-run, verify, a whole order); the
/// correction refused without its reason, then made; the dashboard refreshing itself; the
/// draw list by location; the reports page; and the administrator's pages (users and roles,
/// settings, catalogue, audit trail with its verification, access log) without patient data.
async fn office_walk(server: &Server, backend: &str) {
    let http = reqwest::Client::new();
    let base = server.base.as_str();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let mrn = format!("OFF-{suffix}").to_uppercase();
    let birth = "1970-06-01";
    // Set-up through the API: a patient with an earlier potassium (4.0, released) and a new
    // tube whose potassium waits on the chemistry worklist.
    let tech = api_token(&http, base, "technician").await;
    let lead = api_token(&http, base, "technologist").await;
    api(
        &http,
        base,
        &tech,
        "/patients",
        serde_json::json!({"mrn": mrn, "family_name": "Officewalk", "given_name": "Ines",
                           "birth_date": birth, "sex": "F"}),
    )
    .await;
    // An EMR destination that is down (nobody listens on its port): the results released
    // from now on wait in its queue (the outbox page, below).
    let emr_code = format!("EMR{suffix}").to_uppercase();
    api(
        &http,
        base,
        &lead,
        "/destinations",
        serde_json::json!({"code": emr_code, "name": "Hospital EMR (down)",
                           "host": "127.0.0.1", "port": free_port()}),
    )
    .await;
    // A STAT coagulation order drawn with a winged set: the draw list shows a discard tube
    // before its citrate tube (issue 10 item 9).
    let winged = api(
        &http,
        base,
        &tech,
        "/orders",
        serde_json::json!({"patient": {"mrn": mrn, "birth_date": birth}, "provider_id": 1,
                           "location_id": 1, "tests": ["PT"], "priority": "stat",
                           "winged_collection_set": true}),
    )
    .await;
    assert_eq!(winged["discard_tube"], true, "{winged}");
    let citrate = winged["specimens"][0]["accession"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(winged["specimens"][0]["container"], "BLU", "{winged}");
    let (first, _) = received_potassium(&http, base, &tech, &mrn, birth, 50).await;
    let posted = api(
        &http,
        base,
        &tech,
        "/results",
        serde_json::json!({"results": [{"accession": first, "test": "K", "value": "4.0"}]}),
    )
    .await;
    let first_id = posted["results"][0]["result_id"].as_i64().unwrap();
    if posted["results"][0]["status"] == "held" {
        api(
            &http,
            base,
            &lead,
            &format!("/results/{first_id}/verify"),
            serde_json::json!({}),
        )
        .await;
    }
    let (second, second_order) = received_potassium(&http, base, &tech, &mrn, birth, 30).await;

    let mut b = Browser::start(base, &format!("{backend}-office")).await;
    b.login("technologist").await;
    let nav = b.text("header nav").await;
    for station in ["Review", "Reports", "Dashboard"] {
        assert!(nav.contains(station), "{station} missing from {nav}");
    }
    assert!(!nav.contains("Administration"), "{nav}");

    // Result entry: the interval in force and the previous result beside the row; the flags
    // of the value appear while it is typed, before Enter.
    b.goto("/results?department=chemistry").await;
    let row = format!("#worklist tr[data-accession='{second}'][data-test='K']");
    let interval = b.text(&format!("{row} td.interval")).await;
    assert!(
        interval.contains("3.5") && interval.contains("mmol/L"),
        "{interval}"
    );
    let previous = b.text(&format!("{row} td.previous")).await;
    assert!(previous.contains("4.0"), "{previous}");
    let cell = format!("{row} input[name=value]");
    b.wait(&cell).await.click().await.unwrap();
    b.wait(&cell).await.send_keys("6.4").await.unwrap();
    let preview = b.text(&format!("{row} output .preview-flags")).await;
    assert_eq!(preview, "HH", "the flag as typed");
    assert!(b.text(&format!("{row} output")).await.contains("CRITICAL"));
    b.check_page("results-entry").await;
    b.wait(&cell).await.send_keys(&enter("\n")).await.unwrap();
    let notice = b.text_with("#result-notice", "K: held [HH]").await;
    assert!(notice.contains("K: held [HH]"), "{notice}");

    // Review: the held potassium with its reasons; a re-run, then verify and release.
    b.goto("/review").await;
    let held = format!("tr[data-accession='{second}'][data-test='K']");
    let reasons = b.text(&format!("{held} ul.reasons")).await;
    assert!(reasons.contains("Critical value"), "{reasons}");
    let result_id = b
        .wait(&held)
        .await
        .attr("data-result")
        .await
        .unwrap()
        .unwrap();
    b.check_page("review").await;
    b.type_into(&format!("#rerun-{result_id}"), "6.3\n").await;
    let notice = b.text_with("#review-notice", "K: the re-run is held").await;
    assert!(notice.contains("K: the re-run is held"), "{notice}");
    b.wait(&format!("{held} button.verify"))
        .await
        .click()
        .await
        .unwrap();
    let notice = b
        .text_with("#review-notice", "K: verified and released")
        .await;
    assert!(notice.contains("K: verified and released"), "{notice}");
    // A whole order of the demo's held results at once.
    let order = b
        .wait("section.held-order")
        .await
        .attr("data-order")
        .await
        .unwrap()
        .unwrap();
    b.wait(&format!(
        "section[data-order='{order}'] button.release-order"
    ))
    .await
    .click()
    .await
    .unwrap();
    let notice = b
        .text_with("#review-notice", &format!("Order #{order}"))
        .await;
    assert!(notice.contains(&format!("Order #{order}")), "{notice}");

    // The correction: refused without its reason (said next to the field, the value kept),
    // then made; the earlier versions stay.
    b.goto(&format!("/results/{result_id}")).await;
    assert_eq!(b.text("#result-status").await, "released");
    b.type_into("#value", "6.2").await;
    b.wait("#correct").await.click().await.unwrap();
    let error = b.text_with("#reason-error", "reason").await;
    assert!(error.contains("reason"), "{error}");
    assert_eq!(
        b.wait("#reason")
            .await
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    assert_eq!(b.value("#value").await, "6.2");
    assert_eq!(b.text("#result-status").await, "released");
    b.check_page("correction-refused").await;
    // A correction is an electronic signature: refused unsigned, next to the field.
    b.type_into("#reason", "re-run on a fresh aliquot\n").await;
    assert!(
        b.text_with("#signature-error", "sign")
            .await
            .contains("sign")
    );
    assert_eq!(b.value("#reason").await, "re-run on a fresh aliquot");
    b.type_into("#signature", "demo-technologist-pass\n").await;
    assert!(
        b.text_with("#result-notice", "Corrected")
            .await
            .contains("Corrected")
    );
    assert_eq!(
        b.text_with("#result-status", "corrected").await,
        "corrected"
    );
    let versions = rows_of(&b, "#versions tbody tr").await;
    assert!(versions.len() >= 4, "{versions:?}");
    assert!(versions[0].contains("6.2") && versions[0].contains("re-run on a fresh aliquot"));
    assert!(
        versions[0].contains("corrected by") && versions[0].contains("password"),
        "the signature is shown with its version: {versions:?}"
    );
    assert!(
        b.wait("#report-pdf")
            .await
            .attr("href")
            .await
            .unwrap()
            .unwrap()
            .ends_with("/report.pdf")
    );
    b.check_page("result-corrected").await;
    b.goto(&format!("/orders/{second_order}")).await;
    assert!(
        b.text("#order-results tr[data-test='K']")
            .await
            .contains("6.2")
    );
    // The order's report PDF, fetched by the page as the browser opens the link.
    let kind: serde_json::Value = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.getElementById('report-pdf').href)
               .then(r => done(r.status + ' ' + r.headers.get('content-type')));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kind, "200 application/pdf");

    // The outbox (issue 12): the down EMR with its waiting messages; one message with its
    // state; skipping needs a reason, then takes it out of the queue.
    b.goto("/interfaces").await;
    b.click_to_new_url("#outbox-link").await;
    let dest = b
        .text(&format!("#destinations tr[data-destination='{emr_code}']"))
        .await;
    assert!(
        dest.contains("Hospital EMR (down)") && dest.contains("active"),
        "{dest}"
    );
    let pending: Vec<String> = rows_of(&b, "#outbox tbody tr[data-status='pending']").await;
    assert!(
        !pending.is_empty(),
        "{:?}",
        rows_of(&b, "#outbox tbody tr").await
    );
    b.check_page("outbox").await;
    b.wait("#destination")
        .await
        .send_keys(&emr_code)
        .await
        .unwrap();
    b.click_to_new_url("#show-outbox").await;
    b.wait("#outbox").await;
    let first = b.wait("#outbox tbody tr td a").await;
    first.click().await.unwrap();
    b.wait("#message-status").await;
    assert_eq!(b.text("#message-status").await, "Pending");
    // A role that may read patients sees the message once it was attempted.
    assert!(
        b.text_with("main", "MSH|").await.contains("ORU^R01")
            || b.text("main").await.contains("Not attempted yet"),
        "{}",
        b.text("main").await
    );
    b.check_page("outbox-message").await;
    b.wait("#skip").await.click().await.unwrap();
    assert!(b.text_with("#error", "reason").await.contains("reason"));
    b.type_into("#skip-reason", "EMR retired; results were phoned\n")
        .await;
    assert!(b.text_with("#notice", "skipped").await.contains("skipped"));
    assert_eq!(b.text("#message-status").await, "Skipped");

    // The dashboard: counts, the open calls, and a refresh without reloading the page.
    b.goto("/dashboard").await;
    b.wait("#total-pending").await;
    assert!(b.text("#open-calls").await.parse::<usize>().unwrap() >= 1);
    let hours = rows_of(&b, "#hours tbody tr").await;
    assert_eq!(hours.len(), 12, "{hours:?}");
    assert!(b.text("#received").await.parse::<usize>().unwrap() >= 2);
    b.check_page("dashboard").await;
    b.client
        .execute(
            "document.getElementById('board-at').setAttribute('data-old', '1');",
            vec![],
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let old: serde_json::Value = b
            .client
            .execute(
                "const e = document.getElementById('board-at'); return e && e.hasAttribute('data-old');",
                vec![],
            )
            .await
            .unwrap();
        if old == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the board did not refresh itself"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(b.path().await, "/dashboard", "refreshed in place");

    // Reports: an order's report by its number, the batch print of a location.
    b.goto("/reports").await;
    assert_eq!(b.active_id_becomes("order").await, "order");
    b.check_page("reports").await;
    b.scan("forty-two").await;
    assert!(
        b.text_with("#order-error", "digits")
            .await
            .contains("digits")
    );
    b.goto("/reports/batch.pdf?location=NOWHERE&since=2000-01-01T00:00")
        .await;
    assert!(
        b.text_with("#location-error", "location")
            .await
            .contains("location")
    );
    let kind: serde_json::Value = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/reports/batch.pdf?location=OPD&since=2000-01-01T00:00')
               .then(r => done(r.status + ' ' + r.headers.get('content-type')));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kind, "200 application/pdf");

    // The phlebotomist's draw list, of all locations, then of the emergency department.
    b.goto("/login").await;
    b.login("phlebotomist").await;
    b.goto("/collect").await;
    assert_eq!(b.active_id_becomes("scan").await, "scan", "scanning first");
    let all = rows_of(&b, "#draw-list tbody tr").await;
    assert!(
        all.iter().any(|r| r.contains("ED")) && all.iter().any(|r| r.contains("OPD")),
        "{all:?}"
    );
    b.wait("#location").await.send_keys("ED").await.unwrap();
    b.click_to_new_url("#show-draw-list").await;
    b.wait("#draw-list").await;
    let ed = rows_of(&b, "#draw-list tbody tr td:nth-child(3)").await;
    assert!(!ed.is_empty() && ed.iter().all(|l| l == "ED"), "{ed:?}");
    assert!(ed.len() < all.len());
    b.check_page("draw-list").await;
    // The winged-set draw: a discard tube just before the citrate tube.
    b.goto("/collect").await;
    let discard = b
        .text(&format!(
            "#draw-list tr.discard[data-discard-before='{citrate}']"
        ))
        .await;
    assert!(discard.contains("Discard tube first"), "{discard}");
    let next: serde_json::Value = b
        .client
        .execute(
            &format!(
                "return document.querySelector(\"#draw-list tr.discard[data-discard-before='{citrate}']\")
                   .nextElementSibling.dataset.accession;"
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        next,
        citrate.as_str(),
        "the discard tube comes just before the citrate tube"
    );
    b.shot("draw-list-discard").await;
    b.wait("#draw-list tbody tr button")
        .await
        .click()
        .await
        .unwrap();
    b.wait("#record-draw").await;

    // The administrator: users and roles, settings, the catalogue, the audit trail and its
    // verification, the access log; no patient data and no bench station.
    b.goto("/login").await;
    b.login("admin").await;
    let nav = b.text("header nav").await;
    assert!(
        nav.contains("Administration") && !nav.contains("Registration"),
        "{nav}"
    );
    b.goto("/patients").await;
    assert!(b.text("h1").await.contains("Not allowed"));
    b.goto("/admin").await;
    assert!(b.text("#users").await.contains("technologist"));
    b.check_page("admin-users").await;
    let user = format!("web{suffix}");
    b.type_into("#username", &user).await;
    b.type_into("#display_name", "Web Test User").await;
    b.wait("#role")
        .await
        .send_keys("phlebotomist")
        .await
        .unwrap();
    b.type_into("#password", "short\n").await;
    assert!(
        b.text_with("#password-error", "password")
            .await
            .contains("password")
    );
    assert_eq!(
        b.value("#username").await,
        user,
        "the form keeps what was typed"
    );
    b.type_into("#password", "a sturdy passphrase for the bench 42\n")
        .await;
    assert!(
        b.text_with("#admin-notice", "created as phlebotomist")
            .await
            .contains("created as phlebotomist")
    );
    let row = format!("#users tr[data-user='{user}']");
    let id = b
        .wait(&format!("{row} form select"))
        .await
        .attr("id")
        .await
        .unwrap()
        .unwrap()
        .trim_start_matches("role-")
        .to_owned();
    b.wait(&format!("#role-{id}"))
        .await
        .send_keys("technician")
        .await
        .unwrap();
    b.wait(&format!("{row} form button"))
        .await
        .click()
        .await
        .unwrap();
    assert!(
        b.text_with("#admin-error", "reason")
            .await
            .contains("reason"),
        "a role change needs a reason"
    );
    b.wait(&format!("#role-{id}"))
        .await
        .send_keys("technician")
        .await
        .unwrap();
    b.type_into(
        &format!("#role-reason-{id}"),
        "moved to the processing bench\n",
    )
    .await;
    assert!(
        b.text_with("#admin-notice", "is now technician")
            .await
            .contains("is now technician")
    );
    assert_eq!(b.text(&format!("{row} td.role")).await, "technician");
    b.type_into(&format!("#dis-reason-{id}"), "left the laboratory\n")
        .await;
    assert_eq!(
        b.text_with(&format!("{row} td.status"), "disabled").await,
        "disabled"
    );
    b.goto("/admin/settings").await;
    assert!(b.text("#settings").await.contains("lab.name"));
    b.check_page("admin-settings").await;
    b.goto("/admin/catalog").await;
    assert!(rows_of(&b, "#catalog tbody tr").await.len() > 20);
    b.check_page("admin-catalog").await;
    b.goto("/admin/audit").await;
    b.click_to_new_url("#verify-chain").await;
    assert!(b.text_with("#chain", "intact").await.contains("intact"));
    b.check_page("admin-audit").await;
    // Page on to the demo's patient entries: redacted for the administrator.
    let mut pages = 0;
    loop {
        let changes = rows_of(&b, "#audit td.change").await.join("\n");
        assert!(
            !changes.contains("Abernathy"),
            "no patient name for the administrator"
        );
        if changes.contains("redacted") {
            break;
        }
        pages += 1;
        assert!(pages < 40, "no redacted patient entry in the audit trail");
        b.click_to_new_url("#next-page").await;
    }
    b.goto("/admin/access-log").await;
    assert!(!rows_of(&b, "#access tbody tr").await.is_empty());
    b.check_page("admin-access").await;

    // A second factor: a new user enrols an authenticator app on the web (the secret shown
    // once, confirmed by its first code, recovery codes shown once); the login page then
    // asks for the code and logs in with it.
    let admin = api_token(&http, base, "admin").await;
    let mfa_user = format!("mfa{suffix}");
    let mfa_password = "a sturdy passphrase for the bench 42";
    api(
        &http,
        base,
        &admin,
        "/users",
        serde_json::json!({"username": mfa_user, "display_name": "Mfa Walker",
                           "role": "technologist", "password": mfa_password}),
    )
    .await;
    b.goto("/login/mfa").await;
    b.type_into("#username", &mfa_user).await;
    b.type_into("#password", &format!("{mfa_password}\n")).await;
    let secret = b.text_with("#mfa-secret", "").await;
    let uri = b.text("#mfa-uri").await;
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&secret),
        "{uri}"
    );
    b.check_page("mfa-enrol").await;
    let key = aliquot_domain::totp::base32_decode(&secret).expect("Base32 secret");
    let now = || jiff::Timestamp::now().as_second();
    let code = aliquot_domain::totp::code_at(&key, now(), aliquot_domain::totp::DIGITS);
    b.type_into("#password", mfa_password).await;
    b.type_into("#code", &format!("{code}\n")).await;
    // The confirmation's answer, once it has loaded (right after the submit the enrolment
    // page may still be shown).
    b.text("#recovery-codes").await;
    let codes = rows_of(&b, "#recovery-codes li").await;
    assert_eq!(codes.len(), 10, "{codes:?}");
    b.check_page("mfa-recovery-codes").await;
    b.goto("/login").await;
    b.type_into("#username", &mfa_user).await;
    b.type_into("#password", &format!("{mfa_password}\n")).await;
    assert!(b.text_with("#login-error", "code").await.contains("code"));
    b.check_page("login-asks-code").await;
    // The next step's code (accepted within one step either side; the first is used).
    let next = aliquot_domain::totp::code_at(&key, now() + 30, aliquot_domain::totp::DIGITS);
    b.type_into("#password", mfa_password).await;
    b.type_into("#code", &format!("{next}\n")).await;
    assert!(b.text_with("#who", &mfa_user).await.contains(&mfa_user));
    b.close().await;
}

/// The pending grants in view, for the screenshot.
async fn show_grants(b: &Browser) {
    b.client
        .execute(
            "document.getElementById('grants-h').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
}

/// Separation of duties at the web page (issue 16): one administrator requests the director
/// role for a user; the page offers that administrator no approval, and the server refuses
/// one sent all the same; a second administrator approves it; the grantee's sessions end.
async fn role_grant_walk(server: &Server, backend: &str, db_args: &[String]) {
    let http = reqwest::Client::new();
    let base = server.base.as_str();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    // A second administrator, made at the console (the console bootstraps administrators).
    let second = format!("adm{suffix}");
    let mut child = Command::new(common::BIN)
        .args(db_args)
        .args([
            "user",
            "add",
            "--username",
            &second,
            "--role",
            "admin",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "demo-{second}-pass").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The grantee, a technologist with a session of their own.
    let admin = api_token(&http, base, "admin").await;
    let grantee = format!("gina{suffix}");
    let created = api(
        &http,
        base,
        &admin,
        "/users",
        serde_json::json!({"username": grantee, "display_name": "Gina Grant",
                           "role": "technologist", "password": format!("demo-{grantee}-pass")}),
    )
    .await;
    let gid_user = created["id"].as_i64().unwrap();
    let grantee_token = api_token(&http, base, &grantee).await;
    let me = |token: String| {
        let http = http.clone();
        let url = format!("{base}/api/v1/auth/me");
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(me(grantee_token.clone()).await, reqwest::StatusCode::OK);

    // The first administrator requests the director role, with a reason.
    let mut b = Browser::start(base, &format!("{backend}-grants")).await;
    b.login("admin").await;
    b.goto("/admin").await;
    b.wait(&format!("#role-{gid_user}"))
        .await
        .send_keys("director")
        .await
        .unwrap();
    b.type_into(
        &format!("#role-reason-{gid_user}"),
        "appointed laboratory director\n",
    )
    .await;
    assert!(
        b.text_with("#admin-notice", "is requested")
            .await
            .contains(&format!("The director role for {grantee} is requested"))
    );
    let grant_row = b.text_with("#grants tbody tr", &grantee).await;
    assert!(
        grant_row.contains("director")
            && grant_row.contains("appointed laboratory director")
            && grant_row.contains("another administrator decides"),
        "{grant_row}"
    );
    let grant = b
        .wait("#grants tr[data-grant]")
        .await
        .attr("data-grant")
        .await
        .unwrap()
        .unwrap();
    // No approval offered to the requester ...
    assert!(
        b.client
            .find_all(Locator::Css(&format!("#approve-{grant}")))
            .await
            .unwrap()
            .is_empty(),
        "the requester is offered an approval"
    );
    assert_eq!(
        b.text(&format!("#users tr[data-user='{grantee}'] td.role"))
            .await,
        "technologist"
    );
    show_grants(&b).await;
    b.check_page("admin-grant-requested").await;
    // ... and one sent all the same (the form built by hand, with the session's CSRF token)
    // is refused by the server.
    b.client
        .execute(
            "const f = document.createElement('form');
             f.method = 'post'; f.action = '/admin/grants/' + arguments[0] + '/approve';
             const c = document.createElement('input');
             c.type = 'hidden'; c.name = 'csrf';
             c.value = document.querySelector('input[name=csrf]').value;
             f.appendChild(c); document.body.appendChild(f); f.submit();",
            vec![serde_json::json!(grant)],
        )
        .await
        .unwrap();
    let refused = b.text_with("#admin-error", "another administrator").await;
    show_grants(&b).await;
    b.shot("admin-grant-self-approval").await;
    assert!(
        refused.contains("You requested this grant: another administrator decides it"),
        "{refused:?} on {}",
        b.path().await
    );
    assert_eq!(
        b.text(&format!("#users tr[data-user='{grantee}'] td.role"))
            .await,
        "technologist"
    );
    assert_eq!(me(grantee_token.clone()).await, reqwest::StatusCode::OK);

    // The second administrator approves it: the role changes, the grantee's sessions end.
    b.wait("form[action='/logout'] button")
        .await
        .click()
        .await
        .unwrap();
    b.wait("#username").await;
    b.login(&second).await;
    b.goto("/admin").await;
    show_grants(&b).await;
    b.check_page("admin-grant-pending").await;
    b.wait(&format!("#approve-{grant}"))
        .await
        .click()
        .await
        .unwrap();
    assert!(
        b.text_with("#admin-notice", "is now director")
            .await
            .contains(&format!(
                "{grantee} is now director; their sessions were ended."
            ))
    );
    assert_eq!(
        b.text(&format!("#users tr[data-user='{grantee}'] td.role"))
            .await,
        "director"
    );
    assert!(
        b.text("#grants-empty").await.contains("None waiting"),
        "the grant is decided"
    );
    show_grants(&b).await;
    b.check_page("admin-grant-approved").await;
    assert_eq!(
        me(grantee_token).await,
        reqwest::StatusCode::UNAUTHORIZED,
        "the grantee's session outlived the approval"
    );
    // The grantee logs in again, now a director.
    let again = api_token(&http, base, &grantee).await;
    let v: serde_json::Value = http
        .get(format!("{base}/api/v1/auth/me"))
        .bearer_auth(&again)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["role"], "director", "{v}");
    b.close().await;
}

fn demo_args(data_dir: &Path, database: Option<&str>) -> Vec<String> {
    let mut args = vec!["--data-dir".to_owned(), data_dir.display().to_string()];
    if let Some(db) = database {
        args.extend(["--database".to_owned(), db.to_owned()]);
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_stations_in_a_browser_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let args = demo_args(&dir.path().join("data"), None);
    let server = tokio::task::spawn_blocking(move || Server::start(&args, &["--demo"]))
        .await
        .unwrap();
    walk(&server, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_stations_in_a_browser_on_postgres() {
    let pg = std::env::var("ALIQUOT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let url = format!("{pg}/aliquot_t_{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let args = demo_args(&dir.path().join("data"), Some(&url));
    let server = tokio::task::spawn_blocking(move || Server::start(&args, &["--demo"]))
        .await
        .unwrap();
    let ran = tokio::spawn(async move {
        walk(&server, "postgres").await;
    })
    .await;
    let _ = sqlx::Postgres::force_drop_database(&url).await;
    if let Err(e) = ran {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_grant_approval_in_a_browser_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let args = demo_args(&dir.path().join("data"), None);
    let server_args = args.clone();
    let server = tokio::task::spawn_blocking(move || Server::start(&server_args, &["--demo"]))
        .await
        .unwrap();
    role_grant_walk(&server, "sqlite", &args).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_grant_approval_in_a_browser_on_postgres() {
    let pg = std::env::var("ALIQUOT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let url = format!("{pg}/aliquot_t_{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let args = demo_args(&dir.path().join("data"), Some(&url));
    let server_args = args.clone();
    let server = tokio::task::spawn_blocking(move || Server::start(&server_args, &["--demo"]))
        .await
        .unwrap();
    let ran = tokio::spawn(async move {
        role_grant_walk(&server, "postgres", &args).await;
    })
    .await;
    let _ = sqlx::Postgres::force_drop_database(&url).await;
    if let Err(e) = ran {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_stations_in_a_browser_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let args = demo_args(&dir.path().join("data"), None);
    let server = tokio::task::spawn_blocking(move || Server::start(&args, &["--demo"]))
        .await
        .unwrap();
    office_walk(&server, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_stations_in_a_browser_on_postgres() {
    let pg = std::env::var("ALIQUOT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let url = format!("{pg}/aliquot_t_{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let args = demo_args(&dir.path().join("data"), Some(&url));
    let server = tokio::task::spawn_blocking(move || Server::start(&args, &["--demo"]))
        .await
        .unwrap();
    let ran = tokio::spawn(async move {
        office_walk(&server, "postgres").await;
    })
    .await;
    let _ = sqlx::Postgres::force_drop_database(&url).await;
    if let Err(e) = ran {
        std::panic::resume_unwind(e.into_panic());
    }
}

// ── CSRF and the separation of cookies and bearer tokens, over plain HTTP ──

struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    fn origin(&self) -> String {
        self.base.clone()
    }

    /// Logs in through the login form; answers the session cookie's value and the page's
    /// CSRF token.
    async fn web_login(&self, user: &str) -> (String, String) {
        let r = self
            .client
            .post(format!("{}/login", self.base))
            .header("origin", self.origin())
            .form(&[
                ("username", user),
                ("password", &format!("demo-{user}-pass")),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let cookie = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
        let token = cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("aliquot_session=")
            .to_owned();
        let page = self
            .client
            .get(format!("{}/receive", self.base))
            .header("cookie", format!("aliquot_session={token}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
        (token, page[at..at + 64].to_owned())
    }

    async fn scan(&self, token: &str, origin: Option<&str>, csrf: Option<&str>) -> (u16, String) {
        let mut form = vec![("accession", "D2600000010")];
        if let Some(c) = csrf {
            form.push(("csrf", c));
        }
        let mut r = self
            .client
            .post(format!("{}/receive", self.base))
            .header("cookie", format!("aliquot_session={token}"))
            .form(&form);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_need_their_sessions_csrf_token_and_cookies_are_not_bearer_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let args = demo_args(&dir.path().join("data"), None);
    let server = tokio::task::spawn_blocking(move || Server::start(&args, &["--demo"]))
        .await
        .unwrap();
    let http = Http {
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: server.base.clone(),
    };
    let (tech, tech_csrf) = http.web_login("technician").await;
    let (_, other_csrf) = http.web_login("technologist").await;
    let origin = http.origin();

    // Without a token, with another session's, from another site, with no origin: refused.
    let (status, _) = http.scan(&tech, Some(&origin), None).await;
    assert_eq!(status, 403);
    let (status, _) = http.scan(&tech, Some(&origin), Some(&other_csrf)).await;
    assert_eq!(status, 403);
    let (status, _) = http
        .scan(&tech, Some("http://evil.example"), Some(&tech_csrf))
        .await;
    assert_eq!(status, 403);
    let (status, _) = http.scan(&tech, None, Some(&tech_csrf)).await;
    assert_eq!(status, 403);
    // With its own token from this site: the scan runs (the row says what happened).
    let (status, body) = http.scan(&tech, Some(&origin), Some(&tech_csrf)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("D2600000010"), "{body}");

    // The cookie's token is not a bearer token…
    let me = http
        .client
        .get(format!("{}/api/v1/auth/me", server.base))
        .bearer_auth(&tech)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    // …and a bearer token is not a session cookie, nor is a bearer header a session.
    let api: serde_json::Value = http
        .client
        .post(format!("{}/api/v1/auth/token", server.base))
        .json(&serde_json::json!({"username": "technician", "password": "demo-technician-pass"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = api["token"].as_str().unwrap();
    for request in [
        http.client
            .get(format!("{}/receive", server.base))
            .header("cookie", format!("aliquot_session={bearer}")),
        http.client
            .get(format!("{}/receive", server.base))
            .bearer_auth(bearer),
    ] {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login"),
        );
    }
    // A page's security headers: its own CSP (scripts from this site only), no caching.
    let page = http
        .client
        .get(format!("{}/login", server.base))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(page.headers()["cache-control"], "no-store");
    // Unknown pages answer a page, unknown API routes JSON.
    let missing = http
        .client
        .get(format!("{}/no-such-page", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(
        missing.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // Logging out ends the session at once.
    let out = http
        .client
        .post(format!("{}/logout", server.base))
        .header("cookie", format!("aliquot_session={tech}"))
        .header("origin", &origin)
        .form(&[("csrf", tech_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let (status, _) = http.scan(&tech, Some(&origin), Some(&tech_csrf)).await;
    assert_eq!(status, 303, "a logged-out session's form goes to the login");
}
