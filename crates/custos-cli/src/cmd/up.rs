//! `custos up`: a persistent local deployment (`custos-deploy`) in a folder:
//! the log publishing the manifest, two witnesses (quorum 2), five
//! custodians (threshold 3), the delivery service and the public
//! transparency dashboard (`custos audit serve`). Run again on the same
//! folder, it comes back with the same keys, addresses and data.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, ServerSpec};

/// Options of `custos up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Folder of the deployment: keys, manifest and every service's data
    /// (created if missing; reused if it holds a deployment).
    #[arg(long, env = "CUSTOS_DATA", value_name = "DIR")]
    pub data: PathBuf,
    /// Address of the delivery service.
    #[arg(
        long,
        env = "CUSTOS_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:7400"
    )]
    pub listen: SocketAddr,
    /// Address of the transparency dashboard (the page and its JSON API).
    #[arg(
        long,
        env = "CUSTOS_DASHBOARD",
        value_name = "ADDR",
        default_value = "127.0.0.1:7480"
    )]
    pub dashboard: SocketAddr,
    /// Days after today whose escrow keys the custodians generate ahead.
    #[arg(long, value_name = "N", default_value_t = 7, value_parser = clap::value_parser!(u32).range(0..=31))]
    pub days_ahead: u32,
    /// Print what runs where as one JSON object (then keep running).
    #[arg(long)]
    pub json: bool,
}

/// Starts the deployment and runs it until Ctrl-C or SIGTERM.
pub fn run(args: UpArgs) -> anyhow::Result<()> {
    super::init_tracing();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let clock = custos_clock::system();
        let mut server = ServerSpec::production();
        server.listen = Some(args.listen);
        let spec = DeploymentSpec::new("local.custos", clock.clone())
            .custodians(5, 3, CustodianMode::services(args.days_ahead))
            // Key transparency: an epoch every 2 s on loopback (the
            // service's default is 10 s), so `register` returns quickly.
            .with_key_directory(std::time::Duration::from_secs(2))
            .with_server(server);
        let d = Deployment::start(&args.data, spec)
            .await
            .with_context(|| format!("starting the deployment in {}", args.data.display()))?;
        let today = u32::try_from(clock.now_millis() / custos_clock::MILLIS_PER_DAY)?;
        d.wait_day_keys(today..=today)
            .await
            .context("waiting for today's escrow key from the custodians")?;
        let mut config = custos_dashboard::DashboardConfig::new(d.log_url(), d.manifest().clone());
        config.provider_url = Some(d.server_url()?.to_owned());
        config.state = Some(d.dir().join("dashboard.checkpoint"));
        let listener = tokio::net::TcpListener::bind(args.dashboard)
            .await
            .with_context(|| format!("binding the dashboard to {}", args.dashboard))?;
        let dashboard = custos_dashboard::spawn_dashboard(listener, config).await?;
        print_summary(&d, &dashboard.url(), args.json)?;
        super::server::stop_signal().await;
        drop(dashboard);
        d.shutdown().await?;
        anyhow::Ok(())
    })
}

fn print_summary(d: &Deployment, dashboard: &str, json: bool) -> anyhow::Result<()> {
    let m = d.manifest();
    let hash = hex::encode(m.hash()?);
    let paths = d.key_paths();
    let custodians: Vec<serde_json::Value> = m
        .with_role(custos_wire::manifest::Role::Custodian)
        .map(|c| serde_json::json!({"name": c.name, "endpoint": c.endpoint}))
        .collect();
    let summary = serde_json::json!({
        "folder": d.dir(),
        "manifest": d.manifest_path(),
        "manifest_sha256": hash,
        "log": d.log_url(),
        "witnesses": d.witness_urls(),
        "witness_quorum": m.witness_quorum,
        "custodians": custodians,
        "custodian_threshold": m.custodian_threshold,
        "server": d.server_url()?,
        "dashboard": dashboard,
        "court": m.with_role(custos_wire::manifest::Role::Court).next().map(|p| &p.name),
        "authority": m.with_role(custos_wire::manifest::Role::Authority).next().map(|p| &p.name),
        "authority_hpke_public_key": hex::encode(d.keys().authority_hpke.public_key()),
        "keys": {
            "court": paths.court(),
            "authority": paths.authority(),
            "authority_hpke": paths.authority_hpke(),
            "provider": paths.provider(),
        },
    });
    if json {
        println!("{summary}");
        return Ok(());
    }
    println!("custos up: a local deployment in {}", d.dir().display());
    println!(
        "  manifest    {} (SHA-256 {hash})",
        d.manifest_path().display()
    );
    println!("  log         {}", d.log_url());
    for w in d.witness_urls() {
        println!("  witness     {w}");
    }
    for c in m.with_role(custos_wire::manifest::Role::Custodian) {
        println!(
            "  custodian   {} {}",
            c.name,
            c.endpoint.as_deref().unwrap_or("-")
        );
    }
    println!("  server      {}", d.server_url()?);
    println!("  dashboard   {dashboard} (open it in a browser)");
    println!(
        "register a device with:\n  custos --home DIR register --server {} --log {} --manifest {} NAME",
        d.server_url()?,
        d.log_url(),
        d.manifest_path().display()
    );
    println!("Ctrl-C stops every service; run again to resume.");
    Ok(())
}
