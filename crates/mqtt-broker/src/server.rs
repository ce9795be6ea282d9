//! The tokio driver: the listeners (plain TCP, TLS, WebSocket; several at once), one task per
//! connection, the `$SYS` and expiry timers, reloads on request (SIGHUP in the binary), and
//! graceful shutdown. All protocol decisions are made by the session machine and the broker
//! core; this module moves bytes and time.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::{Config, ListenerConfig};
use crate::connection;
use crate::core::Broker;
use crate::tls::ServerTls;
use crate::transport::ListenerRuntime;

/// How long shutdown waits for connections to flush and close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a broker with `config` until `shutdown` completes: binds its listeners, then serves.
///
/// # Errors
/// When a listener cannot be bound, its TLS files cannot be read, or the broker cannot be
/// made (see [`Broker::from_config`]).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with_reload(config, shutdown, Arc::new(Notify::new())).await
}

/// [`run`], reloading what can be reloaded (the listeners' certificates and keys) whenever
/// `reload` is notified.
///
/// # Errors
/// As [`run`].
pub async fn run_with_reload(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reload: Arc<Notify>,
) -> anyhow::Result<()> {
    let mut listeners = Vec::new();
    for l in config.listeners() {
        listeners.push(bind(&config, l).await?);
    }
    let broker = Broker::from_config(config, Instant::now()).map_err(anyhow::Error::msg)?;
    serve_listeners(listeners, Arc::new(broker), shutdown, reload).await
}

/// A listener, bound, with what its connections need.
pub struct Bound {
    listener: TcpListener,
    runtime: Arc<ListenerRuntime>,
}

impl Bound {
    /// The address it listens on.
    ///
    /// # Errors
    /// When the socket cannot say.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Binds the listener `l` (and reads its TLS files).
///
/// # Errors
/// When the address cannot be bound or the TLS files cannot be read.
pub async fn bind(config: &Config, l: ListenerConfig) -> anyhow::Result<Bound> {
    let addr = l.listen_addr();
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    bound(config, listener, l)
}

fn bound(config: &Config, listener: TcpListener, l: ListenerConfig) -> anyhow::Result<Bound> {
    let tls = if l.tls() {
        Some(ServerTls::load(&l).with_context(|| format!("listener on port {}", l.port))?)
    } else {
        None
    };
    Ok(Bound {
        listener,
        runtime: Arc::new(ListenerRuntime {
            config: l,
            tls,
            max_packet_size: config.max_packet_size as usize,
        }),
    })
}

/// Serves MQTT on one plain TCP `listener` until `shutdown` completes; then stops accepting,
/// tells every connection to flush what it has and close, and waits (a bounded time) for them.
///
/// # Errors
/// When the listener's address cannot be read.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let l = ListenerConfig {
        port: listener.local_addr().context("listener address")?.port(),
        ..ListenerConfig::default()
    };
    let bound = bound(broker.config(), listener, l)?;
    serve_listeners(vec![bound], broker, shutdown, Arc::new(Notify::new())).await
}

/// Serves every listener until `shutdown` completes (see [`serve`]); reloads the listeners'
/// TLS files whenever `reload` is notified (a file that fails keeps the configuration in use).
///
/// # Errors
/// When a listener's address cannot be read.
pub async fn serve_listeners(
    listeners: Vec<Bound>,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reload: Arc<Notify>,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(broker.config().max_connections));
    let mut tasks = JoinSet::new();
    if let Some(interval) = broker.config().sys_interval() {
        tasks.spawn(sys_loop(Arc::clone(&broker), interval, stop_rx.clone()));
    }
    tasks.spawn(expiry_loop(Arc::clone(&broker), stop_rx.clone()));
    let mut runtimes = Vec::new();
    for Bound { listener, runtime } in listeners {
        let local = listener.local_addr().context("listener address")?;
        tracing::info!(addr = %local, listener = runtime.config.scheme(),
            version = crate::sys::VERSION, "listening");
        runtimes.push(Arc::clone(&runtime));
        tasks.spawn(accept_loop(
            listener,
            runtime,
            Arc::clone(&broker),
            Arc::clone(&slots),
            stop_rx.clone(),
        ));
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = reload.notified() => reload_tls(&runtimes),
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tracing::info!("shutting down: closing connections");
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

/// Reads every TLS listener's files again.
fn reload_tls(runtimes: &[Arc<ListenerRuntime>]) {
    for r in runtimes {
        if let Some(tls) = &r.tls {
            match tls.reload() {
                Ok(()) => tracing::info!(port = r.config.port, "TLS certificate and key reloaded"),
                Err(e) => tracing::error!(port = r.config.port, error = %e,
                    "TLS files not reloaded; the previous certificate and key stay in use"),
            }
        }
    }
}

/// Accepts connections on one listener until told to stop: each gets a task, within the
/// broker's connection limit and the listener's own.
async fn accept_loop(
    listener: TcpListener,
    runtime: Arc<ListenerRuntime>,
    broker: Arc<Broker>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let own = runtime
        .config
        .max_connections
        .map(|n| Arc::new(Semaphore::new(n)));
    let refusals = AtomicU64::new(0);
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let permit = Arc::clone(&slots).try_acquire_owned().ok();
                    let own_permit = match &own {
                        Some(s) => Arc::clone(s).try_acquire_owned().ok().map(Some),
                        None => Some(None),
                    };
                    let (Some(permit), Some(own_permit)) = (permit, own_permit) else {
                        if refusals.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
                            tracing::warn!(%peer, port = runtime.config.port,
                                limit = broker.config().max_connections,
                                listener_limit = runtime.config.max_connections,
                                "connection limit reached: closing new connections");
                        }
                        drop(stream);
                        continue;
                    };
                    let broker = Arc::clone(&broker);
                    let runtime = Arc::clone(&runtime);
                    let stop = stop.clone();
                    tasks.spawn(async move {
                        connection::accept(stream, peer, runtime, broker, stop).await;
                        drop((permit, own_permit));
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
    drop(listener);
    // The connections see the same stop signal: wait for them here, so that the server's
    // drain waits for them too.
    while tasks.join_next().await.is_some() {}
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
