//! `keyprov` commands of the dskpp group (being built; see the issue tracker).

/// Commands of this group.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Placeholder while the group is being built.
    #[command(hide = true, name = "__dskpp_pending")]
    Pending,
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Pending => anyhow::bail!("the dskpp commands are not built yet"),
    }
}
