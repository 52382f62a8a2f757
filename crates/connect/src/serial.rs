//! A serial line (RS-232 through a tty) as a byte stream the ASTM link can run over: the tty
//! is put in raw mode at the given speed, and two pumps move bytes between it and an
//! in-process duplex pipe (a blocking thread reads the tty; writes go through the blocking
//! pool), so the listener's connection code is the same for TCP and serial lines.

use std::io::{Read, Write};
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// Opens `path` (e.g. `/dev/ttyUSB0`, or one end of a `socat` pty pair) raw at `baud` and
/// returns the stream end the link reads and writes. The pumps stop when either side closes.
pub fn open_serial(path: &Path, baud: u32) -> std::io::Result<DuplexStream> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut t = rustix::termios::tcgetattr(&tty)?;
    t.make_raw();
    t.set_speed(baud)?;
    rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &t)?;
    let mut reader = tty.try_clone()?;
    let writer = std::sync::Arc::new(std::sync::Mutex::new(tty));
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut from_pipe, mut to_pipe) = tokio::io::split(theirs);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    // tty → pipe: a blocking read loop on its own thread.
    std::thread::Builder::new()
        .name("serial-read".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.blocking_send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        })?;
    tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            if to_pipe.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    // pipe → tty: each chunk written on the blocking pool.
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let n = match from_pipe.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = buf[..n].to_vec();
            let writer = writer.clone();
            let written = tokio::task::spawn_blocking(move || {
                let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
                w.write_all(&chunk).and_then(|()| w.flush())
            })
            .await;
            if !matches!(written, Ok(Ok(()))) {
                return;
            }
        }
    });
    Ok(ours)
}
