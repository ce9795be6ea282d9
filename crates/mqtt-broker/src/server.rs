//! The tokio driver: the listener, one task per connection, the `$SYS` timer, and graceful
//! shutdown. All protocol decisions are made by the session machine and the broker core; this
//! module moves bytes and time.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::connection;
use crate::core::Broker;

/// How long shutdown waits for connections to flush and close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a broker with `config` until `shutdown` completes: binds the listener, then serves.
///
/// # Errors
/// When the listener cannot be bound.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = config.listen_addr();
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let broker = Broker::from_config(config, Instant::now()).map_err(anyhow::Error::msg)?;
    serve(listener, Arc::new(broker), shutdown).await
}

/// Serves MQTT on `listener` until `shutdown` completes; then stops accepting, tells every
/// connection to flush what it has and close, and waits (a bounded time) for them.
///
/// # Errors
/// When the listener's address cannot be read.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr().context("listener address")?;
    tracing::info!(addr = %local, version = crate::sys::VERSION, "listening");
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(broker.config().max_connections));
    let mut tasks = JoinSet::new();
    if let Some(interval) = broker.config().sys_interval() {
        tasks.spawn(sys_loop(Arc::clone(&broker), interval, stop_rx.clone()));
    }
    tasks.spawn(expiry_loop(Arc::clone(&broker), stop_rx.clone()));
    let refusals = AtomicU64::new(0);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                        if refusals.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
                            tracing::warn!(%peer, limit = broker.config().max_connections,
                                "connection limit reached: closing new connections");
                        }
                        drop(stream);
                        continue;
                    };
                    let broker = Arc::clone(&broker);
                    let stop = stop_rx.clone();
                    tasks.spawn(async move {
                        connection::run(stream, peer, broker, stop).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tracing::info!("shutting down: closing connections");
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; abandoning them");
        tasks.abort_all();
    }
    // Everything the store was told reaches the disk before the process ends.
    let store = Arc::clone(&broker);
    let _ = tokio::task::spawn_blocking(move || store.flush_store()).await;
    tracing::info!("stopped");
    Ok(())
}

async fn sys_loop(broker: Arc<Broker>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticks.tick() => broker.publish_sys(Instant::now()),
            _ = stop.changed() => return,
        }
    }
}

/// How often the timers of detached sessions (delayed wills, session expiry) are checked.
const EXPIRY_TICK: Duration = Duration::from_millis(200);

async fn expiry_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(EXPIRY_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => broker.expire(Instant::now()),
            _ = stop.changed() => return,
        }
    }
}

/// The address a connection came from, for logs.
pub(crate) type Peer = SocketAddr;
