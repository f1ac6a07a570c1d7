//! Bad input at the gRPC listeners, first layer (issue 20, deliverable 6): every message of
//! every protocol shoal serves or reads (store peers, swarm joins, the dispatcher, the watch)
//! decoded from random bytes and from random but well-framed protobuf fields (right and wrong
//! wire types, lying lengths, unknown and huge field numbers, truncation).
//!
//! Decoding must never panic, whatever the bytes; what decodes must survive a re-encode
//! unchanged (so nothing a peer sends is silently reinterpreted on the way through). Bounded and
//! seeded: the same cases every run (`SHOAL_FUZZ_CASES` / `SHOAL_FUZZ_SEED` for a longer or
//! another search).

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use prost::Message;
use shoal_proto::{dispatcher, raft, swarm, watch};

/// Decodes `bytes` as `M` (plain and length-delimited); checks the round trip of what decodes.
fn decode_as<M: Message + Default + PartialEq + std::fmt::Debug>(
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    if let Ok(m) = M::decode(bytes) {
        let again = M::decode(m.encode_to_vec().as_slice());
        prop_assert_eq!(
            again.as_ref(),
            Ok(&m),
            "{} changed in a round trip",
            std::any::type_name::<M>()
        );
    }
    let _ = M::decode_length_delimited(bytes);
    Ok(())
}

macro_rules! decode_all {
    ($bytes:expr, $($m:ty),+ $(,)?) => {{
        $(decode_as::<$m>($bytes)?;)+
    }};
}

/// Every message type, one after the other.
fn decode_every_message(bytes: &[u8]) -> Result<(), TestCaseError> {
    decode_all!(
        bytes,
        raft::PeerMessage,
        raft::PeerRequest,
        raft::PeerReply,
        raft::SnapshotChunk,
        swarm::JoinRequest,
        swarm::JoinResponse,
        swarm::JoinRaftRequest,
        swarm::JoinRaftResponse,
        swarm::RenewRequest,
        swarm::RenewResponse,
        dispatcher::NetworkStateRequest,
        dispatcher::NetworkStateMessage,
        dispatcher::SessionRequest,
        dispatcher::SessionMessage,
        dispatcher::SessionState,
        dispatcher::WeightedManager,
        dispatcher::HeartbeatRequest,
        dispatcher::HeartbeatResponse,
        dispatcher::AssignmentsRequest,
        dispatcher::AssignmentsMessage,
        dispatcher::AssignmentChange,
        dispatcher::UpdateTaskStatusRequest,
        dispatcher::TaskStatusUpdate,
        dispatcher::UpdateTaskStatusResponse,
        dispatcher::LogSelector,
        dispatcher::LogSubscription,
        dispatcher::LogEntry,
        dispatcher::PublishLogsMessage,
        dispatcher::PublishLogsResponse,
        dispatcher::SubscribeLogsRequest,
        dispatcher::SubscribeLogsMessage,
        watch::Filter,
        watch::StartNow,
        watch::WatchRequest,
        watch::WatchResponse,
        watch::InitBegin,
        watch::InitObject,
        watch::InitDone,
        watch::Commit,
        watch::Event,
        watch::Progress,
        watch::WatchError,
        watch::CurrentRevisionRequest,
        watch::WaitForRequest,
        watch::RevisionResponse,
    );
    Ok(())
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One protobuf field as it travels: a key (field number and wire type) and a payload.
#[derive(Clone, Debug)]
struct Field {
    number: u64,
    wire_type: u8,
    payload: Vec<u8>,
    /// For length-delimited fields: the length to claim (`None`: the real one).
    claimed_len: Option<u64>,
    /// Nested fields (a sub-message) instead of `payload`.
    nested: Vec<Field>,
}

impl Field {
    fn encode(&self, out: &mut Vec<u8>) {
        varint((self.number << 3) | u64::from(self.wire_type & 7), out);
        match self.wire_type & 7 {
            0 => out.extend_from_slice(&self.payload[..self.payload.len().min(10)]),
            1 => out.extend_from_slice(&self.payload[..self.payload.len().min(8)]),
            5 => out.extend_from_slice(&self.payload[..self.payload.len().min(4)]),
            2 => {
                let mut body = Vec::new();
                if self.nested.is_empty() {
                    body.extend_from_slice(&self.payload);
                } else {
                    for f in &self.nested {
                        f.encode(&mut body);
                    }
                }
                varint(self.claimed_len.unwrap_or(body.len() as u64), out);
                out.extend_from_slice(&body);
            }
            // Group start/end and the unused wire types 6 and 7: the key alone.
            _ => {}
        }
    }
}

fn field() -> impl Strategy<Value = Field> {
    let leaf = (
        prop_oneof![8 => 1u64..10, 1 => Just(0u64), 1 => any::<u64>().prop_map(|n| n >> 3)],
        prop_oneof![4 => Just(2u8), 3 => Just(0u8), 1 => 0u8..8],
        proptest::collection::vec(any::<u8>(), 0..24),
        prop_oneof![8 => Just(None), 1 => any::<u64>().prop_map(Some), 1 => (0u64..40).prop_map(Some)],
    )
        .prop_map(|(number, wire_type, payload, claimed_len)| Field {
            number,
            wire_type,
            payload,
            claimed_len,
            nested: Vec::new(),
        });
    leaf.prop_recursive(3, 24, 4, |inner| {
        (1u64..10, proptest::collection::vec(inner, 1..4)).prop_map(|(number, nested)| Field {
            number,
            wire_type: 2,
            payload: Vec::new(),
            claimed_len: None,
            nested,
        })
    })
}

/// Random bytes, or well-framed fields (optionally cut short).
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..128),
        (proptest::collection::vec(field(), 0..6), any::<u16>()).prop_map(|(fields, cut)| {
            let mut out = Vec::new();
            for f in &fields {
                f.encode(&mut out);
            }
            if cut % 4 == 0 && !out.is_empty() {
                out.truncate(usize::from(cut) % out.len());
            }
            out
        }),
    ]
}

#[test]
fn every_message_decodes_any_bytes_without_panicking() {
    let cases = std::env::var("SHOAL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8192);
    let seed = std::env::var("SHOAL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        ..Config::default()
    });
    if let Err(e) = runner.run(&input(), |bytes| decode_every_message(&bytes)) {
        panic!("{e}");
    }
}
