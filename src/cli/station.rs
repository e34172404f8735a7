//! `keyprov` commands of the station group: the provisioning log audit (and, as the engine
//! lands, provisioning, batches, re-issue and import).

use std::path::{Path, PathBuf};

use anyhow::Context;
use keyprov_store::Store;

/// Commands of this group.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check the station's provisioning log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `keyprov audit ...`
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the event hash chain; exits non-zero naming the first broken link.
    Verify {
        /// Station database [default: $XDG_DATA_HOME/keyprov/station.db]
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Audit(AuditCommand::Verify { db }) => audit_verify(db.as_deref()),
    }
}

/// The database the operator named, or the default one in the XDG data directory.
fn db_path(db: Option<&Path>) -> anyhow::Result<PathBuf> {
    match db {
        Some(path) => Ok(path.to_path_buf()),
        None => Ok(Store::default_path()?),
    }
}

fn audit_verify(db: Option<&Path>) -> anyhow::Result<()> {
    let path = db_path(db)?;
    // The audit reads no secret, so it runs without the master key or its passphrase.
    let store = Store::open_existing_without_key(&path)?;
    let report = store
        .verify_audit()
        .with_context(|| format!("cannot audit {}", path.display()))?;
    match (&report.first_broken, &report.head) {
        (Some(link), _) => anyhow::bail!(
            "audit chain of {} broken at {link} ({} events before it hold)",
            path.display(),
            report.events
        ),
        (None, Some(head)) => {
            println!("audit chain intact: {} events, head {head}", report.events);
        }
        (None, None) => println!("audit chain intact: no events yet"),
    }
    Ok(())
}
