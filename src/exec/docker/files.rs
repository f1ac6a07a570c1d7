//! A task's secrets and configs as files its container bind-mounts, the way dockerd's swarm
//! executor delivers them: each task gets a tmpfs of its own under the executor's run directory
//! (never the node's data directory, never a disk), holding one file per reference with the
//! uid, gid and mode the reference asks for, and the container gets each file bind-mounted
//! read-only at its target (`/run/secrets/<name>` and `/<name>` unless the reference names an
//! absolute path). The bytes come from the agent's memory at `prepare`; the tmpfs is unmounted
//! when the task's container is removed, so they go with the task.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{fchown, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bollard::models::{Mount as EngineMount, MountType as EngineMountType};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use shoal_store::model::{ContainerSpec, ReferenceFileTarget};

use crate::exec::{Dependencies, ExecError};

/// Where secrets appear in a container unless their reference names an absolute path.
const SECRETS_DIR: &str = "/run/secrets";
/// Where configs appear unless their reference names an absolute path.
const CONFIGS_DIR: &str = "/";

/// Which kind of object a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Secret,
    Config,
}

impl FileKind {
    fn noun(self) -> &'static str {
        match self {
            FileKind::Secret => "secret",
            FileKind::Config => "config",
        }
    }
}

/// One file a task's container gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskFile {
    pub kind: FileKind,
    /// The secret's or config's id.
    pub object_id: String,
    /// Its name, for messages.
    pub object_name: String,
    /// The file's name inside the task's tmpfs.
    pub host_name: String,
    /// The absolute path inside the container.
    pub target: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// The files `spec` references, checked: numeric uid and gid, a target that is a file path.
/// Config references with a runtime target (credential specs, Windows only) need no file.
pub(crate) fn referenced_files(spec: &ContainerSpec) -> Result<Vec<TaskFile>, ExecError> {
    let mut files = Vec::new();
    for (i, s) in spec.secrets.iter().enumerate() {
        let target = s.file.as_ref().ok_or_else(|| {
            ExecError::Rejected(format!(
                "secret {}: the reference has no file target",
                s.secret_name
            ))
        })?;
        files.push(task_file(
            FileKind::Secret,
            &s.secret_id,
            &s.secret_name,
            format!("secret-{i}"),
            target,
            SECRETS_DIR,
        )?);
    }
    for (i, c) in spec.configs.iter().enumerate() {
        let Some(target) = c.file.as_ref() else {
            continue;
        };
        files.push(task_file(
            FileKind::Config,
            &c.config_id,
            &c.config_name,
            format!("config-{i}"),
            target,
            CONFIGS_DIR,
        )?);
    }
    Ok(files)
}

fn task_file(
    kind: FileKind,
    id: &str,
    name: &str,
    host_name: String,
    file: &ReferenceFileTarget,
    default_dir: &str,
) -> Result<TaskFile, ExecError> {
    let bad = |what: String| ExecError::Rejected(format!("{} {name}: {what}", kind.noun()));
    let id_of = |field: &str, v: &str| -> Result<u32, ExecError> {
        if v.is_empty() {
            return Ok(0);
        }
        v.parse()
            .map_err(|_| bad(format!("{field} {v:?} is not a numeric id")))
    };
    let file_name = if file.name.is_empty() {
        name
    } else {
        &file.name
    };
    if file_name.is_empty() || file_name.ends_with('/') {
        return Err(bad(format!("{file_name:?} is not a file path")));
    }
    let target = if file_name.starts_with('/') {
        file_name.to_owned()
    } else {
        Path::new(default_dir)
            .join(file_name)
            .to_string_lossy()
            .into_owned()
    };
    Ok(TaskFile {
        kind,
        object_id: id.to_owned(),
        object_name: name.to_owned(),
        host_name,
        target,
        uid: id_of("uid", &file.uid)?,
        gid: id_of("gid", &file.gid)?,
        mode: file.mode & 0o7777,
    })
}

/// The tmpfs of one task: `<run dir>/tasks/<task id>`.
pub(crate) fn task_dir(run_dir: &Path, task_id: &str) -> PathBuf {
    run_dir.join("tasks").join(task_id)
}

/// The ids of the tasks that have a directory under `run_dir` (see [`task_dir`]).
pub(crate) fn tasks_with_files(run_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(run_dir.join("tasks")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// The read-only bind mounts that put `files` (in `dir`) at their targets.
pub(crate) fn bind_mounts(dir: &Path, files: &[TaskFile]) -> Vec<EngineMount> {
    files
        .iter()
        .map(|f| EngineMount {
            typ: Some(EngineMountType::BIND),
            source: Some(dir.join(&f.host_name).to_string_lossy().into_owned()),
            target: Some(f.target.clone()),
            read_only: Some(true),
            ..Default::default()
        })
        .collect()
}

/// Mounts the task's tmpfs (unless it is mounted already) and writes every file into it from
/// the node's in-memory copies. A secret or config the node does not hold yet is a temporary
/// error: its assignment comes before the task's, and a restarted agent may resume the task
/// before its session delivers them.
pub(crate) async fn materialize(
    dir: &Path,
    files: &[TaskFile],
    deps: &dyn Dependencies,
) -> Result<(), ExecError> {
    let mut contents = Vec::with_capacity(files.len());
    for f in files {
        let data = match f.kind {
            FileKind::Secret => deps.secret(&f.object_id).map(|s| s.spec.data),
            FileKind::Config => deps.config(&f.object_id).map(|c| c.spec.data),
        };
        let data = data.ok_or_else(|| {
            ExecError::Temporary(format!(
                "{} {} ({}) is not on this node yet",
                f.kind.noun(),
                f.object_name,
                f.object_id
            ))
        })?;
        contents.push((f.clone(), data));
    }
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || write_all(&dir, &contents))
        .await
        .map_err(|e| ExecError::Temporary(format!("writing the task's files: {e}")))?
        .map_err(|e| ExecError::Temporary(format!("writing the task's secrets and configs: {e}")))
}

fn write_all(dir: &Path, contents: &[(TaskFile, Vec<u8>)]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if !is_tmpfs(dir)? {
        let size: usize = contents.iter().map(|(_, d)| d.len() + 4096).sum();
        let options = format!("mode=0700,size={}", size.max(64 * 1024));
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(options.as_str()),
        )
        .map_err(|e| io::Error::other(format!("mounting a tmpfs at {}: {e}", dir.display())))?;
    }
    for (f, data) in contents {
        write_file(&dir.join(&f.host_name), f, data)?;
    }
    Ok(())
}

fn write_file(path: &Path, f: &TaskFile, data: &[u8]) -> io::Result<()> {
    // Written owner-only first, then handed over: never readable by others while incomplete.
    let mut file: File = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)?;
    fchown(&file, Some(f.uid), Some(f.gid))?;
    file.set_permissions(Permissions::from_mode(f.mode))?;
    Ok(())
}

/// Whether `dir` is the root of a tmpfs (mounted there, not merely on one).
fn is_tmpfs(dir: &Path) -> io::Result<bool> {
    let fs = nix::sys::statfs::statfs(dir).map_err(io::Error::from)?;
    if fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC {
        return Ok(false);
    }
    let parent = dir.parent().unwrap_or(dir);
    let here = nix::sys::stat::stat(dir).map_err(io::Error::from)?;
    let above = nix::sys::stat::stat(parent).map_err(io::Error::from)?;
    Ok(here.st_dev != above.st_dev)
}

/// Unmounts the task's tmpfs and removes its directory. Absent is fine.
pub(crate) fn release(dir: &Path) -> Result<(), ExecError> {
    let failed = |e: io::Error| {
        ExecError::Temporary(format!(
            "removing the task's secrets and configs at {}: {e}",
            dir.display()
        ))
    };
    match is_tmpfs(dir) {
        Ok(true) => {
            // Detached: a container that still holds a bind mount keeps its own reference.
            umount2(dir, MntFlags::MNT_DETACH).map_err(|e| failed(io::Error::from(e)))?;
        }
        Ok(false) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(failed(e)),
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(failed(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_store::model::{ConfigReference, SecretReference};

    fn file(name: &str, mode: u32) -> Option<ReferenceFileTarget> {
        Some(ReferenceFileTarget {
            name: name.into(),
            uid: "1000".into(),
            gid: "".into(),
            mode,
        })
    }

    #[test]
    fn targets_follow_dockerd() {
        let spec = ContainerSpec {
            secrets: vec![
                SecretReference {
                    file: file("token", 0o400),
                    secret_id: "s1".into(),
                    secret_name: "token".into(),
                },
                SecretReference {
                    file: file("/etc/app/key", 0o444),
                    secret_id: "s2".into(),
                    secret_name: "key".into(),
                },
            ],
            configs: vec![
                ConfigReference {
                    file: file("app.conf", 0o444),
                    config_id: "c1".into(),
                    config_name: "app".into(),
                    ..Default::default()
                },
                ConfigReference {
                    runtime: Some(Default::default()),
                    config_id: "c2".into(),
                    config_name: "credspec".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let files = referenced_files(&spec).unwrap();
        let targets: Vec<_> = files.iter().map(|f| f.target.as_str()).collect();
        assert_eq!(targets, ["/run/secrets/token", "/etc/app/key", "/app.conf"]);
        assert_eq!(
            (files[0].uid, files[0].gid, files[0].mode),
            (1000, 0, 0o400)
        );
        let mounts = bind_mounts(Path::new("/run/shoal/x/tasks/t1"), &files);
        assert_eq!(
            mounts[0].source.as_deref(),
            Some("/run/shoal/x/tasks/t1/secret-0")
        );
        assert_eq!(mounts[0].read_only, Some(true));
    }

    #[test]
    fn a_non_numeric_owner_is_rejected_with_the_secret_named() {
        let spec = ContainerSpec {
            secrets: vec![SecretReference {
                file: Some(ReferenceFileTarget {
                    name: "token".into(),
                    uid: "root".into(),
                    gid: "0".into(),
                    mode: 0o444,
                }),
                secret_id: "s1".into(),
                secret_name: "token".into(),
            }],
            ..Default::default()
        };
        let err = referenced_files(&spec).unwrap_err();
        assert_eq!(
            err,
            ExecError::Rejected("secret token: uid \"root\" is not a numeric id".into())
        );
    }
}
