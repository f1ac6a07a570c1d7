//! Small hand-made histories whose verdict is known, one per rule the checker must get right.

use std::time::Duration;

use shoal_lincheck::models::{
    Register, RegisterInput as RI, RegisterOutput as RO, VersionedInput as VI,
    VersionedOutput as VO, VersionedRegister,
};
use shoal_lincheck::{check, CheckResult, History, Operation};

type Reg = Register<&'static str>;
type RegOp = Operation<RI<&'static str>, RO<&'static str>>;
type VerOp = Operation<VI<&'static str>, VO<&'static str>>;

const NO_DEADLINE: Duration = Duration::MAX;

fn done(
    client: u64,
    input: RI<&'static str>,
    call: u64,
    output: RO<&'static str>,
    ret: u64,
) -> RegOp {
    Operation::completed(client, "k", input, call, output, ret)
}

fn lost(client: u64, input: RI<&'static str>, call: u64) -> RegOp {
    Operation::unknown(client, "k", input, call)
}

fn cas(expected: Option<&'static str>, new: &'static str) -> RI<&'static str> {
    RI::Cas { expected, new }
}

fn read(v: Option<&'static str>) -> RO<&'static str> {
    RO::Read(v)
}

fn register(ops: Vec<RegOp>) -> CheckResult {
    check(
        &Reg::new(),
        &History::from_operations(ops).unwrap(),
        NO_DEADLINE,
    )
}

fn versioned(ops: Vec<VerOp>) -> CheckResult {
    check(
        &VersionedRegister::<&'static str>::new(),
        &History::from_operations(ops).unwrap(),
        NO_DEADLINE,
    )
}

fn assert_illegal(result: CheckResult) -> String {
    match result {
        CheckResult::Illegal { report, .. } => report,
        other => panic!("expected Illegal, got {other:?}"),
    }
}

#[test]
fn an_empty_history_is_linearizable() {
    assert_eq!(register(vec![]), CheckResult::Ok);
}

#[test]
fn sequential_reads_see_the_last_write() {
    assert_eq!(
        register(vec![
            done(1, RI::Read, 0, read(None), 1),
            done(1, RI::Write("a"), 2, RO::Written, 3),
            done(2, RI::Read, 4, read(Some("a")), 5),
        ]),
        CheckResult::Ok
    );
}

#[test]
fn a_stale_read_after_an_acknowledged_write_is_illegal() {
    let report = assert_illegal(register(vec![
        done(1, RI::Write("a"), 0, RO::Written, 10),
        done(1, RI::Write("b"), 20, RO::Written, 30),
        done(2, RI::Read, 40, read(Some("a")), 50),
    ]));
    // The report shows the prefix that worked and the read that cannot follow it.
    assert!(report.contains("write(\"b\") -> ok"), "{report}");
    assert!(report.contains("the model refuses it"), "{report}");
}

#[test]
fn a_lost_cas_is_illegal() {
    // The CAS was acknowledged, yet a later read sees the value it replaced.
    assert!(!register(vec![
        done(1, RI::Write("a"), 0, RO::Written, 10),
        done(2, cas(Some("a"), "b"), 20, RO::CasOk, 30),
        done(3, RI::Read, 40, read(Some("a")), 50),
    ])
    .is_ok());
}

#[test]
fn two_successful_cas_from_the_same_old_value_are_illegal() {
    // Even fully concurrent, only one of them can have found "a".
    assert!(!register(vec![
        done(1, RI::Write("a"), 0, RO::Written, 10),
        done(2, cas(Some("a"), "b"), 20, RO::CasOk, 40),
        done(3, cas(Some("a"), "c"), 21, RO::CasOk, 39),
    ])
    .is_ok());
    // One succeeding and the other failing is fine in either order.
    assert!(register(vec![
        done(1, RI::Write("a"), 0, RO::Written, 10),
        done(2, cas(Some("a"), "b"), 20, RO::CasFailed, 40),
        done(3, cas(Some("a"), "c"), 21, RO::CasOk, 39),
    ])
    .is_ok());
}

#[test]
fn concurrent_operations_may_take_the_order_that_works() {
    // The read overlaps the write, so it may see either value, and overlapping reads may
    // disagree as long as one order explains both.
    assert!(register(vec![
        done(1, RI::Write("a"), 10, RO::Written, 50),
        done(2, RI::Read, 20, read(Some("a")), 30),
        done(3, RI::Read, 25, read(None), 60),
    ])
    .is_ok());
    // But once a read has returned the new value, a later read cannot go back.
    assert!(!register(vec![
        done(1, RI::Write("a"), 10, RO::Written, 50),
        done(2, RI::Read, 20, read(Some("a")), 30),
        done(3, RI::Read, 35, read(None), 60),
    ])
    .is_ok());
}

#[test]
fn an_operation_that_returns_at_the_instant_another_is_called_is_concurrent_with_it() {
    // Equal times are a tie, not an order: the read may go before the write.
    assert!(register(vec![
        done(1, RI::Write("a"), 0, RO::Written, 10),
        done(2, RI::Read, 10, read(None), 20),
    ])
    .is_ok());
    // One nanosecond later the write precedes the read.
    assert!(!register(vec![
        done(1, RI::Write("a"), 0, RO::Written, 10),
        done(2, RI::Read, 11, read(None), 20),
    ])
    .is_ok());
}

#[test]
fn an_unknown_write_may_take_effect_late() {
    assert!(register(vec![
        lost(1, RI::Write("a"), 0),
        done(2, RI::Read, 10, read(None), 20),
        done(2, RI::Read, 100, read(Some("a")), 110),
    ])
    .is_ok());
}

#[test]
fn an_unknown_write_may_never_take_effect() {
    assert!(register(vec![
        lost(1, RI::Write("a"), 0),
        done(2, RI::Read, 100, read(None), 110),
    ])
    .is_ok());
}

#[test]
fn an_unknown_write_cannot_take_effect_before_its_call_or_twice() {
    // Seen before it was sent.
    assert!(!register(vec![
        done(2, RI::Read, 0, read(Some("a")), 5),
        lost(1, RI::Write("a"), 10),
    ])
    .is_ok());
    // Seen, then gone, then seen again: it can only take effect once.
    assert!(!register(vec![
        lost(1, RI::Write("a"), 0),
        done(2, RI::Read, 10, read(Some("a")), 20),
        done(3, RI::Write("b"), 30, RO::Written, 40),
        done(2, RI::Read, 50, read(Some("a")), 60),
    ])
    .is_ok());
}

#[test]
fn an_unknown_cas_takes_effect_only_if_its_comparison_holds() {
    assert!(register(vec![
        done(1, RI::Write("a"), 0, RO::Written, 10),
        lost(2, cas(Some("a"), "b"), 20),
        done(3, RI::Read, 30, read(Some("b")), 40),
    ])
    .is_ok());
    assert!(!register(vec![
        done(1, RI::Write("x"), 0, RO::Written, 10),
        lost(2, cas(Some("a"), "b"), 20),
        done(3, RI::Read, 30, read(Some("b")), 40),
    ])
    .is_ok());
}

#[test]
fn partitions_are_checked_separately_and_the_bad_key_is_named() {
    let on = |key: &str, op: RegOp| Operation {
        key: key.to_string(),
        ..op
    };
    let result = register(vec![
        on("a", done(1, RI::Write("1"), 0, RO::Written, 10)),
        on("b", done(1, RI::Write("1"), 20, RO::Written, 30)),
        on("a", done(2, RI::Read, 40, read(Some("1")), 50)),
        // Key b was written, so this read is stale; key a's read is fine.
        on("b", done(2, RI::Read, 60, read(None), 70)),
    ]);
    match result {
        CheckResult::Illegal { key, prefix, .. } => {
            assert_eq!(key, "b");
            assert_eq!(prefix, vec![1]);
        }
        other => panic!("expected Illegal, got {other:?}"),
    }
}

#[test]
fn a_passed_deadline_gives_unknown_not_ok() {
    let history =
        History::from_operations(vec![done(1, RI::Write("a"), 0, RO::Written, 1)]).unwrap();
    assert_eq!(
        check(&Reg::new(), &history, Duration::ZERO),
        CheckResult::Unknown { key: "k".into() }
    );
}

#[test]
fn a_saved_history_checks_the_same_after_reading_it_back() {
    let history = History::from_operations(vec![
        done(1, RI::Write("a"), 0, RO::Written, 10),
        lost(2, cas(Some("a"), "b"), 5),
        done(3, RI::Read, 20, read(Some("a")), 30),
    ])
    .unwrap();
    let json = history.to_json();
    let back: History<RI<String>, RO<String>> = History::from_json(&json).unwrap();
    assert!(check(&Register::<String>::new(), &back, NO_DEADLINE).is_ok());
}

fn vdone(
    client: u64,
    input: VI<&'static str>,
    call: u64,
    output: VO<&'static str>,
    ret: u64,
) -> VerOp {
    Operation::completed(client, "svc", input, call, output, ret)
}

fn vread(value: Option<&'static str>, revision: u64) -> VO<&'static str> {
    VO::Read { value, revision }
}

#[test]
fn versioned_reads_follow_acknowledged_revisions() {
    assert!(versioned(vec![
        vdone(1, VI::Read, 0, vread(None, 0), 5),
        vdone(1, VI::Write("a"), 10, VO::Written { revision: 4 }, 20),
        vdone(2, VI::Write("b"), 30, VO::Written { revision: 9 }, 40),
        vdone(3, VI::Read, 50, vread(Some("b"), 9), 60),
    ])
    .is_ok());
}

#[test]
fn a_versioned_read_of_an_older_revision_after_a_newer_ack_is_illegal() {
    let report = assert_illegal(versioned(vec![
        vdone(1, VI::Write("a"), 10, VO::Written { revision: 4 }, 20),
        vdone(2, VI::Write("b"), 30, VO::Written { revision: 9 }, 40),
        vdone(3, VI::Read, 50, vread(Some("a"), 4), 60),
    ]));
    assert!(report.contains("Some(\"b\")@9"), "{report}");
}

#[test]
fn versioned_writes_cannot_share_or_reverse_revisions() {
    assert!(!versioned(vec![
        vdone(1, VI::Write("a"), 10, VO::Written { revision: 4 }, 20),
        vdone(2, VI::Write("b"), 11, VO::Written { revision: 4 }, 21),
    ])
    .is_ok());
    assert!(!versioned(vec![
        vdone(1, VI::Write("a"), 10, VO::Written { revision: 7 }, 20),
        vdone(2, VI::Write("b"), 30, VO::Written { revision: 5 }, 40),
    ])
    .is_ok());
    // Concurrent writes are ordered by their revisions.
    assert!(versioned(vec![
        vdone(1, VI::Write("a"), 10, VO::Written { revision: 7 }, 40),
        vdone(2, VI::Write("b"), 11, VO::Written { revision: 5 }, 41),
        vdone(3, VI::Read, 50, vread(Some("a"), 7), 60),
    ])
    .is_ok());
}

#[test]
fn versioned_conditional_updates() {
    // Two updates from the same revision cannot both succeed.
    assert!(!versioned(vec![
        vdone(1, VI::Write("a"), 0, VO::Written { revision: 3 }, 5),
        vdone(
            2,
            VI::Update {
                value: "b",
                expected: 3
            },
            10,
            VO::Written { revision: 6 },
            20
        ),
        vdone(
            3,
            VI::Update {
                value: "c",
                expected: 3
            },
            11,
            VO::Written { revision: 8 },
            21
        ),
    ])
    .is_ok());
    assert!(versioned(vec![
        vdone(1, VI::Write("a"), 0, VO::Written { revision: 3 }, 5),
        vdone(
            2,
            VI::Update {
                value: "b",
                expected: 3
            },
            10,
            VO::Written { revision: 6 },
            20
        ),
        vdone(
            3,
            VI::Update {
                value: "c",
                expected: 3
            },
            11,
            VO::Conflict,
            21
        ),
    ])
    .is_ok());
}

#[test]
fn versioned_unknown_writes_leave_the_revision_open() {
    // The unacknowledged write shows up at revision 12; the acknowledged one comes after it.
    assert!(versioned(vec![
        Operation::unknown(1, "svc", VI::Write("a"), 0),
        vdone(2, VI::Read, 10, vread(Some("a"), 12), 20),
        vdone(2, VI::Write("b"), 30, VO::Written { revision: 13 }, 40),
    ])
    .is_ok());
    // A read cannot invent a revision without a write that could have made it.
    assert!(!versioned(vec![
        vdone(1, VI::Write("a"), 0, VO::Written { revision: 3 }, 5),
        vdone(2, VI::Read, 10, vread(Some("a"), 12), 20),
    ])
    .is_ok());
    // An unknown conditional update after an unknown write may or may not have matched.
    let base = vec![
        Operation::unknown(1, "svc", VI::Write("a"), 0),
        Operation::unknown(
            2,
            "svc",
            VI::Update {
                value: "b",
                expected: 7,
            },
            10,
        ),
    ];
    let then = |read| {
        let mut ops = base.clone();
        ops.push(vdone(3, VI::Read, 20, read, 30));
        versioned(ops)
    };
    assert!(then(vread(Some("b"), 8)).is_ok());
    assert!(then(vread(Some("a"), 2)).is_ok());
    assert!(!then(vread(Some("b"), 7)).is_ok());
}
