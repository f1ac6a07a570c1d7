//! The agent's local record of its tasks, so a restarted agent knows what it was running (and in
//! which observed state) before any manager answers, and adopts those workloads instead of
//! starting duplicates.
//!
//! [`FileTaskStore`] keeps one JSON file per task, `<worker dir>/tasks/<task id>.json`: the task as
//! last assigned (spec, desired state) with `Status` set to the agent's own last observed status.
//! Each write goes to `<id>.json.tmp`, is synced and renamed over the old file, so a crash leaves
//! either the previous or the new record, never a torn one; leftover `.tmp` files are ignored.
//! Writes are done by one thread of the store's own, in the background: a task's runner never
//! waits for a disk sync (they take milliseconds while an engine creates containers, and every
//! state change of every task writes its record), and when records change faster than the disk
//! syncs, only the newest record of each task is written. Losing the newest records in a crash
//! costs nothing that matters: the executor still finds each workload by its task id.
//! [`MemoryTaskStore`] keeps them in memory (simulated nodes, whose workloads die with them).

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;

use shoal_store::model::Task;

/// Where an agent keeps its task records.
pub trait TaskStore: Send + Sync {
    /// Every record.
    fn load(&self) -> io::Result<Vec<Task>>;
    /// Creates or replaces the record of `task.meta.id`.
    fn save(&self, task: &Task) -> io::Result<()>;
    /// Removes a record (absent is fine).
    fn remove(&self, task_id: &str) -> io::Result<()>;
}

/// Records as files under a directory (see the module docs).
pub struct FileTaskStore {
    dir: PathBuf,
    writes: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

/// What the writer thread is asked to do.
enum Request {
    /// Replace `path` with these bytes (`None`: remove it).
    Record(PathBuf, Option<Vec<u8>>),
    /// Answer once everything asked before is on disk.
    Flush(mpsc::Sender<()>),
}

impl FileTaskStore {
    /// A store in `dir` (created if missing).
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let (tx, rx) = mpsc::channel();
        let writer_dir = dir.clone();
        let writer = std::thread::Builder::new()
            .name("agent-task-records".into())
            .spawn(move || write_records(&writer_dir, rx))?;
        Ok(FileTaskStore {
            dir,
            writes: Some(tx),
            writer: Some(writer),
        })
    }

    fn path(&self, task_id: &str) -> io::Result<PathBuf> {
        if task_id.is_empty()
            || !task_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid task id {task_id:?}"),
            ));
        }
        Ok(self.dir.join(format!("{task_id}.json")))
    }

    fn send(&self, write: Request) -> io::Result<()> {
        self.writes
            .as_ref()
            .and_then(|w| w.send(write).ok())
            .ok_or_else(|| io::Error::other("the task record writer has stopped"))
    }

    /// Waits until every record saved or removed so far is on disk.
    pub fn flush(&self) -> io::Result<()> {
        let (tx, rx) = mpsc::channel();
        self.send(Request::Flush(tx))?;
        rx.recv()
            .map_err(|_| io::Error::other("the task record writer has stopped"))
    }
}

impl Drop for FileTaskStore {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued, then stop.
        self.writes.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer thread: takes everything queued, keeps the newest write of each record, writes
/// them, makes the renames durable with one directory sync, then answers flushes.
fn write_records(dir: &Path, rx: mpsc::Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut records: HashMap<PathBuf, Option<Vec<u8>>> = HashMap::new();
        let mut flushes = Vec::new();
        for write in std::iter::once(first).chain(rx.try_iter()) {
            match write {
                Request::Record(path, bytes) => {
                    records.insert(path, bytes);
                }
                Request::Flush(done) => flushes.push(done),
            }
        }
        let changed = !records.is_empty();
        for (path, bytes) in records {
            let result = match bytes {
                Some(bytes) => write_atomic(&path, &bytes),
                None => match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                },
            };
            if let Err(e) = result {
                tracing::warn!("could not record a task locally in {}: {e}", path.display());
            }
        }
        if changed {
            if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
                tracing::warn!("could not sync the task records in {}: {e}", dir.display());
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

impl TaskStore for FileTaskStore {
    fn load(&self) -> io::Result<Vec<Task>> {
        self.flush()?;
        let mut tasks = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            match serde_json::from_slice::<Task>(&bytes) {
                Ok(t) => tasks.push(t),
                // A record we cannot read is useless; the manager's assignments still say what
                // to run, and the executor still finds the workload by its task id.
                Err(e) => tracing::warn!("ignoring unreadable task record {}: {e}", path.display()),
            }
        }
        tasks.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
        Ok(tasks)
    }

    fn save(&self, task: &Task) -> io::Result<()> {
        let path = self.path(&task.meta.id)?;
        self.send(Request::Record(path, Some(serde_json::to_vec(task)?)))
    }

    fn remove(&self, task_id: &str) -> io::Result<()> {
        self.send(Request::Record(self.path(task_id)?, None))
    }
}

/// Records in memory.
#[derive(Default)]
pub struct MemoryTaskStore {
    tasks: Mutex<HashMap<String, Task>>,
}

impl TaskStore for MemoryTaskStore {
    fn load(&self) -> io::Result<Vec<Task>> {
        Ok(self.tasks.lock().unwrap().values().cloned().collect())
    }

    fn save(&self, task: &Task) -> io::Result<()> {
        self.tasks
            .lock()
            .unwrap()
            .insert(task.meta.id.clone(), task.clone());
        Ok(())
    }

    fn remove(&self, task_id: &str) -> io::Result<()> {
        self.tasks.lock().unwrap().remove(task_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use shoal_store::model::{Meta, TaskState, TaskStatus, Timestamp};

    use super::*;

    fn task(id: &str, state: TaskState) -> Task {
        Task {
            meta: Meta::with_id(id),
            status: TaskStatus::new(state, Timestamp::now(), "x"),
            ..Default::default()
        }
    }

    #[test]
    fn records_survive_reopening_and_torn_writes_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let db = FileTaskStore::open(dir.path().join("tasks")).unwrap();
        db.save(&task("a", TaskState::Running)).unwrap();
        db.save(&task("b", TaskState::Preparing)).unwrap();
        db.save(&task("b", TaskState::Ready)).unwrap();
        drop(db); // the agent stops: what it saved is written before it goes
                  // A crash mid-write leaves a temp file behind: it is not a record.
        std::fs::write(dir.path().join("tasks/c.json.tmp"), b"{\"ID\":").unwrap();
        let reopened = FileTaskStore::open(dir.path().join("tasks")).unwrap();
        let loaded = reopened.load().unwrap();
        let states: Vec<(String, TaskState)> = loaded
            .iter()
            .map(|t| (t.meta.id.clone(), t.status.state))
            .collect();
        assert_eq!(
            states,
            [
                ("a".to_string(), TaskState::Running),
                ("b".to_string(), TaskState::Ready)
            ]
        );
        reopened.remove("a").unwrap();
        reopened.remove("a").unwrap();
        assert_eq!(reopened.load().unwrap().len(), 1);
        assert!(reopened.save(&task("../evil", TaskState::New)).is_err());
    }
}
