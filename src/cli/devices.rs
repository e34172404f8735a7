//! `keyprov` commands of the devices group (being built; see the issue tracker).

/// Commands of this group.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Placeholder while the group is being built.
    #[command(hide = true, name = "__devices_pending")]
    Pending,
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Pending => anyhow::bail!("the devices commands are not built yet"),
    }
}
