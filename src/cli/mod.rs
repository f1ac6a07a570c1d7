//! The `shoal` commands that talk to a daemon (`shoal watch`, later apply, plan, ...): one file
//! per command, and what they share here: where the daemon is, the output format, and errors
//! that say what to do next.

pub mod apply;
pub mod backup;
pub mod gitops;
pub mod overview;
pub mod stack_input;
pub mod stacks;
pub mod wait;
pub mod watch;

use std::fmt::Write as _;

use serde::Serialize;

use crate::client::{Client, ClientError, Host};

/// Where the daemon is (every command that talks to one flattens this).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Connection {
    /// The daemon's API socket: unix:///path or tcp://host:port [default: $SHOAL_API_SOCKET,
    /// else unix:///var/run/shoal.sock]
    #[arg(long, short = 'H', env = "SHOAL_HOST", value_name = "HOST")]
    pub host: Option<String>,
}

impl Connection {
    /// A client of the daemon.
    pub fn client(&self) -> Result<Client, ClientError> {
        Ok(Client::new(Host::resolve(self.host.as_deref())?))
    }
}

/// How a command prints what it got.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Readable columns.
    #[default]
    Table,
    /// One JSON object per line.
    Json,
    /// One YAML document per item (`---` between them).
    Yaml,
}

impl Output {
    /// `value` as one item of this format (JSON and YAML; a table row is the command's own).
    pub fn render(&self, value: &impl Serialize) -> String {
        match self {
            Output::Json | Output::Table => {
                let mut s = serde_json::to_string(value).unwrap_or_default();
                s.push('\n');
                s
            }
            Output::Yaml => {
                let mut s = String::from("---\n");
                match serde_saphyr::to_string(value) {
                    Ok(y) => s.push_str(&y),
                    Err(e) => {
                        let _ = writeln!(s, "# not representable as YAML: {e}");
                    }
                }
                if !s.ends_with('\n') {
                    s.push('\n');
                }
                s
            }
        }
    }
}

/// What the user can do about an error, beyond its own message (the daemon's messages already
/// say what to do about the node and the swarm).
fn next_step(e: &ClientError) -> Option<&'static str> {
    match e.code()? {
        "invalid_argument" => Some("see the command's --help for its flags"),
        _ => None,
    }
}

/// Ends the process after a failed command: `shoal: <what happened and what to do>`, exit 1.
pub fn exit_on_error(result: anyhow::Result<()>) {
    let Err(e) = result else { return };
    print_error(&e);
    std::process::exit(1);
}

fn print_error(e: &anyhow::Error) {
    let mut text = format!("shoal: {e:#}");
    if let Some(hint) = e.downcast_ref::<ClientError>().and_then(next_step) {
        let _ = write!(text, " ({hint})");
    }
    eprintln!("{text}");
}

/// Ends the process with a command's own exit status, or 2 after an error (the stack commands:
/// `plan` and `diff` use 1 for "changes", as `kubectl diff`).
pub fn exit_with_status(result: anyhow::Result<i32>) -> ! {
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            print_error(&e);
            std::process::exit(2);
        }
    }
}

/// Shortens an id like `docker ... ls` does.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
