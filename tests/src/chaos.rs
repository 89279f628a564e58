//! A TCP proxy on `127.0.0.1:0` in front of the database that a test can
//! break (every open connection is cut and new ones are dropped at once)
//! and restore — the database "going away" without touching the real one.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug)]
pub struct ChaosProxy {
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl ChaosProxy {
    /// Starts forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (up, watcher) = watch::channel(true);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*watcher.borrow() {
                    drop(client);
                    continue;
                }
                let mut down = watcher.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up, accept }
    }

    /// Cuts every connection and refuses new ones until [`restore`](Self::restore).
    pub fn break_connections(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
