//! The chaos workload: concurrent clients reading and compare-and-setting keys through the
//! Docker API while faults happen, every operation recorded with its call and return time for
//! the linearizability checker.
//!
//! A key is a swarm secret (`chaos-k<i>`) and its value the secret's label `v`: nothing else
//! in the swarm writes secrets, and a secret's update is guarded by its version, so:
//! - a read is `GET /secrets/ID` with `X-Shoal-Consistency: linearizable` on a member chosen
//!   at random (followers included);
//! - a compare-and-set reads the key, then sends `POST /secrets/ID/update?version=V` with a
//!   new value. Every value written is unique, so "the version is still V" is the same as "the
//!   value is still what was read", and the operation is recorded as a CAS on values.
//!
//! An answer decides an operation: 200 is done, "update out of sequence" is a failed CAS.
//! Anything else (a timeout, a refused connection, a 503 while there is no leader) leaves a
//! write's outcome unknown (it may still commit), which the checker allows for; a read that
//! got no answer changed nothing and is not recorded.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use shoal_lincheck::models::{RegisterInput, RegisterOutput};
use shoal_lincheck::{History, Operation};

use super::cluster::call;

/// A CAS-register operation on a label value.
pub type Op = Operation<RegisterInput<String>, RegisterOutput<String>>;

/// How long a client waits for one answer before it calls the outcome unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(3);

/// One key: the secret's name and id.
#[derive(Clone, Debug)]
pub struct Key {
    /// `chaos-k<i>`.
    pub name: String,
    /// The secret's id.
    pub id: String,
}

/// Everything the clients record, on one clock.
pub struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Op>>,
    /// When any operation last succeeded (ns on the recorder's clock), for unavailability.
    last_success: AtomicU64,
    /// The longest gap between two successes seen so far (ns).
    longest_gap: AtomicU64,
    /// Answers that were errors, by kind.
    failures: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
            last_success: AtomicU64::new(0),
            longest_gap: AtomicU64::new(0),
            failures: Mutex::new(Default::default()),
        })
    }

    /// Nanoseconds since the recorder started.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn success(&self, at: u64) {
        let prev = self.last_success.swap(at, Ordering::Relaxed);
        if prev != 0 && at > prev {
            self.longest_gap.fetch_max(at - prev, Ordering::Relaxed);
        }
    }

    fn failure(&self, kind: &str) {
        *self
            .failures
            .lock()
            .unwrap()
            .entry(kind.to_string())
            .or_default() += 1;
    }

    fn push(&self, op: Op) {
        self.ops.lock().unwrap().push(op);
    }

    /// The history recorded so far.
    pub fn history(&self) -> History<RegisterInput<String>, RegisterOutput<String>> {
        let ops = self.ops.lock().unwrap().clone();
        History::from_operations(ops).expect("the recorder keeps call <= return")
    }

    /// Operations recorded.
    pub fn operations(&self) -> usize {
        self.ops.lock().unwrap().len()
    }

    /// Error answers by kind.
    pub fn failures(&self) -> std::collections::BTreeMap<String, u64> {
        self.failures.lock().unwrap().clone()
    }

    /// The longest time in which no operation succeeded, in ms.
    pub fn unavailable_ms(&self) -> u64 {
        self.longest_gap.load(Ordering::Relaxed) / 1_000_000
    }

    /// When an operation last succeeded (ns on the recorder's clock).
    pub fn last_success(&self) -> u64 {
        self.last_success.load(Ordering::Relaxed)
    }
}

/// The label value of a secret as an API answer shows it, and its version.
fn value_of(secret: &Value) -> (Option<String>, u64) {
    (
        secret["Spec"]["Labels"]["v"].as_str().map(str::to_string),
        secret["Version"]["Index"].as_u64().unwrap_or(0),
    )
}

fn kind_of(status: u16, body: &Value) -> String {
    let message = body["message"].as_str().unwrap_or("");
    if message.contains("update out of sequence") {
        "out_of_sequence".into()
    } else if status == 503 {
        "unavailable".into()
    } else {
        format!("http_{status}")
    }
}

/// A linearizable read of `key` on `socket`, recorded; the value and version when it
/// answered.
pub async fn read(
    rec: &Recorder,
    client: u64,
    socket: &std::path::Path,
    key: &Key,
) -> Option<(Option<String>, u64)> {
    let call_at = rec.now();
    let r = call(
        socket,
        "GET",
        &format!("/secrets/{}", key.id),
        &[("X-Shoal-Consistency", "linearizable")],
        None,
        OP_TIMEOUT,
    )
    .await;
    match r {
        Ok((200, body)) => {
            let at = rec.now();
            let (value, version) = value_of(&body);
            rec.push(Operation::completed(
                client,
                key.name.clone(),
                RegisterInput::Read,
                call_at,
                RegisterOutput::Read(value.clone()),
                at,
            ));
            rec.success(at);
            Some((value, version))
        }
        Ok((status, body)) => {
            rec.failure(&format!("read_{}", kind_of(status, &body)));
            None
        }
        Err(_) => {
            rec.failure("read_no_answer");
            None
        }
    }
}

/// A compare-and-set of `key` from `expected` (read at `version`) to `new`, recorded; whether
/// it is known to have been applied.
pub async fn cas(
    rec: &Recorder,
    client: u64,
    socket: &std::path::Path,
    key: &Key,
    expected: Option<String>,
    version: u64,
    new: String,
) -> Option<bool> {
    let input = RegisterInput::Cas {
        expected,
        new: new.clone(),
    };
    let call_at = rec.now();
    let r = call(
        socket,
        "POST",
        &format!("/secrets/{}/update?version={version}", key.id),
        &[],
        Some(json!({"Name": key.name, "Labels": {"v": new}})),
        OP_TIMEOUT,
    )
    .await;
    let done = |out, ok| {
        let at = rec.now();
        rec.push(Operation::completed(
            client,
            key.name.clone(),
            input.clone(),
            call_at,
            out,
            at,
        ));
        rec.success(at);
        Some(ok)
    };
    match r {
        Ok((200, _)) => done(RegisterOutput::CasOk, true),
        Ok((status, body)) if kind_of(status, &body) == "out_of_sequence" => {
            rec.failure("cas_out_of_sequence");
            done(RegisterOutput::CasFailed, false)
        }
        // Any other answer, or none: the write may still commit.
        other => {
            let kind = match other {
                Ok((status, body)) => format!("cas_{}", kind_of(status, &body)),
                Err(_) => "cas_no_answer".to_string(),
            };
            rec.failure(&kind);
            rec.push(Operation::unknown(client, key.name.clone(), input, call_at));
            None
        }
    }
}

/// One client: until `stop`, picks a key and a member at random, reads, and half the time
/// compare-and-sets what it read to a value of its own.
pub async fn client(
    id: u64,
    seed: u64,
    sockets: Arc<Vec<PathBuf>>,
    keys: Arc<Vec<Key>>,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (id.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = &keys[rng.random_range(0..keys.len())];
        let socket = &sockets[rng.random_range(0..sockets.len())];
        match read(&rec, id, socket, key).await {
            Some((value, version)) if rng.random_bool(0.5) => {
                n += 1;
                let new = format!("c{id}-{n}");
                cas(&rec, id, socket, key, value, version, new).await;
            }
            Some(_) => {}
            // Nothing answered: do not spin on a member that is down.
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
