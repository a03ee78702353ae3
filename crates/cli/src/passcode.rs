//! Asking a person for their passcode: a hidden prompt at a terminal; for scripts and tests,
//! the `VSC_PASSCODE` environment variable or one line on standard input.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result, bail};
use vsc_authenticator::Passcode;
use zeroize::Zeroizing;

/// Environment variable holding a passcode for non-interactive use.
pub const ENV: &str = "VSC_PASSCODE";

fn from_env_or_stdin() -> Result<Option<Zeroizing<String>>> {
    if let Ok(v) = std::env::var(ENV) {
        return Ok(Some(Zeroizing::new(v)));
    }
    if std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the passcode from standard input")?;
    if line.trim().is_empty() {
        bail!("no passcode: type it at a terminal, or give it on standard input or in {ENV}");
    }
    Ok(Some(Zeroizing::new(line.trim().to_owned())))
}

/// The current passcode.
pub fn ask(prompt: &str) -> Result<Passcode> {
    let text = match from_env_or_stdin()? {
        Some(t) => t,
        None => Zeroizing::new(
            dialoguer::Password::new()
                .with_prompt(prompt)
                .interact()
                .context("cannot read the passcode")?,
        ),
    };
    Ok(Passcode::new(text.as_str())?)
}

/// A new passcode, typed twice at a terminal.
pub fn ask_new(prompt: &str) -> Result<Passcode> {
    let text = match from_env_or_stdin()? {
        Some(t) => t,
        None => Zeroizing::new(
            dialoguer::Password::new()
                .with_prompt(prompt)
                .with_confirmation("Type it again", "The two passcodes differ")
                .validate_with(|s: &String| {
                    Passcode::new(s.as_str())
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .interact()
                .context("cannot read the passcode")?,
        ),
    };
    Ok(Passcode::new(text.as_str())?)
}
