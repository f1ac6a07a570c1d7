//! What `shoal gitops add` sends and how the server checks it: a source that would never
//! sync is refused when it is added, with what is wrong and what to do, and nothing is
//! written.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_store::model::GitSourceSpec;

/// Shortest interval between fetches.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest interval between fetches.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// The body of `POST /shoal/v1/gitops` (snake_case, as the rest of the native API).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    /// The source's name (also the stack's name without `stack_per_dir`).
    pub name: String,
    /// An absolute path on the managers, a `file://` or an `https://` URL.
    pub repo: String,
    /// A branch, a tag or a commit id.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The directory in the repository (default: its root).
    #[serde(default)]
    pub path: String,
    /// Between fetches: `30s`, `1m`, `2h` (default `1m`).
    #[serde(default)]
    pub interval: Option<String>,
    /// Remove what the repository no longer has.
    #[serde(default)]
    pub prune: bool,
    /// Revert changes made outside git.
    #[serde(default)]
    pub self_heal: bool,
    /// One stack per subdirectory of `path`.
    #[serde(default)]
    pub stack_per_dir: bool,
    /// Service fields another writer owns (`replicas`, `TaskTemplate.ContainerSpec.Env`).
    #[serde(default)]
    pub ignore_fields: Vec<String>,
    /// Start suspended.
    #[serde(default)]
    pub suspended: bool,
    /// The swarm secret holding the webhook secret (empty: no webhook).
    #[serde(default)]
    pub webhook_secret: String,
    /// The swarm secret holding the token for an `https://` repository (empty: none).
    #[serde(default)]
    pub token_secret: String,
    /// The swarm secret holding the ssh deploy key (ssh repositories).
    #[serde(default)]
    pub deploy_key_secret: String,
    /// `known_hosts` lines pinning the ssh server's host keys (ssh repositories).
    #[serde(default)]
    pub known_hosts: String,
    /// The swarm secret holding the age identities for `.age` files (empty: none).
    #[serde(default)]
    pub age_identity_secret: String,
}

/// The stored spec of an add request, or what is wrong with it.
pub fn spec_of(body: &AddBody) -> Result<GitSourceSpec, String> {
    let name = &body.name;
    check_name(name)?;
    let what = format!("gitops source {name}");
    check_repo(&body.repo).map_err(|e| format!("{what}: --repo {:?}: {e}", body.repo))?;
    let ssh = is_ssh(&body.repo);
    if ssh && (body.deploy_key_secret.is_empty() || body.known_hosts.trim().is_empty()) {
        return Err(format!(
            "{what}: an ssh repository needs --deploy-key-secret (a swarm secret holding the private key) and --known-hosts (a file of the server's host keys, e.g. from `ssh-keyscan HOST`): host keys are pinned, never learned"
        ));
    }
    if !ssh && (!body.deploy_key_secret.is_empty() || !body.known_hosts.is_empty()) {
        return Err(format!(
            "{what}: --deploy-key-secret and --known-hosts are for ssh repositories only"
        ));
    }
    for (n, line) in body.known_hosts.lines().enumerate() {
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') && line.split_whitespace().count() < 3 {
            return Err(format!(
                "{what}: --known-hosts line {}: not a known_hosts line (HOST KEYTYPE KEY)",
                n + 1
            ));
        }
    }
    if !body.token_secret.is_empty() && !body.repo.starts_with("https://") {
        return Err(format!(
            "{what}: --token-secret is sent to https:// repositories only; {:?} needs none",
            body.repo
        ));
    }
    check_ref(&body.git_ref).map_err(|e| format!("{what}: --ref {:?}: {e}", body.git_ref))?;
    let path =
        clean_path(&body.path).map_err(|e| format!("{what}: --path {:?}: {e}", body.path))?;
    let interval = match &body.interval {
        None => 0,
        Some(s) => {
            let d = crate::native::parse_duration(s)
                .map_err(|e| format!("{what}: --interval {s:?}: {e}"))?;
            if d < MIN_INTERVAL || d > MAX_INTERVAL {
                return Err(format!(
                    "{what}: --interval {s:?}: must be between {}s and {}h",
                    MIN_INTERVAL.as_secs(),
                    MAX_INTERVAL.as_secs() / 3600
                ));
            }
            d.as_secs()
        }
    };
    for f in &body.ignore_fields {
        check_ignore_field(f).map_err(|e| format!("{what}: --ignore {f:?}: {e}"))?;
    }
    Ok(GitSourceSpec {
        name: name.clone(),
        repo: body.repo.clone(),
        git_ref: body.git_ref.clone(),
        path,
        interval_secs: interval,
        prune: body.prune,
        self_heal: body.self_heal,
        stack_per_dir: body.stack_per_dir,
        suspended: body.suspended,
        ignore_fields: body.ignore_fields.clone(),
        webhook_secret: body.webhook_secret.clone(),
        token_secret: body.token_secret.clone(),
        deploy_key_secret: body.deploy_key_secret.clone(),
        known_hosts: body.known_hosts.clone(),
        age_identity_secret: body.age_identity_secret.clone(),
        sync_request: 0,
    })
}

/// Source names are stack names too (one stack per source): what `docker stack deploy`
/// accepts.
fn check_name(name: &str) -> Result<(), String> {
    if crate::stack::plan::is_valid_stack_name(name) {
        Ok(())
    } else {
        Err(format!(
            "gitops source name {name:?} is invalid: use 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit"
        ))
    }
}

/// Local paths, `file://`, `https://` and ssh URLs; plain http would send a token in clear.
fn check_repo(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("give the repository: an absolute path, a file:// or an https:// URL".into());
    }
    if repo.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("control characters and spaces are not allowed".into());
    }
    if repo.starts_with('-') {
        return Err("a repository cannot start with '-'".into());
    }
    if let Some(rest) = repo.strip_prefix("https://") {
        let authority = rest.split('/').next().unwrap_or("");
        if authority.is_empty() {
            return Err("no host in the URL".into());
        }
        if authority.contains('@') {
            return Err(
                "credentials in the URL would be stored in clear; put the token in a swarm secret and give it with --token-secret"
                    .into(),
            );
        }
        return Ok(());
    }
    if repo.starts_with("http://") {
        return Err("plain http is refused (a token would travel in clear); use https://".into());
    }
    if is_ssh(repo) {
        return Ok(());
    }
    if repo.contains("://") && !repo.starts_with("file://") {
        return Err(
            "use a local path, a file://, https:// or ssh:// URL, or user@host:path".into(),
        );
    }
    let path = repo.strip_prefix("file://").unwrap_or(repo);
    if !path.starts_with('/') {
        return Err(
            "give an absolute path or a file:// URL with one (the leader fetches it, not this client)"
                .into(),
        );
    }
    Ok(())
}

/// `ssh://...` or scp-like `user@host:path`.
pub fn is_ssh(repo: &str) -> bool {
    ["ssh://", "git+ssh://", "ssh+git://"]
        .iter()
        .any(|p| repo.starts_with(p))
        || (!repo.contains("://")
            && !repo.starts_with('/')
            && repo
                .split_once(':')
                .is_some_and(|(host, _)| host.contains('@') && !host.contains('/')))
}

/// Refs are passed to git as arguments: nothing that git could take for an option or a range.
fn check_ref(r: &str) -> Result<(), String> {
    if r.is_empty() {
        return Err("give a branch, a tag or a commit id".into());
    }
    let bad = r.starts_with('-')
        || r.contains("..")
        || r.ends_with('/')
        || r.ends_with(".lock")
        || r.starts_with('/')
        || r.contains("//")
        || r.contains("@{")
        || r.chars().any(|c| {
            c.is_control()
                || c.is_whitespace()
                || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\')
        });
    if bad {
        return Err(
            "not a valid branch, tag or commit id (see `git check-ref-format`)".to_string(),
        );
    }
    Ok(())
}

/// A relative directory inside the repository, without `.` or `..` parts.
fn clean_path(p: &str) -> Result<String, String> {
    let trimmed = p.trim_matches('/');
    if p.starts_with('/') {
        return Err("give a directory relative to the repository's root".into());
    }
    let mut parts = Vec::new();
    for part in trimmed.split('/').filter(|s| !s.is_empty()) {
        match part {
            "." => {}
            ".." => return Err("'..' would leave the repository".into()),
            _ if part.chars().any(char::is_control) => {
                return Err("control characters are not allowed".into())
            }
            _ => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// `replicas`, or a dotted path of the Docker API's ServiceSpec.
fn check_ignore_field(f: &str) -> Result<(), String> {
    if f == "replicas" {
        return Ok(());
    }
    let ok = !f.is_empty()
        && f.split('.').all(|part| {
            !part.is_empty()
                && part.as_bytes()[0].is_ascii_uppercase()
                && part.bytes().all(|c| c.is_ascii_alphanumeric())
        });
    if ok {
        Ok(())
    } else {
        Err("give `replicas` or a dotted ServiceSpec path as the Docker API names it, e.g. TaskTemplate.ContainerSpec.Env".into())
    }
}

/// The ServiceSpec path an ignore entry stands for.
pub fn ignore_path(f: &str) -> &str {
    if f == "replicas" {
        "Mode.Replicated.Replicas"
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(repo: &str) -> AddBody {
        AddBody {
            name: "web".into(),
            repo: repo.into(),
            git_ref: "main".into(),
            ..Default::default()
        }
    }

    #[test]
    fn ssh_needs_a_key_and_pinned_hosts_and_cleartext_urls_are_refused() {
        for url in ["ssh://git@github.com/o/r.git", "git@github.com:o/r.git"] {
            let e = spec_of(&body(url)).unwrap_err();
            assert!(e.contains("--deploy-key-secret"), "{e}");
            assert!(e.contains("gitops source web"), "{e}");
            let mut b = body(url);
            b.deploy_key_secret = "k".into();
            b.known_hosts = "github.com ssh-ed25519 AAAAC3Nza\n".into();
            assert!(spec_of(&b).is_ok());
            b.known_hosts = "github.com\n".into();
            assert!(spec_of(&b).unwrap_err().contains("--known-hosts line 1"));
        }
        let e = spec_of(&body("git://github.com/o/r.git")).unwrap_err();
        assert!(e.contains("ssh://"), "{e}");
        let mut b = body("/srv/repo");
        b.deploy_key_secret = "k".into();
        assert!(spec_of(&b).unwrap_err().contains("ssh repositories only"));
        let e = spec_of(&body("http://example.com/r.git")).unwrap_err();
        assert!(e.contains("plain http"), "{e}");
        let e = spec_of(&body("https://me:pw@example.com/r.git")).unwrap_err();
        assert!(e.contains("--token-secret"), "{e}");
        let mut b = body("/srv/repo");
        b.token_secret = "t".into();
        assert!(spec_of(&b)
            .unwrap_err()
            .contains("https:// repositories only"));
        assert!(spec_of(&body("https://github.com/o/r.git")).is_ok());
        assert!(spec_of(&body("/srv/repo")).is_ok());
        assert!(spec_of(&body("file:///srv/repo")).is_ok());
        let e = spec_of(&body("repo")).unwrap_err();
        assert!(e.contains("absolute path"), "{e}");
    }

    #[test]
    fn refs_paths_intervals_and_ignores_are_checked() {
        let mut b = body("/r");
        b.git_ref = "--upload-pack=x".into();
        assert!(spec_of(&b).unwrap_err().contains("--ref"));
        let mut b = body("/r");
        b.path = "../etc".into();
        assert!(spec_of(&b).unwrap_err().contains("'..'"));
        let mut b = body("/r");
        b.path = "./stacks//web/".into();
        assert_eq!(spec_of(&b).unwrap().path, "stacks/web");
        let mut b = body("/r");
        b.interval = Some("0s".into());
        assert!(spec_of(&b).unwrap_err().contains("--interval"));
        let mut b = body("/r");
        b.interval = Some("2m".into());
        assert_eq!(spec_of(&b).unwrap().interval_secs, 120);
        let mut b = body("/r");
        b.ignore_fields = vec!["replicas".into(), "TaskTemplate.ContainerSpec.Env".into()];
        assert!(spec_of(&b).is_ok());
        b.ignore_fields = vec!["env[FOO]".into()];
        assert!(spec_of(&b).unwrap_err().contains("--ignore"));
        let mut b = body("/r");
        b.name = "-x".into();
        assert!(spec_of(&b).unwrap_err().contains("name"));
    }
}
