//! Runs a simulator until Ctrl-C, for poking at it with kubectl or curl:
//! `cargo run -p kube-sim --example sim -- 127.0.0.1:8443 /tmp/kubeconfig`
//! then `kubectl --kubeconfig /tmp/kubeconfig get deployments -A`.

use std::net::SocketAddr;
use std::path::PathBuf;

use kube_sim::{KubeSim, SimConfig};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let sim = KubeSim::start_on(addr, SimConfig::default()).await?;
    println!("kube-sim serving on {}", sim.url());
    if let Some(path) = args.next().map(PathBuf::from) {
        sim.write_kubeconfig(&path)?;
        println!("kubeconfig written to {}", path.display());
    }
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
