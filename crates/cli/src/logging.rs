//! The log of a long-running command (`vsc serve`): `tracing` events to standard error, as text
//! for a person or as JSON lines for a log shipper.
//!
//! What is logged is chosen by `VSC_LOG`, else `RUST_LOG` (the usual `tracing` directives, such
//! as `info,vsc_server=debug`), else `info,sqlx=warn`. Colour (ANSI escape codes) only when
//! standard error is a terminal and `NO_COLOR` is not set: a log file, journald or a pipe to a
//! shipper gets plain text.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`).
    Json,
}

/// The filter: `VSC_LOG`, else `RUST_LOG`, else the default. A directive that does not parse is
/// reported on standard error and the default used, rather than silently logging nothing.
fn filter() -> EnvFilter {
    const DEFAULT: &str = "info,sqlx=warn";
    for var in ["VSC_LOG", "RUST_LOG"] {
        match std::env::var(var) {
            Ok(value) if !value.trim().is_empty() => match EnvFilter::try_new(&value) {
                Ok(filter) => return filter,
                Err(e) => {
                    eprintln!("warning: ignoring {var}={value:?}: {e}; logging at {DEFAULT}");
                    return EnvFilter::new(DEFAULT);
                }
            },
            _ => {}
        }
    }
    EnvFilter::new(DEFAULT)
}

/// Whether to colour: only for a person at a terminal who has not asked for no colour.
fn colour() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// Installs the global subscriber; call once, before anything logs.
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    match format {
        // JSON never carries escape codes.
        LogFormat::Json => builder.json().with_ansi(false).init(),
        LogFormat::Text => builder.with_ansi(colour()).init(),
    }
}
