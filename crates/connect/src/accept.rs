//! The accept loop both listeners share: a connection cap (the next connection is closed at
//! once, logged at most once a second with the address only), one task per connection, and
//! a shutdown that stops accepting, tells every connection to stop between messages, and
//! waits for them (a message being stored is finished and answered).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Accepts on `listener` until `shutdown`, running `serve(stream, stop)` for each connection
/// while fewer than `max_connections` are open. `stop` turns true at shutdown.
pub(crate) async fn accept_loop<F, Fut>(
    name: &'static str,
    listener: TcpListener,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send,
    serve: F,
) -> std::io::Result<()>
where
    F: Fn(TcpStream, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut refused_logged: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off a moment.
                        tracing::warn!(listener = name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    if refused_logged.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                        tracing::warn!(listener = name, peer = %peer.ip(), max = max_connections, "connection refused: too many connections");
                        refused_logged = Some(Instant::now());
                    }
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let work = serve(stream, stop_rx.clone());
                tasks.spawn(async move {
                    work.await;
                    drop(slot);
                });
                // Reap finished connections so the set stays small.
                while tasks.try_join_next().is_some() {}
            }
        }
    }
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}
