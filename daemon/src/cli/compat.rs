//! Flags upstream Prometheus accepts that change nothing in Pyrite, accepted so that a command
//! line written for Prometheus (a Compose file, a Helm chart) starts Pyrite unchanged. Each
//! given one is named in a warning at start-up, with why it changes nothing, and shows in
//! `/api/v1/status/flags` as every flag does.
//!
//! Only flags whose absence of effect loses the operator nothing belong here; a flag asking
//! for something Pyrite does not do (a receiver, a mode) stays refused, so that nobody relies
//! on it unknowingly.

#[derive(Debug, clap::Args)]
pub struct CompatFlags {
    /// Accepted for compatibility with Prometheus; changes nothing (Pyrite has no consoles).
    #[arg(long = "web.console.templates", value_name = "PATH")]
    console_templates: Option<String>,
    /// Accepted for compatibility with Prometheus; changes nothing (Pyrite has no consoles).
    #[arg(long = "web.console.libraries", value_name = "PATH")]
    console_libraries: Option<String>,
    /// Accepted for compatibility with Prometheus; changes nothing (Pyrite's UI is built in).
    #[arg(long = "web.user-assets", value_name = "PATH")]
    user_assets: Option<String>,
    /// Accepted for compatibility with Prometheus 2.x; changes nothing.
    #[arg(
        long = "storage.tsdb.allow-overlapping-blocks",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    allow_overlapping_blocks: bool,
}

impl CompatFlags {
    /// The flags given that change nothing, each with why.
    pub fn ignored(&self) -> Vec<(&'static str, &'static str)> {
        let mut ignored = Vec::new();
        if self.console_templates.is_some() {
            ignored.push(("web.console.templates", "Pyrite serves no console templates"));
        }
        if self.console_libraries.is_some() {
            ignored.push(("web.console.libraries", "Pyrite serves no console templates"));
        }
        if self.user_assets.is_some() {
            ignored.push(("web.user-assets", "Pyrite's UI serves only its own assets"));
        }
        if self.allow_overlapping_blocks {
            ignored.push((
                "storage.tsdb.allow-overlapping-blocks",
                "it had no effect in late Prometheus 2.x either and 3.0 removed it",
            ));
        }
        ignored
    }
}
