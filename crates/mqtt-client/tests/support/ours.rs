//! Our broker, in process, on a free loopback port, and a TCP proxy that can cut every
//! connection through it at once.
//!
//! The broker runs on its own thread and runtime, so [`OurBroker::kill`] can drop it like a
//! crashed process: every connection closes without a word, every session is gone (the broker
//! keeps sessions in memory until persistence arrives). [`OurBroker::restart`] starts a new one
//! on the same port.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mqtt_broker::config::Config;
use mqtt_broker::core::Broker;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// Our broker on `127.0.0.1:port()`.
pub struct OurBroker {
    port: u16,
    config: Config,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl OurBroker {
    /// Starts a broker with the default configuration on a free port.
    pub fn start() -> Self {
        Self::start_with(Config::default())
    }

    /// Starts a broker with `config` (its bind address and port are replaced).
    pub fn start_with(mut config: Config) -> Self {
        config.bind = Ipv4Addr::LOCALHOST.into();
        config.port = 0;
        let mut broker = Self {
            port: 0,
            config,
            running: None,
        };
        broker.launch();
        broker
    }

    fn launch(&mut self) {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let config = self.config.clone();
        let port = self.port;
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                let listener = loop {
                    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
                        Ok(l) => break l,
                        Err(e) if Instant::now() < deadline => {
                            let _ = e;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => panic!("cannot bind port {port}: {e}"),
                    }
                };
                let port = listener.local_addr().expect("address").port();
                ready_tx.send(port).expect("ready");
                let broker = Arc::new(
                    Broker::from_config(config, std::time::Instant::now()).expect("configuration"),
                );
                tokio::spawn(mqtt_broker::serve(
                    listener,
                    broker,
                    std::future::pending::<()>(),
                ));
                // Until killed; then the runtime is dropped with every task in it: no
                // graceful drain, like a crash.
                let _ = stop_rx.await;
            });
            runtime.shutdown_background();
        });
        self.port = ready_rx
            .recv_timeout(Duration::from_secs(15))
            .expect("the broker did not start");
        self.running = Some((stop_tx, thread));
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.port).into()
    }

    /// Stops it like a crash: connections drop, sessions are lost.
    pub fn kill(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            // The runtime is then shut down in the background, closing every socket.
            drop(stop);
            let _ = thread.join();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for OurBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy on a free loopback port forwarding to `upstream`; [`CuttingProxy::cut`] closes
/// every connection through it at once (both sides), as a network failure would.
pub struct CuttingProxy {
    port: u16,
    cut: watch::Sender<u64>,
    cuts: Arc<Mutex<u64>>,
}

impl CuttingProxy {
    /// Starts the proxy on the current tokio runtime.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("address").port();
        let (cut, cut_rx) = watch::channel(0u64);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let mut cut_rx = cut_rx.clone();
                cut_rx.borrow_and_update();
                tokio::spawn(async move {
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = outbound.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut ri, &mut wo) => {}
                        _ = tokio::io::copy(&mut ro, &mut wi) => {}
                        _ = cut_rx.changed() => {}
                    }
                    let _ = wi.shutdown().await;
                    let _ = wo.shutdown().await;
                });
            }
        });
        Self {
            port,
            cut,
            cuts: Arc::new(Mutex::new(0)),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection through the proxy.
    pub fn cut(&self) {
        let mut cuts = self.cuts.lock().unwrap_or_else(PoisonError::into_inner);
        *cuts += 1;
        let _ = self.cut.send(*cuts);
    }
}
