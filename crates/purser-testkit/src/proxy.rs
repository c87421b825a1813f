//! A TCP proxy that misbehaves on demand, for fault tests: put it in front of a real service
//! (an anvil node) and make the path to it refuse, hang or slow down.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with the next connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Pass traffic through.
    None,
    /// Accept, then close at once: the service looks down.
    Refuse,
    /// Accept and never answer: the service hangs.
    Hang,
    /// Wait this long before passing each connection through.
    Delay(Duration),
}

/// A proxy on `127.0.0.1:<port>` in front of `upstream`; stops when dropped. Setting a fault
/// also cuts the connections already open, so pooled keep-alive connections feel it at once.
pub struct FaultyProxy {
    address: SocketAddr,
    fault: tokio::sync::watch::Sender<Fault>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let address = listener.local_addr().expect("proxy address");
        let (fault, watching) = tokio::sync::watch::channel(Fault::None);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut changes = watching.clone();
                let fault = *changes.borrow_and_update();
                tokio::spawn(async move {
                    match fault {
                        Fault::Refuse => {
                            let _ = client.shutdown().await;
                        }
                        Fault::Hang => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                        }
                        Fault::Delay(delay) => {
                            tokio::time::sleep(delay).await;
                            pipe(client, upstream, changes).await;
                        }
                        Fault::None => pipe(client, upstream, changes).await,
                    }
                });
            }
        });
        Self {
            address,
            fault,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Passes bytes both ways until either side closes or a fault is set.
async fn pipe(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut changes: tokio::sync::watch::Receiver<Fault>,
) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = changes.wait_for(|fault| *fault != Fault::None) => {}
    }
}
