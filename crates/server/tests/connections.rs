//! The HTTP listener's defences, over real sockets on loopback: the header timeout closes a
//! slow-loris client, the idle timeout closes a quiet keep-alive connection, a slow body
//! gets 408, connections over the cap or over the per-address limit get a clear 503 and
//! the server serves again once they close, and 1,000 idle connections with 20 slow
//! clients do not stop a normal client from being served. Over TLS (the binary's own, with a
//! self-signed certificate the client trusts): requests are served with HSTS, the web
//! session cookie is `Secure`, plain HTTP and a client that never completes its handshake
//! are closed.
//!
//! Timing bounds are generous (a loaded two-core machine must pass): they check that
//! something happens at all, never how fast.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aliquot_app::{App, AppConfig, SystemClock};
use aliquot_server::ServeConfig;
use aliquot_store::DatabaseConfig;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

struct Server {
    addr: SocketAddr,
    app: App,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

async fn start(config: ServeConfig) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = DatabaseConfig::from_options(None, dir.path()).expect("database config");
    let store = aliquot_store::open(&db).await.expect("open store");
    let app = App::new(
        store,
        Arc::new(SystemClock),
        AppConfig {
            data_dir: dir.path().to_path_buf(),
            ..AppConfig::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(aliquot_server::serve_with(
        app.clone(),
        listener,
        async {
            let _ = rx.await;
        },
        config,
    ));
    Server {
        addr,
        app,
        shutdown: Some(tx),
        task: Some(task),
        _dir: dir,
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Shuts down gracefully; fails if that takes longer than `within`.
    async fn stop(mut self, within: Duration) {
        let _ = self.shutdown.take().expect("running").send(());
        let task = self.task.take().expect("running");
        tokio::time::timeout(within, task)
            .await
            .expect("graceful shutdown finished")
            .expect("server task")
            .expect("serve");
    }
}

fn config() -> ServeConfig {
    ServeConfig::default()
}

/// A plain client; no connection reuse, so every request opens a connection.
fn client_from(local: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .local_address(local)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const OTHER_LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A TCP connection to `addr` from the loopback address `from`.
async fn connect_from(from: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind client");
    socket.connect(addr).await.expect("connect")
}

/// Sends `GET /healthz` on `stream` (keep-alive) and reads the whole response.
async fn raw_get(stream: &mut TcpStream) -> (u16, String, String) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    read_response(stream).await
}

/// Reads one response with a `Content-Length` body: (status, head, body).
async fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
            .await
            .expect("response within 20 s")
            .expect("read");
        assert!(n > 0, "connection closed before a response");
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_lowercase();
    let status = head[9..12].parse().expect("status");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().expect("length"))
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
            .await
            .expect("body within 20 s")
            .expect("read");
        assert!(n > 0, "connection closed inside the body");
        data.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&data[head_end..head_end + length]).into_owned();
    (status, head, body)
}

/// Waits until the server closes `stream` (EOF or reset); fails after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((start + within).into(), stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open for {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// Is the connection still open (nothing to read, no EOF)?
fn still_open(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(stream.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

async fn assert_refused(response: reqwest::Response, code: &str) {
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let headers = response.headers().clone();
    assert_eq!(headers["retry-after"], "5");
    assert_eq!(headers["connection"], "close");
    let body: Value = response.json().await.expect("json body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_client_is_closed_after_the_header_timeout() {
    let server = start(ServeConfig {
        header_timeout: Duration::from_secs(2),
        ..config()
    })
    .await;
    let mut stream = connect_from(LOCALHOST, server.addr).await;
    let start = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        .await
        .unwrap();
    // One header byte every 500 ms: the header never completes, bytes keep arriving.
    let mut buf = [0u8; 1024];
    let closed_after = loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the slow client was never closed"
        );
        if stream.write_all(b"X").await.is_err() {
            break start.elapsed();
        }
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Err(_) => {}                                     // still open
            Ok(Ok(0)) | Ok(Err(_)) => break start.elapsed(), // closed
            Ok(Ok(_)) => {}                                  // hyper may say 408 first
        }
    };
    assert!(
        closed_after >= Duration::from_millis(1500),
        "closed before the header timeout: {closed_after:?}"
    );
    // The server still serves others.
    let ok = client_from(LOCALHOST)
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    server.stop(Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = start(ServeConfig {
        idle_timeout: Duration::from_secs(1),
        header_timeout: Duration::from_secs(20),
        ..config()
    })
    .await;
    let mut stream = connect_from(LOCALHOST, server.addr).await;
    let (status, head, _) = raw_get(&mut stream).await;
    assert_eq!(status, 200);
    assert!(!head.contains("connection: close"), "{head}");
    // Keep-alive works: a second request on the same connection, well inside the timeout.
    let (status, _, _) = raw_get(&mut stream).await;
    assert_eq!(status, 200);
    // Then quiet: closed after the idle timeout, long before the header timeout.
    let after = closed_within(&mut stream, Duration::from_secs(15)).await;
    assert!(
        after >= Duration::from_millis(500),
        "closed too early: {after:?}"
    );
    server.stop(Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_408_and_the_connection_is_closed() {
    let server = start(ServeConfig {
        body_timeout: Duration::from_secs(1),
        ..config()
    })
    .await;
    let mut stream = connect_from(LOCALHOST, server.addr).await;
    stream
        .write_all(
            b"POST /api/v1/auth/token HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\"",
        )
        .await
        .unwrap();
    let (status, head, body) = read_response(&mut stream).await;
    assert_eq!(status, 408, "{head}{body}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "body_timeout");
    closed_within(&mut stream, Duration::from_secs(15)).await;
    server.stop(Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_a_client_gets_503_server_busy_and_is_served_once_others_close() {
    let server = start(ServeConfig {
        max_connections: 5,
        max_connections_per_ip: 0,
        ..config()
    })
    .await;
    // Five keep-alive connections, each served once, then held open.
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut stream = connect_from(LOCALHOST, server.addr).await;
        assert_eq!(raw_get(&mut stream).await.0, 200);
        held.push(stream);
    }
    let client = client_from(LOCALHOST);
    let refused = client.get(server.url("/healthz")).send().await.unwrap();
    assert_refused(refused, "server_busy").await;
    // A raw client sees the answer, then the server closes the connection.
    let mut extra = connect_from(LOCALHOST, server.addr).await;
    let (status, head, _) = raw_get(&mut extra).await;
    assert_eq!(status, 503, "{head}");
    closed_within(&mut extra, Duration::from_secs(10)).await;
    assert!(held.iter().all(still_open));

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = client.get(server.url("/healthz")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(
            Instant::now() < deadline,
            "still refused 15 s after the connections closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop(Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_per_address_limit_a_client_gets_503_too_many_connections() {
    let server = start(ServeConfig {
        max_connections: 100,
        max_connections_per_ip: 3,
        ..config()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from(LOCALHOST, server.addr).await;
        assert_eq!(raw_get(&mut stream).await.0, 200);
        held.push(stream);
    }
    let refused = client_from(LOCALHOST)
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_refused(refused, "too_many_connections").await;
    // Another address is served meanwhile.
    let other = client_from(OTHER_LOCAL)
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    // One closes: this address is served again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = client_from(LOCALHOST)
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused after one closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop(Duration::from_secs(15)).await;
}

/// The attack, against the default limits: 1,000 connections that send nothing
/// (spread over eight loopback addresses, 125 each, under the per-address limit, so all
/// are held: together with the slow clients 1,020 of the 1,024 places) and 20 slow-loris
/// clients. A normal client is still served, and the attackers' connections are still
/// open when it is. (The timeouts are longer than the defaults so that the attack lasts
/// the whole test on a slow machine: the timeouts' own tests are above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_and_twenty_slow_clients_do_not_stop_a_normal_client() {
    // Client and server sockets of this test live in one process: about 2,100 descriptors.
    let limit = aliquot_server::conn::raise_open_file_limit();
    assert!(
        limit.is_none_or(|l| l >= 2_400),
        "this test needs 2,400 open files; the hard limit allows {limit:?}"
    );
    let server = start(ServeConfig {
        header_timeout: Duration::from_secs(120),
        idle_timeout: Duration::from_secs(120),
        ..config()
    })
    .await;
    let addr = server.addr;

    let mut idle = Vec::with_capacity(1_000);
    for i in 0..1_000u32 {
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, (i % 8 + 1) as u8));
        idle.push(connect_from(from, addr).await);
    }
    let stop_slow = Arc::new(tokio::sync::Notify::new());
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut stream = connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1)), addr).await;
        let stop = stop_slow.clone();
        slow.push(tokio::spawn(async move {
            let _ = stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
                .await;
            loop {
                tokio::select! {
                    () = stop.notified() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                if stream.write_all(b"X").await.is_err() {
                    return;
                }
            }
        }));
    }
    // Let the server accept all of them.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let client = client_from(OTHER_LOCAL);
    for _ in 0..3 {
        let start = Instant::now();
        let response = client.get(server.url("/healthz")).send().await.unwrap();
        let took = start.elapsed();
        assert_eq!(response.status(), 200);
        assert!(took < Duration::from_secs(5), "served only after {took:?}");
    }
    // The attack was real: the idle connections are held, not refused.
    let open = idle.iter().filter(|s| still_open(s)).count();
    assert!(
        open >= 990,
        "only {open} of 1,000 idle connections are open"
    );

    stop_slow.notify_waiters();
    for s in slow {
        s.abort();
    }
    drop(idle);
    server.stop(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_closes_idle_connections_and_returns() {
    let server = start(config()).await;
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut stream = connect_from(LOCALHOST, server.addr).await;
        assert_eq!(raw_get(&mut stream).await.0, 200);
        held.push(stream);
    }
    // Idle keep-alive connections do not hold shutdown up to the idle timeout (30 s).
    server.stop(Duration::from_secs(15)).await;
    for mut s in held {
        closed_within(&mut s, Duration::from_secs(5)).await;
    }
}

/// A client that trusts only `pem` (no built-in roots).
fn tls_client(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("pem"))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_requests_are_served_with_hsts_and_a_secure_session_cookie() {
    let (tls, pem) =
        aliquot_server::tls::self_signed(&["localhost".to_owned()]).expect("self-signed");
    let server = start(ServeConfig {
        tls: Some(tls),
        ..config()
    })
    .await;
    let base = format!("https://localhost:{}", server.addr.port());
    let client = tls_client(&pem);

    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("https request");
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.headers()["strict-transport-security"],
        aliquot_server::tls::HSTS
    );

    // The web login over TLS sets a Secure cookie.
    server
        .app
        .create_user(
            &aliquot_app::Actor::cli("test"),
            aliquot_app::NewUserInput {
                username: "tech".into(),
                display_name: "Tech".into(),
                role: "technician".into(),
                password: "correct horse battery".into(),
            },
        )
        .await
        .expect("user");
    let login = client
        .post(format!("{base}/login"))
        .header("origin", &base)
        .form(&[("username", "tech"), ("password", "correct horse battery")])
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().expect("cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");

    // A client that does not trust the certificate is refused by its own TLS check.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .build()
        .expect("client");
    assert!(
        untrusting
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );

    // Plain HTTP on the TLS port gets no answer but a closed connection.
    let mut plain = connect_from(LOCALHOST, server.addr).await;
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"));
    server.stop(Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_completes_the_tls_handshake_is_closed_after_the_header_timeout() {
    let (tls, _) =
        aliquot_server::tls::self_signed(&["localhost".to_owned()]).expect("self-signed");
    let server = start(ServeConfig {
        tls: Some(tls),
        header_timeout: Duration::from_secs(2),
        ..config()
    })
    .await;
    let mut stream = connect_from(LOCALHOST, server.addr).await;
    // Half a ClientHello record header, then nothing.
    stream.write_all(&[0x16, 0x03, 0x01]).await.expect("write");
    let waited = closed_within(&mut stream, Duration::from_secs(20)).await;
    assert!(
        waited >= Duration::from_secs(1),
        "closed too early: {waited:?}"
    );
    server.stop(Duration::from_secs(15)).await;
}
