//! The command line: `serve`, `migrate`, and the bootstrap commands that work before any key
//! exists (`tenant create`, `key create`). One-shot commands print what they did on stdout, the
//! value worth scripting (an id, or a key's secret) on the last line.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use purser_domain::auth::{Role, mint_api_key};
use purser_domain::id::TenantId;
use purser_domain::tenant::{NewTenant, TenantKind, TenantName};

use crate::app::{self, Database, Platform};
use crate::config::Config;
use crate::demo_application::DemoApplication;

#[derive(Debug, Parser)]
#[command(
    name = "purser",
    version,
    about = "Coordination for machine commerce over HTTP 402"
)]
pub struct Cli {
    /// A TOML configuration file. `PURSER__SECTION__KEY` environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Walk through the whole flow on a local chain: a merchant's API behind the gateway, and an
    /// agent that finds it in the catalog, pays for it and gets it. Then keep serving.
    Demo(DemoArgs),
    /// Run every service until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Local anvil chains for development: Base, Arbitrum, Optimism and Ethereum stand-ins with
    /// Purser's EIP-3009 token deployed, test accounts funded, and each chain's fee mechanics.
    #[command(subcommand)]
    Devnet(DevnetCommand),
}

#[derive(Debug, Subcommand)]
pub enum DevnetCommand {
    /// Start the chains in the background; write DIR/devnet.json and DIR/purser.toml.
    Up {
        #[arg(long, default_value = ".devnet")]
        dir: PathBuf,
        /// Do not place a copy of the token at each chain's canonical testnet USDC address.
        #[arg(long)]
        no_canonical_usdc: bool,
    },
    /// Stop the chains started in DIR.
    Down {
        #[arg(long, default_value = ".devnet")]
        dir: PathBuf,
    },
    /// Change a running chain's fee levels or its price feed's answer, then print them (with no
    /// change, only print them).
    Fees(Box<DevnetFeesArgs>),
}

#[derive(Debug, Args)]
pub struct DevnetFeesArgs {
    #[arg(long, default_value = ".devnet")]
    pub dir: PathBuf,
    /// The chain: its id (84532), name (base-sepolia) or network (eip155:84532).
    #[arg(long)]
    pub chain: String,
    /// The chain's base fee (a block is mined with it), in gwei: a decimal such as 0.05.
    #[arg(long, value_name = "GWEI", value_parser = purser_devnet::fees::parse_gwei)]
    pub base_fee_gwei: Option<u128>,
    /// op-stack: the L1 base fee in the L1Block predeploy; arbitrum: the L1 base fee estimate.
    /// In gwei.
    #[arg(long, value_name = "GWEI", value_parser = purser_devnet::fees::parse_gwei)]
    pub l1_base_fee_gwei: Option<u128>,
    /// op-stack: the L1 blob base fee, in gwei.
    #[arg(long, value_name = "GWEI", value_parser = purser_devnet::fees::parse_gwei)]
    pub blob_base_fee_gwei: Option<u128>,
    /// op-stack: the base fee scalar, in millionths.
    #[arg(long)]
    pub base_fee_scalar: Option<u32>,
    /// op-stack: the blob base fee scalar, in millionths.
    #[arg(long)]
    pub blob_base_fee_scalar: Option<u32>,
    /// op-stack: the operator fee scalar, in millionths.
    #[arg(long)]
    pub operator_fee_scalar: Option<u32>,
    /// op-stack: the operator fee constant, in wei.
    #[arg(long, value_name = "WEI")]
    pub operator_fee_constant_wei: Option<u64>,
    /// arbitrum: bytes charged to every transaction besides its calldata.
    #[arg(long, value_name = "BYTES")]
    pub per_tx_overhead_bytes: Option<u64>,
    /// The chain's ETH/USD feed's new answer, in USD (3500.25).
    #[arg(long, value_name = "USD")]
    pub eth_usd: Option<String>,
    /// When that answer counts as updated, in seconds since the epoch (default: now); an old
    /// time makes the feed stale.
    #[arg(long, value_name = "UNIX_SECONDS", requires = "eth_usd")]
    pub eth_usd_updated_at: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address of Purser's API (GraphQL, facilitator, discovery).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8402")]
    pub listen: SocketAddr,
    /// Address of the gateway in front of the demo merchant's API.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8403")]
    pub gateway_listen: SocketAddr,
    /// Stop after the walkthrough instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides `server.listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its id (last line).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value_t = KindArg::Merchant)]
        kind: KindArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Merchant,
    BusinessUnit,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    TenantAdmin,
    TenantRead,
    ResourceServer,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key and print its secret (last line). It is shown once.
    Create {
        /// The tenant the key acts for.
        #[arg(
            long,
            required_unless_present = "operator",
            conflicts_with = "operator"
        )]
        tenant: Option<String>,
        /// The key's role within its tenant.
        #[arg(
            long,
            value_enum,
            required_unless_present = "operator",
            conflicts_with = "operator"
        )]
        role: Option<RoleArg>,
        /// Create a platform operator key instead.
        #[arg(long)]
        operator: bool,
        /// A label to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
    },
}

impl Command {
    /// The log filter for the command: one-shot commands keep their output to themselves.
    pub fn log_filter_override(&self) -> Option<&'static str> {
        match self {
            Command::Serve(_) => None,
            _ => Some("warn"),
        }
    }
}

/// Runs `command`; `out` receives what it prints.
pub async fn run(
    command: Command,
    mut config: Config,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    match command {
        Command::Demo(args) => {
            let options = purser_demo::DemoOptions {
                listen: args.listen,
                gateway_listen: args.gateway_listen,
                keep_serving: !args.exit,
            };
            purser_demo::run::<DemoApplication>(
                options,
                out,
                purser_http::serve::shutdown_signal(),
            )
            .await?;
            Ok(())
        }
        Command::Serve(args) => {
            if let Some(listen) = args.listen {
                config.server.listen = listen;
            }
            let platform = Platform::open(&config).await?;
            let listener = tokio::net::TcpListener::bind(config.server.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.server.listen))?;
            app::serve(
                &config,
                platform,
                listener,
                purser_http::serve::shutdown_signal(),
            )
            .await
        }
        Command::Devnet(DevnetCommand::Up {
            dir,
            no_canonical_usdc,
        }) => {
            let options = purser_devnet::DevnetOptions {
                canonical_usdc: !no_canonical_usdc,
                ..purser_devnet::DevnetOptions::default()
            };
            let manifest = purser_devnet::up(&dir, options).await?;
            for chain in &manifest.chains {
                writeln!(
                    out,
                    "{:<18} {:<16} {}  {:<8}  token {} ({} v{})",
                    chain.name,
                    chain.network,
                    chain.rpc_url,
                    chain.fees.kind(),
                    chain.token.address,
                    chain.token.name,
                    chain.token.version
                )?;
            }
            for chain in &manifest.chains {
                if let Some(feed) = &chain.price_feed {
                    writeln!(
                        out,
                        "price feed {} on {}: {}",
                        feed.description, chain.name, feed.address
                    )?;
                }
            }
            if let Some(chain) = manifest.chains.first() {
                for set in &chain.escrow_contracts {
                    writeln!(
                        out,
                        "auth-capture escrow {} (spec {}) on every chain: escrow {}, ERC-3009 \
                         collector {}, refund collector {}",
                        set.deployment,
                        purser_devnet::AUTH_CAPTURE_SPEC_VERSION,
                        set.auth_capture_escrow,
                        set.erc3009_payment_collector,
                        set.operator_refund_collector
                    )?;
                }
            }
            writeln!(
                out,
                "change fees while it runs with: purser devnet fees --dir {} --chain <name>",
                dir.display()
            )?;
            writeln!(
                out,
                "funded test accounts: {} (keys in {}/devnet.json)",
                manifest.accounts.len(),
                dir.display()
            )?;
            writeln!(
                out,
                "run Purser on these rails with: purser --config {}/purser.toml serve",
                dir.display()
            )?;
            writeln!(out, "{}", dir.join("purser.toml").display())?;
            Ok(())
        }
        Command::Devnet(DevnetCommand::Fees(args)) => {
            let change = purser_devnet::FeeChange {
                levels: purser_devnet::FeeLevels {
                    base_fee_wei: args.base_fee_gwei,
                    l1_base_fee_wei: args.l1_base_fee_gwei,
                    blob_base_fee_wei: args.blob_base_fee_gwei,
                    base_fee_scalar: args.base_fee_scalar,
                    blob_base_fee_scalar: args.blob_base_fee_scalar,
                    operator_fee_scalar: args.operator_fee_scalar,
                    operator_fee_constant_wei: args.operator_fee_constant_wei,
                    per_tx_overhead_bytes: args.per_tx_overhead_bytes,
                },
                price: args.eth_usd,
                price_updated_at: args.eth_usd_updated_at,
            };
            let report = purser_devnet::change_fees(&args.dir, &args.chain, &change).await?;
            write!(out, "{report}")?;
            Ok(())
        }
        Command::Devnet(DevnetCommand::Down { dir }) => {
            let outcome = purser_devnet::down(&dir).await?;
            writeln!(
                out,
                "stopped {} chain(s) in {}",
                outcome.terminated + outcome.killed,
                dir.display()
            )?;
            Ok(())
        }
        Command::Migrate => {
            let database = Database::open(&config.storage).await?;
            database.migrate().await?;
            writeln!(
                out,
                "migrations applied ({})",
                database.describe(&config.storage)
            )?;
            Ok(())
        }
        Command::Tenant(TenantCommand::Create { name, kind }) => {
            let store = open_migrated(&config).await?;
            let kind = match kind {
                KindArg::Merchant => TenantKind::Merchant,
                KindArg::BusinessUnit => TenantKind::BusinessUnit,
            };
            let tenant = store
                .create_tenant(NewTenant::new(TenantName::parse(&name)?, kind))
                .await?;
            writeln!(out, "created tenant `{}` ({})", tenant.name, tenant.kind)?;
            writeln!(out, "{}", tenant.id)?;
            Ok(())
        }
        Command::Key(KeyCommand::Create {
            tenant,
            role,
            operator,
            name,
        }) => {
            let store = open_migrated(&config).await?;
            let (tenant_id, role) = if operator {
                (None, Role::Operator)
            } else {
                let tenant: TenantId = tenant.as_deref().unwrap_or_default().parse()?;
                if store.get_tenant(tenant).await?.is_none() {
                    anyhow::bail!("no tenant with id {tenant}");
                }
                let role = match role {
                    Some(RoleArg::TenantAdmin) | None => Role::TenantAdmin,
                    Some(RoleArg::TenantRead) => Role::TenantRead,
                    Some(RoleArg::ResourceServer) => Role::ResourceServer,
                };
                (Some(tenant), role)
            };
            let (record, token) = mint_api_key(tenant_id, role, &name)?;
            let key = store.insert_api_key(record).await?;
            match key.tenant_id {
                Some(tenant) => writeln!(
                    out,
                    "created {} key {} for tenant {tenant}",
                    key.role, key.id
                )?,
                None => writeln!(out, "created operator key {}", key.id)?,
            }
            writeln!(out, "store this secret now; it is shown only once:")?;
            writeln!(out, "{}", token.expose())?;
            Ok(())
        }
    }
}

async fn open_migrated(
    config: &Config,
) -> anyhow::Result<std::sync::Arc<dyn purser_domain::repo::Store>> {
    let database = Database::open(&config.storage).await?;
    database.migrate().await?;
    Ok(database.into_store())
}
