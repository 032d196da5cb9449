//! `arbor` as a client of an arbor or a dlrepo server (issue 16): dlrepo-cli's commands,
//! arguments, environment and output (spec/CLI.md), so that `alias dlrepo-cli=arbor` keeps
//! scripts working; with parallel transfers, retries, verified and resumable downloads, and
//! progress. Blocking on purpose (ureq, as the publisher): a command line has nothing else
//! to do while it waits, and threads give the parallelism.
// The client reads the user's own configuration files, never the repository tree.
#![allow(clippy::disallowed_methods)]

mod commands;
mod listing;
mod login;
mod progress;
mod remote;
mod settings;
mod transfer;
mod upload;

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// The client's flags, dlrepo-cli's plus the transfer ones. Like dlrepo-cli's, they come
/// before the command (so the server's commands do not list them).
#[derive(Args, Debug, Default)]
pub struct Globals {
    /// Root URL of the server [env DLREPO_URL; default http://127.0.0.1:1337].
    #[arg(short = 'U', long, value_name = "URL")]
    pub url: Option<String>,
    /// URL prefix; --prefix=/ for the root repository instead of your own user space
    /// [env DLREPO_PREFIX; default /~USER/].
    #[arg(short = 'p', long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Print the server's JSON as is (indented) instead of text.
    #[arg(short = 'j', long)]
    pub raw_json: bool,
    /// More verbose output (`branches -v`).
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Do not print the target URL on stderr.
    #[arg(long)]
    pub no_print_url: bool,
    /// How many files to transfer at once.
    #[arg(short = 'J', long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// No progress output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Where `arbor login` keeps tokens, under the home directory: one `ORIGIN TOKEN` line per
/// server, mode 0600.
const TOKENS_FILE: &str = ".config/arbor/tokens";

/// A `PARAM=VALUE` argument, checked as dlrepo-cli checks it (`^(\w+)=(.*)$`).
fn job_param(value: &str) -> Result<(String, String), String> {
    static PARAM: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"^(\w+)=(.*)$").expect("a valid regex"));
    let caps = PARAM
        .captures(value)
        .ok_or_else(|| format!("{value:?}: Invalid job parameter"))?;
    Ok((caps[1].to_owned(), caps[2].to_owned()))
}

/// `BRANCH TAG`, as typed (the server lower-cases names).
#[derive(Args, Debug)]
pub struct TagPath {
    pub branch: String,
    pub tag: String,
}

/// `BRANCH TAG JOB`.
#[derive(Args, Debug)]
pub struct JobPath {
    pub branch: String,
    pub tag: String,
    pub job: String,
}

/// `BRANCH TAG JOB FORMAT`.
#[derive(Args, Debug)]
pub struct FormatPath {
    pub branch: String,
    pub tag: String,
    pub job: String,
    pub format: String,
}

impl TagPath {
    fn url(&self) -> String {
        format!("branches/{}/{}/", self.branch, self.tag)
    }
}

impl JobPath {
    fn url(&self) -> String {
        format!("branches/{}/{}/{}/", self.branch, self.tag, self.job)
    }
}

impl FormatPath {
    fn url(&self) -> String {
        let Self {
            branch,
            tag,
            job,
            format,
        } = self;
        format!("branches/{branch}/{tag}/{job}/{format}/")
    }
}

/// The client commands, named and shaped as dlrepo-cli's.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Upload files and/or folders to a job's artifact format, then mark it complete.
    Upload {
        #[command(flatten)]
        at: FormatPath,
        /// Files, and folders (uploaded with the paths inside them).
        #[arg(required = true, value_name = "FILE_OR_DIR")]
        paths: Vec<PathBuf>,
        /// Skip files the server already holds at the same path with the same content.
        #[arg(long)]
        resume: bool,
    },
    /// Download the files of an artifact format into a local directory.
    Get {
        #[command(flatten)]
        at: FormatPath,
        #[arg(value_name = "DIR")]
        target: PathBuf,
    },
    /// Download a format, a job (one directory per format), a product version or an
    /// alias of one, given by its path under the repository: branches/B/T/J[/F],
    /// branches/B/latest/J, products/P/V/PB/VERSION or products/P/V/PB/latest.
    Download {
        path: String,
        #[arg(value_name = "DIR")]
        target: PathBuf,
    },
    /// Print a job's metadata as key=value lines.
    GetInfo(JobPath),
    /// Set job metadata (PARAM= unsets it).
    SetInfo {
        #[command(flatten)]
        at: JobPath,
        #[arg(required = true, value_name = "PARAM=VALUE", value_parser = job_param)]
        info: Vec<(String, String)>,
    },
    /// Lock a job against changes, or a tag against cleanup.
    Lock {
        #[command(flatten)]
        at: TagPath,
        job: Option<String>,
        /// Unlock instead.
        #[arg(short = 'u', long)]
        unlock: bool,
    },
    /// Print a tag's description.
    GetDescription(TagPath),
    /// Set a tag's description.
    SetDescription {
        #[command(flatten)]
        at: TagPath,
        description: String,
    },
    /// List the branches.
    Branches,
    /// List the tags of a branch.
    Tags {
        branch: String,
        /// Only released tags.
        #[arg(short = 'r', long)]
        released_only: bool,
    },
    /// List the jobs of a tag, optionally those whose metadata match.
    Jobs {
        #[command(flatten)]
        at: TagPath,
        #[arg(value_name = "PARAM=VALUE", value_parser = job_param)]
        filters: Vec<(String, String)>,
    },
    /// Print a tag's status.
    Status(TagPath),
    /// Set (or with -u unset) a tag's released status; publishes when the server mirrors.
    Release {
        #[command(flatten)]
        at: TagPath,
        #[arg(short = 'u', long)]
        unset: bool,
    },
    /// Set (or with -u unset) a tag's stable status.
    Stable {
        #[command(flatten)]
        at: TagPath,
        #[arg(short = 'u', long)]
        unset: bool,
    },
    /// Set (or with -u unset) a job's internal status: never published.
    Internal {
        #[command(flatten)]
        at: JobPath,
        #[arg(short = 'u', long)]
        unset: bool,
    },
    /// Delete a branch, a tag, a job or a format.
    Delete {
        branch: String,
        tag: Option<String>,
        job: Option<String>,
        format: Option<String>,
    },
    /// Delete every branch of your user space.
    Flush,
    /// Save a token (from `arbor token create`) for this server, checked first; read from
    /// standard input, or asked on the terminal. Later commands send it unless
    /// ARBOR_TOKEN, a password or credentials in the URL say otherwise.
    Login,
    /// Forget the token saved for this server.
    Logout,
    /// Print, or set, a branch's cleanup policy.
    CleanupPolicy {
        branch: String,
        /// Non-released tags to keep.
        #[arg(short = 'd', long)]
        max_daily: Option<i64>,
        /// Released tags to keep.
        #[arg(short = 'r', long)]
        max_released: Option<i64>,
    },
}

/// Why a client command failed.
#[derive(Debug)]
pub enum ClientError {
    /// The server answered 400 or more; `message` is its body (or Python's text for it).
    Remote { status: u16, message: String },
    /// Bad arguments found after parsing (a missing local path).
    Usage(String),
    /// Anything else: the network, local files.
    Local(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Remote { message, .. } => write!(f, "remote: {message}"),
            ClientError::Usage(m) | ClientError::Local(m) => f.write_str(m),
        }
    }
}

/// `text` (from the server, or naming its files) with what a terminal would act on
/// replaced by `?`: control characters but new lines and tabs (so escape sequences), and
/// the marks that reorder text.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c,
            c if c.is_control() => '?',
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => '?',
            c => c,
        })
        .collect()
}

/// Runs one client command: exit status 0, 1 on any error (as dlrepo-cli), 2 on bad
/// arguments (as argparse).
pub fn run(globals: &Globals, command: ClientCommand) -> ExitCode {
    let result =
        settings_from_environment(globals).and_then(|s| commands::run(globals, &s, command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", printable(&e.to_string()));
            ExitCode::from(match e {
                ClientError::Usage(_) => 2,
                _ => 1,
            })
        }
    }
}

fn settings_from_environment(g: &Globals) -> Result<settings::Settings, ClientError> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let read = |rel: &str| {
        let path = home.as_ref()?.join(rel);
        std::fs::read_to_string(path).ok()
    };
    let conf = read(".config/dlrepo-cli");
    let netrc = read(".netrc");
    let tokens = read(TOKENS_FILE);
    let env = |name: &str| std::env::var(name).ok();
    // Python's getpass.getuser(): the first of these that is not empty, else the name of the
    // user ID (containers and cron jobs often set none of them).
    let login = ["LOGNAME", "USER", "LNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .or_else(|| {
            let uid = nix::unistd::Uid::current();
            Some(nix::unistd::User::from_uid(uid).ok()??.name)
        })
        .unwrap_or_default();
    settings::resolve(&settings::Sources {
        url_flag: g.url.as_deref(),
        prefix_flag: g.prefix.as_deref(),
        env: &env,
        conf: conf.as_deref(),
        netrc: netrc.as_deref(),
        tokens: tokens.as_deref(),
        login: &login,
    })
    // dlrepo-cli fails on such settings when it uses them: status 1, not argparse's 2.
    .map_err(ClientError::Local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_params_follow_dlrepo_cli() {
        assert_eq!(job_param("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(job_param("é_1=").unwrap(), ("é_1".into(), String::new()));
        for bad in ["=x", "a-b=x", "novalue", "a b=c"] {
            assert!(job_param(bad).is_err(), "{bad}");
        }
    }
}
