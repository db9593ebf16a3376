//! Runs a simulator until Ctrl-C, for poking at it with kubectl or curl:
//! `cargo run -p kube-sim --example sim -- 127.0.0.1:8443 /tmp/kubeconfig 127.0.0.1:8080`
//! then `kubectl --kubeconfig /tmp/kubeconfig get deployments -A`, and (with the optional third
//! address, where the ingress controller listens) `curl -H 'Host: myapp.localhost' 127.0.0.1:8080`.

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
    let kubeconfig = args.next().map(PathBuf::from);
    let ingress_listen = args
        .next()
        .map(|a| a.parse::<SocketAddr>())
        .transpose()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let config = SimConfig {
        ingress_listen,
        ..SimConfig::default()
    };
    let sim = KubeSim::start_on(addr, config).await?;
    println!("kube-sim serving on {}", sim.url());
    if let Some(ingress) = sim.ingress_addr() {
        println!("ingress controller on http://{ingress}");
    }
    if let Some(path) = kubeconfig {
        sim.write_kubeconfig(&path)?;
        println!("kubeconfig written to {}", path.display());
    }
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
