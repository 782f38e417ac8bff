//! `api keys …`: API keys from the command line, for operators (the first admin key of a tenant
//! is made here); `api custody verify`: the custody chain checked from the database alone. Runs as the user of DATABASE_URL, without the switch to the application role,
//! so that it reaches every tenant: use the owner's URL, the one migrations run with.

use anyhow::{Context, bail};
use evidence::config::DatabaseSettings;
use evidence::custody::Verdict;
use evidence::keys::{ApiKey, NewKey};
use evidence::owner;
use evidence::{Role, TenantId, startup};

pub const USAGE: &str = "usage:
  api                                     serve the API (API_BIND)
  api keys create --tenant <tenant> --role <admin|uploader|viewer|auditor> --name <name> [--case <case>]...
                                          make a key; the key alone is on the last line of the output
  api keys list [--tenant <tenant>]       list keys (never their secrets)
  api keys revoke <prefix>                revoke a key: every later request with it answers 401
  api custody verify --tenant <tenant>    recompute the tenant's custody chain; exit 1 if it is broken";

/// Run `api keys <args>`.
pub async fn keys(args: &[String]) -> anyhow::Result<()> {
    let db = DatabaseSettings::from_env()?;
    match args.split_first() {
        Some((command, rest)) if command == "create" => {
            let flags = Flags::parse(rest, &["--tenant", "--role", "--name", "--case"])?;
            let tenant = TenantId::new(&flags.one("--tenant")?)?;
            let role = flags.one("--role")?;
            let role = Role::parse(&role)
                .with_context(|| format!("--role {role}: one of admin, uploader, viewer, auditor"))?;
            let cases = flags.all("--case");
            let new = NewKey { name: flags.one("--name")?, role, cases: (!cases.is_empty()).then_some(cases) };
            let pool = startup::owner_pool(&db).await?;
            let issued = owner::create_key(&pool, &tenant, &new)
                .await
                .context("creating the key (are the migrations applied?)")?;
            println!("created API key {} in tenant {}: {}", issued.key.prefix, tenant, describe(&issued.key));
            println!("it is shown once and stored only as a hash; keep it now:");
            println!("{}", issued.secret);
        }
        Some((command, rest)) if command == "list" => {
            let flags = Flags::parse(rest, &["--tenant"])?;
            let tenant = flags.first("--tenant").map(|t| TenantId::new(&t)).transpose()?;
            let pool = startup::owner_pool(&db).await?;
            let keys = owner::list_keys(&pool, tenant.as_ref()).await?;
            let header = ["PREFIX", "TENANT", "ROLE", "NAME", "CREATED", "LAST USED", "STATE"];
            println!(
                "{:<12}  {:<20}  {:<8}  {:<24}  {:<16}  {:<16}  {}",
                header[0], header[1], header[2], header[3], header[4], header[5], header[6]
            );
            for k in &keys {
                let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                    t.map_or("-".to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string())
                };
                let state = match k.revoked_at {
                    Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                    None => "active".to_owned(),
                };
                let cases = k.case_ids.as_ref().map_or(String::new(), |c| format!(" (cases {})", c.join(", ")));
                println!(
                    "{:<12}  {:<20}  {:<8}  {:<24}  {:<16}  {:<16}  {}{}",
                    k.prefix,
                    k.tenant_id,
                    k.role,
                    k.name,
                    time(Some(k.created_at)),
                    time(k.last_used_at),
                    state,
                    cases
                );
            }
        }
        Some((command, rest)) if command == "revoke" => {
            let [prefix] = rest else { bail!("api keys revoke <prefix>\n{USAGE}") };
            let pool = startup::owner_pool(&db).await?;
            let key = owner::revoke_key(&pool, prefix).await?;
            println!("revoked API key {} in tenant {}: {}", key.prefix, key.tenant_id, describe(&key));
        }
        _ => bail!("{USAGE}"),
    }
    Ok(())
}

/// Run `api custody <args>`; `Ok(false)` when the chain is broken.
pub async fn custody(args: &[String]) -> anyhow::Result<bool> {
    let db = DatabaseSettings::from_env()?;
    match args.split_first() {
        Some((command, rest)) if command == "verify" => {
            let flags = Flags::parse(rest, &["--tenant"])?;
            let tenant = TenantId::new(&flags.one("--tenant")?)?;
            let pool = startup::owner_pool(&db).await?;
            match owner::verify_custody(&pool, &tenant).await? {
                Verdict::Intact { count: 0, pending: 0, .. } => {
                    println!("tenant {tenant} has no custody entries (is the tenant's name right?)");
                    Ok(true)
                }
                Verdict::Intact { count, head, pending } => {
                    println!("custody chain of tenant {tenant} is intact: {count} entries, head {head}");
                    if pending > 0 {
                        println!("{pending} newer entries are not sealed into the chain yet (is a worker running?)");
                    }
                    Ok(true)
                }
                Verdict::Broken(b) => {
                    println!(
                        "custody chain of tenant {tenant} is broken at entry {}: {} expected {}, found {}",
                        b.seq, b.field, b.expected, b.found
                    );
                    Ok(false)
                }
            }
        }
        _ => bail!("{USAGE}"),
    }
}

fn describe(k: &ApiKey) -> String {
    let cases = k.case_ids.as_ref().map_or("every case".to_owned(), |c| format!("cases {}", c.join(", ")));
    format!("role {}, name \"{}\", {}", k.role, k.name, cases)
}

/// `--flag value` pairs; a flag may repeat.
struct Flags(Vec<(String, String)>);

impl Flags {
    fn parse(args: &[String], known: &[&str]) -> anyhow::Result<Self> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if !known.contains(&flag.as_str()) {
                bail!("unknown argument `{flag}`\n{USAGE}");
            }
            let value = it.next().with_context(|| format!("{flag} needs a value"))?;
            pairs.push((flag.clone(), value.clone()));
        }
        Ok(Self(pairs))
    }

    fn all(&self, flag: &str) -> Vec<String> {
        self.0.iter().filter(|(f, _)| f == flag).map(|(_, v)| v.clone()).collect()
    }

    fn first(&self, flag: &str) -> Option<String> {
        self.all(flag).into_iter().next()
    }

    fn one(&self, flag: &str) -> anyhow::Result<String> {
        match self.all(flag).as_slice() {
            [value] => Ok(value.clone()),
            [] => bail!("{flag} is required\n{USAGE}"),
            _ => bail!("{flag} may be given once"),
        }
    }
}
