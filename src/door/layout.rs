//! How the data plane uses the cores: one shared work-stealing runtime, or one single-threaded
//! runtime per core, each accepting on its own `SO_REUSEPORT` listener.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::door::{DoorService, FrontDoor};
use crate::server::{serve, ServerLimits};

/// The runtime layout of the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The data plane runs on the caller's (multi-threaded, work-stealing) runtime.
    Shared,
    /// This many threads, each a current-thread runtime with its own listener on the same port.
    PerCore(usize),
}

impl Layout {
    /// One runtime per available core.
    pub fn per_core() -> Layout {
        Layout::PerCore(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

impl FromStr for Layout {
    type Err = String;

    fn from_str(text: &str) -> Result<Layout, String> {
        match text {
            "shared" => Ok(Layout::Shared),
            "per-core" => Ok(Layout::per_core()),
            _ => Err(format!("{text:?} is not a layout; use shared or per-core")),
        }
    }
}

/// Bound data-plane sockets, not yet serving.
pub struct DataListeners {
    /// The address they listen on.
    pub addr: SocketAddr,
    listeners: Vec<std::net::TcpListener>,
    layout: Layout,
}

/// Binds the data plane's listener(s) for `layout` on `addr` (port 0 picks one port for all).
pub fn bind(addr: SocketAddr, layout: Layout) -> std::io::Result<DataListeners> {
    let count = match layout {
        Layout::Shared => 1,
        Layout::PerCore(n) => n.max(1),
    };
    let first = bind_one(addr, count > 1)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(bind_one(addr, true)?);
    }
    Ok(DataListeners {
        addr,
        listeners,
        layout,
    })
}

fn bind_one(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(reuse_port)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Serves the data plane on `listeners` until `shutdown` turns true (over TLS with `tls`); the
/// handles end after draining.
pub fn spawn_data_plane(
    listeners: DataListeners,
    door: Arc<FrontDoor>,
    limits: ServerLimits,
    shutdown: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let count = listeners.listeners.len();
    let mut handles = Vec::with_capacity(count);
    for (i, std_listener) in listeners.listeners.into_iter().enumerate() {
        let door = door.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        let mut limits = limits;
        limits.max_connections = (limits.max_connections / count).max(1);
        match listeners.layout {
            Layout::Shared => {
                let listener = TcpListener::from_std(std_listener)?;
                handles.push(tokio::spawn(serve_door(
                    listener, door, limits, shutdown, tls,
                )));
            }
            Layout::PerCore(_) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                // The thread reports its end through a channel: joining it from a blocking task
                // would make the caller's runtime wait for it on drop.
                let (done, finished) = tokio::sync::oneshot::channel::<()>();
                std::thread::Builder::new()
                    .name(format!("tokengate-data-{i}"))
                    .spawn(move || {
                        runtime.block_on(async move {
                            match TcpListener::from_std(std_listener) {
                                Ok(listener) => serve_door(listener, door, limits, shutdown, tls).await,
                                Err(error) => tracing::error!(%error, "cannot register the data-plane listener"),
                            }
                        });
                        let _ = done.send(());
                    })?;
                handles.push(tokio::spawn(async move {
                    let _ = finished.await;
                }));
            }
        }
    }
    Ok(handles)
}

async fn serve_door(
    listener: TcpListener,
    door: Arc<FrontDoor>,
    limits: ServerLimits,
    shutdown: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) {
    let metrics = Some(door.metrics.clone());
    serve(
        listener,
        move |peer| DoorService::new(door.clone(), peer),
        limits,
        shutdown,
        metrics,
        tls,
    )
    .await;
}
