//! The `git` program: fetch a source's repository into a cache directory, resolve its ref to
//! a commit and check the commit out. Every command has a deadline and never prompts (no
//! terminal on the leader).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use tokio::process::Command;

/// Longest a git command may take before the sync counts it as failed.
const GIT_DEADLINE: Duration = Duration::from_secs(120);

/// Where fetched branches and tags are kept in the cache repository.
const REMOTE_HEADS: &str = "refs/shoal/heads";
const REMOTE_TAGS: &str = "refs/shoal/tags";

/// How a fetch proves who it is.
pub enum Auth {
    /// Nothing (local paths, public https repositories).
    None,
    /// A token sent with every https request.
    Token(String),
    /// An ssh private key (a deploy key) and the only host keys to accept.
    Ssh {
        /// The private key, as `ssh-keygen` writes it.
        key: Vec<u8>,
        /// `known_hosts` lines for the server.
        known_hosts: String,
    },
}

/// A source's cache repository (a non-bare repository whose work tree holds the last commit
/// checked out).
pub struct Checkout {
    dir: PathBuf,
}

/// Runs `git args...` in `dir`; its stdout, or an error with git's own words.
async fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    git_with(dir, args, &[]).await
}

/// [`git`] with extra environment (credentials travel there, never in arguments, which any
/// local user can read in the process list).
async fn git_with(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("GIT_TERMINAL_PROMPT", "0")
        // No user or system configuration may change what a fetch does on the leader.
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(GIT_DEADLINE, cmd.output())
        .await
        .map_err(|_| {
            format!(
                "git {} took longer than {}s",
                args.first().unwrap_or(&""),
                GIT_DEADLINE.as_secs()
            )
        })?
        .map_err(|e| format!("cannot run git (is it installed on the manager?): {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "git {}: {}",
            args.first().unwrap_or(&""),
            stderr.trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Writes the key (mode 0600) and the known hosts to a new private directory beside the cache
/// repository; the directory (removed when dropped) and the `GIT_SSH_COMMAND` that uses them.
fn ssh_files(
    cache: &Path,
    key: &[u8],
    known_hosts: &str,
) -> Result<(tempfile::TempDir, String), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let parent = cache.parent().unwrap_or(cache);
    let dir = tempfile::Builder::new()
        .prefix(".ssh-")
        .tempdir_in(parent)
        .map_err(|e| format!("cannot create a directory for the ssh key: {e}"))?;
    let key_path = dir.path().join("key");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(|e| format!("cannot write the ssh key: {e}"))?;
    f.write_all(key)
        .and_then(|_| {
            if key.ends_with(b"\n") {
                Ok(())
            } else {
                f.write_all(b"\n")
            }
        })
        .map_err(|e| format!("cannot write the ssh key: {e}"))?;
    let hosts_path = dir.path().join("known_hosts");
    std::fs::write(&hosts_path, known_hosts)
        .map_err(|e| format!("cannot write the known hosts: {e}"))?;
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let command = format!(
        "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
         -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null",
        quote(&key_path),
        quote(&hosts_path)
    );
    Ok((dir, command))
}

/// A full commit id.
fn is_full_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `r` could be an abbreviated or full commit id.
pub fn looks_like_sha(r: &str) -> bool {
    (7..=40).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Checkout {
    /// The cache repository in `dir`, created if missing.
    pub async fn open(dir: PathBuf) -> Result<Checkout, String> {
        if !dir.join(".git").is_dir() {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            git(&dir, &["init", "--quiet"]).await?;
        }
        Ok(Checkout { dir })
    }

    /// The work tree (the checked-out commit's files).
    pub fn work_tree(&self) -> &Path {
        &self.dir
    }

    /// Fetches every branch and tag of `repo` (one `git fetch`) and resolves `git_ref`: a
    /// branch, then a tag, then a commit id. With a token, every HTTP request carries it
    /// (`Authorization: Basic`, user `x-access-token`, which GitHub, Gitea and GitLab take
    /// with a personal or deploy token as the password); with an ssh key, ssh uses that key
    /// only and accepts only the given host keys.
    pub async fn fetch(&self, repo: &str, git_ref: &str, auth: &Auth) -> Result<String, String> {
        let heads = format!("+refs/heads/*:{REMOTE_HEADS}/*");
        let tags = format!("+refs/tags/*:{REMOTE_TAGS}/*");
        let mut env = Vec::new();
        // The key and host keys live in a private directory for the fetch only (ssh reads
        // keys from files); it is removed when the fetch ends, whatever its outcome.
        let mut _ssh_dir = None;
        if let Auth::Ssh { key, known_hosts } = auth {
            let (dir, command) = ssh_files(&self.dir, key, known_hosts)?;
            env.push(("GIT_SSH_COMMAND", command));
            _ssh_dir = Some(dir);
        }
        if let Auth::Token(token) = auth {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
            env.push(("GIT_CONFIG_COUNT", "1".to_string()));
            env.push(("GIT_CONFIG_KEY_0", "http.extraHeader".to_string()));
            env.push((
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Basic {basic}"),
            ));
        }
        git_with(
            &self.dir,
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--prune",
                "--force",
                repo,
                &heads,
                &tags,
            ],
            &env,
        )
        .await
        .map_err(|e| format!("cannot fetch {repo}: {e}"))?;
        self.resolve_ref(git_ref).await
    }

    async fn resolve_ref(&self, git_ref: &str) -> Result<String, String> {
        let candidates = [
            format!("{REMOTE_HEADS}/{git_ref}^{{commit}}"),
            format!("{REMOTE_TAGS}/{git_ref}^{{commit}}"),
        ];
        for c in &candidates {
            if let Ok(sha) = git(&self.dir, &["rev-parse", "--verify", "--quiet", c]).await {
                if is_full_sha(&sha) {
                    return Ok(sha);
                }
            }
        }
        if looks_like_sha(git_ref) {
            let c = format!("{git_ref}^{{commit}}");
            if let Ok(sha) = git(&self.dir, &["rev-parse", "--verify", "--quiet", &c]).await {
                if is_full_sha(&sha) {
                    return Ok(sha);
                }
            }
        }
        Err(format!(
            "ref {git_ref} is not a branch, a tag or a commit of the repository"
        ))
    }

    /// Makes the work tree exactly `commit`'s files (nothing left from an earlier commit).
    pub async fn check_out(&self, commit: &str) -> Result<(), String> {
        git(
            &self.dir,
            &[
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "--quiet",
                "--force",
                "--detach",
                commit,
            ],
        )
        .await?;
        git(&self.dir, &["clean", "-ffdxq"]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sh(dir: &Path, args: &[&str]) -> String {
        git(dir, args).await.expect("git")
    }

    async fn repo_with_commit(dir: &Path) -> String {
        sh(dir, &["init", "--quiet", "--initial-branch=main"]).await;
        std::fs::write(dir.join("a.txt"), "one").unwrap();
        sh(dir, &["add", "."]).await;
        sh(
            dir,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "commit",
                "--quiet",
                "-m",
                "one",
            ],
        )
        .await;
        sh(dir, &["tag", "v1"]).await;
        sh(dir, &["rev-parse", "HEAD"]).await
    }

    #[tokio::test]
    async fn fetches_and_resolves_branches_tags_and_commits() {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin");
        std::fs::create_dir(&origin).unwrap();
        let head = repo_with_commit(&origin).await;
        let c = Checkout::open(tmp.path().join("cache")).await.unwrap();
        let url = format!("file://{}", origin.display());
        assert_eq!(c.fetch(&url, "main", &Auth::None).await.unwrap(), head);
        assert_eq!(c.fetch(&url, "v1", &Auth::None).await.unwrap(), head);
        assert_eq!(c.fetch(&url, &head[..10], &Auth::None).await.unwrap(), head);
        let missing = c.fetch(&url, "nope", &Auth::None).await.unwrap_err();
        assert!(missing.contains("ref nope"), "{missing}");
        c.check_out(&head).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(c.work_tree().join("a.txt")).unwrap(),
            "one"
        );
        let gone = c
            .fetch(
                tmp.path().join("nowhere").to_str().unwrap(),
                "main",
                &Auth::None,
            )
            .await
            .unwrap_err();
        assert!(gone.starts_with("cannot fetch"), "{gone}");
    }
}
