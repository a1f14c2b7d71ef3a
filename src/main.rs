//! The `spidergate` command: `serve` (the default) and the operator's sub-commands.

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use spidergate::brands::{self, NewBrand};
use spidergate::clock::Clock;
use spidergate::config::Config;
use spidergate::vault::{self, VaultCipher};
use spidergate::{auth::TokenCache, storage, telemetry};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: glibc's per-thread arenas hold on to freed request buffers, and its malloc/free
/// showed at ~8 % of the gateway's CPU profile.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[derive(Parser)]
#[command(
    name = "spidergate",
    version,
    about = "Self-hosted OpenAI-compatible LLM gateway"
)]
struct Cli {
    /// Config file layered over the built-in defaults (also `SPIDERGATE_CONFIG`).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Manage brands (tenants) directly in the database.
    #[command(subcommand)]
    Brand(BrandCommand),
    /// Vault keys: generate one, or move every stored credential under the first configured key.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// What this config would run with: database, migrations, Redis, vault keys, providers.
    /// Runs no migration; exits 1 when something would stop the gateway from serving.
    Status,
}

#[derive(Subcommand)]
enum VaultCommand {
    /// Print a new random Fernet key for `SPIDERGATE_VAULT_KEY`.
    GenerateKey,
    /// Re-encrypt every stored credential under the first vault key (after putting a new key
    /// first). Run it with the old key still listed; remove the old key afterwards.
    ReEncrypt,
}

#[derive(Subcommand)]
enum BrandCommand {
    /// Create a brand; prints its client credential once, on stdout.
    Create {
        name: String,
        #[arg(long)]
        contact_email: Option<String>,
        #[arg(long)]
        billing_anchor_day: Option<i32>,
    },
    /// List brands.
    List,
    /// Issue a new credential for a brand; the old one stops working. Prints it on stdout.
    RotateCredential { client_id: String },
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("spidergate: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    telemetry::init(&config.log, !matches!(command, Command::Serve));
    let result = match command {
        Command::Serve => serve(config).await,
        Command::Brand(command) => brand(config, command).await,
        Command::Vault(command) => vault(config, command).await,
        Command::Status => status(config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("spidergate: {err:#}");
            // Exit without dropping the runtime: actors started before the failure would run
            // their shutdown outside it (and panic) on the way out.
            std::process::exit(1)
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    spidergate::run(config).await?.serve().await
}

/// One line per component: `name  ok|FAIL|off  detail`.
async fn status(config: Config) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    let mut report = |name: &'static str, verdict: Result<String, String>| {
        let (word, detail) = match verdict {
            Ok(detail) => ("ok", detail),
            Err(detail) => {
                failed.push(name);
                ("FAIL", detail)
            }
        };
        println!("{name:<11} {word:<4} {detail}");
    };
    let url = storage::redact_url(&config.database.url);
    match storage::open(&config.database).await {
        Ok(db) => {
            report("database", Ok(url));
            let migrations = match storage::pending_migrations(&db).await {
                Ok(pending) if pending.is_empty() => Ok("current".to_owned()),
                Ok(pending) => Ok(format!(
                    "{} pending (applied at the next start): {}",
                    pending.len(),
                    pending.join(", ")
                )),
                Err(err) => Err(format!("{err:#}")),
            };
            report("migrations", migrations);
        }
        Err(err) => report("database", Err(format!("{err:#}"))),
    }
    let redis = if config.redis.url.is_empty() {
        Ok("off (one node, or replicas with per-replica limits)".to_owned())
    } else {
        let link = spidergate::redis_link::RedisLink::connect(&config.redis)?;
        match link.reachable().await {
            true => Ok(format!("reachable, prefix {:?}", config.redis.prefix)),
            false => Err("unreachable (limits would fall back to redis.on_error)".to_owned()),
        }
    };
    report("redis", redis);
    let vault_keys = match VaultCipher::from_keys(&config.vault.keys) {
        Ok(Some(_)) => Ok(format!("{} key(s) loaded", config.vault.keys.len())),
        Ok(None) => Ok("none (provider keys cannot be added)".to_owned()),
        Err(err) => Err(format!("{err:#}")),
    };
    report("vault", vault_keys);
    let providers = spidergate::catalog::Catalog::load(&config.providers)
        .and_then(|catalog| catalog.with_custom(&config.custom_providers))
        .map(|catalog| {
            let overridden = config.providers.len();
            let custom = config.custom_providers.len();
            format!(
                "{} in the catalog, {overridden} with overrides, {custom} custom",
                catalog.providers().len()
            )
        })
        .map_err(|err| format!("{err:#}"));
    report("providers", providers);
    anyhow::ensure!(failed.is_empty(), "not ready: {}", failed.join(", "));
    Ok(())
}

async fn vault(config: Config, command: VaultCommand) -> anyhow::Result<()> {
    match command {
        VaultCommand::GenerateKey => println!("{}", fernet::Fernet::generate_key()),
        VaultCommand::ReEncrypt => {
            let Some(cipher) = VaultCipher::from_keys(&config.vault.keys)? else {
                anyhow::bail!(
                    "no vault key configured: set SPIDERGATE_VAULT_KEY to \"NEW_KEY,OLD_KEY\""
                );
            };
            let db = storage::connect(&config.database).await?;
            let count = vault::reencrypt_all(&db, &cipher).await?;
            eprintln!(
                "Re-encrypted {count} credential(s) under the first vault key. Running servers keep working; the old key can be removed from their config once they restart."
            );
        }
    }
    Ok(())
}

async fn brand(config: Config, command: BrandCommand) -> anyhow::Result<()> {
    let db = storage::connect(&config.database).await?;
    let cache = TokenCache::default();
    match command {
        BrandCommand::Create {
            name,
            contact_email,
            billing_anchor_day,
        } => {
            let new = NewBrand {
                name,
                contact_email,
                billing_anchor_day,
            };
            let (brand, credential) =
                brands::create_brand(&db, &cache, new, Clock::default().now()).await?;
            eprintln!(
                "Created brand {:?} ({}). Its credential is shown once, below:",
                brand.name, brand.client_id
            );
            println!("{}", credential.expose());
        }
        BrandCommand::List => {
            for brand in brands::manage::list_brands(&db).await? {
                println!(
                    "{}\t{}\t{}",
                    brand.client_id,
                    brand.created_at.to_rfc3339(),
                    brand.name
                );
            }
        }
        BrandCommand::RotateCredential { client_id } => {
            let (brand, credential) =
                brands::rotate_credential(&db, &cache, &client_id, Clock::default().now()).await?;
            eprintln!(
                "New credential for {} below. A running server keeps accepting the old one until it restarts; rotate through POST /api/v1/admin/brands/{{client_id}}/rotate-credential to revoke it at once.",
                brand.client_id
            );
            println!("{}", credential.expose());
        }
    }
    Ok(())
}
