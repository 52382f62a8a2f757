//! Instruments that listen: the laboratory system connects out to each (its registered
//! `connect_to`), keeps the connection, and serves it exactly as a connection made to the
//! listeners (MLLP or ASTM, acknowledged after commit). A lost connection is made again with
//! back-off (1 s doubling to 1 min); an instrument registered, changed or retired is picked up
//! within `poll`.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aliquot_app::App;
use aliquot_app::connections::{ConnectOut, Protocol};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{AstmConfig, MllpConfig, astm_listener, mllp};

/// Keeps a connection to every instrument that listens until `shutdown`. A connection whose
/// instrument was changed or retired is told to stop and ends between messages (a message
/// being stored is finished and answered first), as at shutdown.
pub async fn run_connect_out(app: App, poll: Duration, shutdown: impl Future<Output = ()> + Send) {
    type Running = (ConnectOut, JoinHandle<()>, watch::Sender<bool>);
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut stopping: Vec<JoinHandle<()>> = Vec::new();
    tokio::pin!(shutdown);
    loop {
        match app.connect_out_targets().await {
            Ok(targets) => {
                // Stop what was removed, retired or changed; start what is new.
                let (keep, gone): (HashMap<_, _>, HashMap<_, _>) =
                    running.drain().partition(|(_, (t, task, _))| {
                        targets.iter().any(|n| n == t) && !task.is_finished()
                    });
                running = keep;
                for (code, (_, task, stop)) in gone {
                    let _ = stop.send(true);
                    stopping.push(task);
                    tracing::info!(instrument = %code, "connection out stopping");
                }
                stopping.retain(|t| !t.is_finished());
                for t in targets {
                    if !running.contains_key(&t.code) {
                        let (stop_tx, stop_rx) = watch::channel(false);
                        let task = tokio::spawn(keep_connected(app.clone(), t.clone(), stop_rx));
                        running.insert(t.code.clone(), (t, task, stop_tx));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "instruments to connect to not read"),
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(poll) => {}
        }
    }
    for (_, (_, task, stop)) in running {
        let _ = stop.send(true);
        stopping.push(task);
    }
    for task in stopping {
        let _ = task.await;
    }
}

async fn keep_connected(app: App, target: ConnectOut, stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        if *stop.borrow() {
            return;
        }
        match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&target.address))
            .await
        {
            Ok(Ok(stream)) => {
                backoff = Duration::from_secs(1);
                let _ = stream.set_nodelay(true);
                tracing::info!(instrument = %target.code, "connected out");
                match target.protocol {
                    Protocol::Hl7 => {
                        mllp::connection(stream, &app, &MllpConfig::default(), stop.clone()).await
                    }
                    Protocol::Astm => {
                        astm_listener::connection(
                            stream,
                            &app,
                            &AstmConfig::default(),
                            stop.clone(),
                        )
                        .await
                    }
                }
                tracing::info!(instrument = %target.code, "connection out closed");
            }
            _ => {
                tracing::warn!(instrument = %target.code, "instrument not reachable; trying again");
            }
        }
        let mut stop = stop.clone();
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}
