//! `keyprov` commands of the seeds group (being built; see the issue tracker).

/// Commands of this group.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Placeholder while the group is being built.
    #[command(hide = true, name = "__seeds_pending")]
    Pending,
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Pending => anyhow::bail!("the seeds commands are not built yet"),
    }
}
