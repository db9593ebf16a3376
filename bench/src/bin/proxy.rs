//! `proxy`: what the applications proxy costs. Starts the Kubernetes simulator and
//! shiplog on a database of its own, deploys one usecase, then times requests to
//! its echo application directly and through the proxy (sequential latency,
//! concurrent throughput, a large upload, a streamed response). Numbers, not assertions.
//!
//! `cargo run --release -p shiplog-bench --bin proxy`

use anyhow::{bail, Context};
use clap::Parser;
use kube_sim::{KubeSim, SimConfig};
use serde_json::Value;
use shiplog_api::server::{ClusterMode, Server, Settings, StreamSettings};
use shiplog_client::wire::usecases::{
    CreateDeployment, CreateUsecase, DeploymentConfigBody, ImageBody,
};
use shiplog_client::Client;
use shiplog_infrastructure::kube_cluster::{deployment_name, KubeSettings};
use sqlx::{Connection, PgConnection};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// PostgreSQL server (a database `shiplog_bench_proxy_<random>` is created and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    /// Sequential requests per measurement.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Clients sending at once in the throughput measurement.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Size of the upload, in MiB.
    #[arg(long, default_value_t = 64)]
    mib: usize,
}

const TOKEN: &str = "bench-admin-token-0123456789";
const NAMESPACE: &str = "bench";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let name = format!("shiplog_bench_proxy_{}", Uuid::new_v4().simple());
    let result = run(&args, &format!("{}/{name}", args.server)).await;
    let mut conn = PgConnection::connect(&format!("{}/postgres", args.server)).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    result
}

async fn run(args: &Args, database_url: &str) -> anyhow::Result<()> {
    let sim = KubeSim::start(SimConfig {
        ready_delay: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await?;
    let settings = Settings {
        listen: "127.0.0.1:0".parse()?,
        database_url: database_url.to_owned(),
        admin_token: Some(TOKEN.to_owned()),
        cluster: ClusterMode::Kube,
        kube: KubeSettings {
            namespace: NAMESPACE.to_owned(),
            image_pull_secrets: Vec::new(),
            progress_deadline: Duration::from_secs(60),
            ingress: shiplog_application::IngressSettings::default(),
            request_timeout: Duration::from_secs(10),
        },
        rollout_timeout: Duration::from_secs(60),
        streams: StreamSettings::default(),
        cors_origins: Vec::new(),
        proxy_listen: "127.0.0.1:0".parse()?,
        proxy_cors_origins: Vec::new(),
        catalog: shiplog_application::Catalog::builtin(),
        deployments_page: "/deployments".to_owned(),
        ingress_listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        billing: shiplog_application::BillingSettings::default(),
        // Measured as before digests: no registry lookup per deployment.
        resolve_digests: shiplog_api::server::ResolveDigests::Never,
        insecure_registries: Vec::new(),
        auto_update: Default::default(),
        require_reason: false,
        limits: shiplog_api::limits::RequestLimits::default(),
        sim_faults: Default::default(),
        oidc: None,
        console: Default::default(),
        secret_key: shiplog_api::server::SecretKeySource::Generated(None),
    };
    let server = Server::start_with_kube(&settings, kube::Config::new(sim.url().parse()?)).await?;
    let api = format!("http://{}", server.local_addr()?);
    let proxy = format!("http://{}", server.proxy_addr()?);
    tokio::spawn(server.run(std::future::pending()));

    let http = reqwest::Client::new();
    let (usecase, deployment) = deploy(&http, &api).await?;
    let echo = sim
        .echo_addr(NAMESPACE, &deployment_name(deployment))
        .context("the echo application is not up")?;
    let direct = format!("http://{echo}");
    let through = format!("{proxy}/{usecase}");
    println!(
        "{} sequential POSTs, {} concurrent clients, a {} MiB upload (debug builds are much slower; use --release)",
        args.requests, args.concurrency, args.mib
    );
    for (label, base) in [
        ("direct to the app", &direct),
        ("through the proxy", &through),
    ] {
        let (median, p95, p99) = sequential(&http, base, args.requests).await?;
        println!("{label:>18}: latency median {median:.2} ms, p95 {p95:.2} ms, p99 {p99:.2} ms");
        let rate = concurrent(&http, base, args.requests, args.concurrency).await?;
        println!(
            "{label:>18}: {rate:.0} requests/s with {} clients",
            args.concurrency
        );
        let (up, chunks) = transfers(&http, base, args.mib).await?;
        println!("{label:>18}: upload {up:.0} MiB/s; 1000 streamed chunks in {chunks:.1} ms");
    }
    sim.shutdown().await;
    Ok(())
}

/// Registers a usecase, deploys it and waits until it is deployed.
async fn deploy(http: &reqwest::Client, api: &str) -> anyhow::Result<(Uuid, Uuid)> {
    let client = Client::with_http(http.clone(), api, Some(TOKEN));
    let usecase = client
        .create_usecase(
            &CreateUsecase {
                name: "bench".to_owned(),
                description: None,
            },
            None,
        )
        .await?
        .id;
    let body = CreateDeployment {
        config: DeploymentConfigBody::image(ImageBody::tagged("r.example.com", "bench/echo", "1")),
    };
    let deployment = client.deploy(usecase, &body).await?.id;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = client.deployment(usecase, deployment).await?;
        if view.status.as_str() == "deployed" {
            return Ok((usecase, deployment));
        }
        if Instant::now() > deadline {
            bail!(
                "the deployment never became deployed: {}",
                view.status.as_str()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let response = http
        .post(format!("{base}/execute"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"question": "what is your favorite color?"}"#)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("{base}: {}", response.status());
    }
    response.bytes().await?;
    Ok(())
}

/// Median, p95 and p99 latency in milliseconds of `n` requests one after the other.
async fn sequential(
    http: &reqwest::Client,
    base: &str,
    n: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        post(http, base).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    Ok((at(0.5), at(0.95), at(0.99)))
}

/// Requests per second with `clients` sending `n` requests in all.
async fn concurrent(
    http: &reqwest::Client,
    base: &str,
    n: usize,
    clients: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let per_client = n.div_ceil(clients);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let http = http.clone();
            let base = base.to_owned();
            tokio::spawn(async move {
                for _ in 0..per_client {
                    post(&http, &base).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok((per_client * clients) as f64 / started.elapsed().as_secs_f64())
}

/// Upload rate in MiB/s, and milliseconds for 1000 chunks of a streamed response.
async fn transfers(http: &reqwest::Client, base: &str, mib: usize) -> anyhow::Result<(f64, f64)> {
    let body = vec![b'x'; mib * 1024 * 1024];
    let started = Instant::now();
    let echo: Value = http
        .put(format!("{base}/upload"))
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let up = mib as f64 / started.elapsed().as_secs_f64();
    if echo["bodyBytes"].as_u64() != Some((mib * 1024 * 1024) as u64) {
        bail!("the application saw {} bytes", echo["bodyBytes"]);
    }
    // 1000 lines as fast as the app writes them: the streaming path, chunk by chunk.
    let started = Instant::now();
    let response = http
        .get(format!("{base}/stream?chunks=1000&intervalMs=0"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .error_for_status()?;
    let lines = String::from_utf8_lossy(&response.bytes().await?)
        .lines()
        .count();
    if lines != 1000 {
        bail!("the stream carried {lines} lines, not 1000");
    }
    Ok((up, started.elapsed().as_secs_f64() * 1000.0))
}
