//! Bad input at the HTTP listeners (issue 20, deliverable 6): property tests that send random
//! and nearly valid requests to the Docker API and to shoal's native API (HTTP and its gRPC
//! watch, all served on the API sockets) of a real one-manager swarm, in process.
//!
//! Every request must be answered without a panic, errors must be JSON with a message, and a
//! rejected request must leave the store as it was (see `bad_input/harness.rs` for the oracles).
//! Requests are built from the real route table with random methods, version prefixes, object
//! references (existing ids, names, prefixes, junk and broken escapes), query strings, headers
//! and bodies (random bytes, random JSON, deep nesting, broken JSON, and each route's valid body
//! with a few random mutations: wrong types, removed fields, case-folded keys, huge numbers).
//!
//! The cases are bounded and seeded (`SHOAL_FUZZ_CASES`, `SHOAL_FUZZ_SEED` change them), so a
//! run is the same every time and takes seconds; a longer search is
//! `SHOAL_FUZZ_CASES=5000 SHOAL_FUZZ_SEED=$RANDOM cargo nextest run --test bad_input`.

#[path = "bad_input/cases.rs"]
mod cases;
#[path = "bad_input/gen.rs"]
mod gen;
#[path = "bad_input/harness.rs"]
mod harness;
#[path = "bad_input/routes.rs"]
mod routes;

use cases::{build, grpc_case, http_case, NativeCase};
use harness::{objects_of, Call, Harness};
use proptest::prelude::*;
use routes::{base_body, docker_routes, native_routes, Base};
use serde_json::json;
use shoal_store::model::Kind;

/// Creates what the requests name when it is missing (an earlier request may have removed it):
/// a service, a network, a secret, a config and a stack.
fn seed(h: &Harness) {
    h.rt.block_on(async {
        let store = h.manager_store().await;
        let view = store.view();
        let has = |kind: Kind, name: &str| objects_of(&view, kind).iter().any(|o| o.1 == name);
        let mut created = false;
        if !has(Kind::Network, "fz-seed-net") {
            let body = json!({"Name": "fz-seed-net", "Driver": "overlay", "Attachable": true});
            expect_created(h.call_ok("POST", "/networks/create", body).await);
            created = true;
        }
        if !has(Kind::Service, "fz-seed") {
            let body = json!({
                "Name": "fz-seed",
                "TaskTemplate": {"ContainerSpec": {"Image": "shoal-test/busybox:1",
                                                   "Command": ["sleep", "3600"]}},
                "Mode": {"Replicated": {"Replicas": 1}}
            });
            expect_created(h.call_ok("POST", "/services/create", body).await);
            created = true;
        }
        for (kind, route) in [
            (Kind::Secret, "/secrets/create"),
            (Kind::Config, "/configs/create"),
        ] {
            let name = format!("fz-seed-{}", route.split('/').nth(1).unwrap());
            if !has(kind, &name) {
                let body = json!({"Name": name, "Data": "c2VlZA=="});
                expect_created(h.call_ok("POST", route, body).await);
                created = true;
            }
        }
        if !has(Kind::Stack, "fz-seed-stack") {
            let compose = json!({"services": {"app": {"image": "shoal-test/busybox:1",
                                                      "command": ["sleep", "3600"]}}});
            let body = json!({"files": [{"name": "compose.yaml", "content": compose.to_string()}],
                              "applied_by": "fuzz@test"});
            expect_created(
                h.call_ok("POST", "/shoal/v1/stacks/fz-seed-stack/apply", body)
                    .await,
            );
            created = true;
        }
        if created {
            h.settle(&store).await;
        }
    });
}

fn expect_created(a: harness::Answer) {
    assert!(a.status.is_success(), "seeding: {a:?}");
}

/// The Docker API answers every request, errors as JSON, and a refused request writes nothing.
#[test]
fn the_docker_api_survives_bad_input_and_refusals_write_nothing() {
    let h = Harness::start();
    let routes = docker_routes();
    let mut runner = harness::runner(harness::cases(384));
    let result = runner.run(&http_case(routes.clone(), true), |case| {
        seed(&h);
        let view = h.rt.block_on(h.manager_store()).view();
        h.check(&build(&case, &routes, &view, false))
    });
    h.report("docker API");
    h.stop();
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The native API (HTTP routes and the gRPC watch on the API socket) answers every request,
/// errors as `{"code", "message"}`, and a refused request writes nothing.
#[test]
fn the_native_api_survives_bad_input_and_refusals_write_nothing() {
    let h = Harness::start();
    let routes = native_routes();
    let mut runner = harness::runner(harness::cases(512));
    let strategy = prop_oneof![
        4 => http_case(routes.clone(), false).prop_map(NativeCase::Http),
        1 => grpc_case().prop_map(NativeCase::Grpc),
    ];
    let result = runner.run(&strategy, |case| {
        seed(&h);
        let call = match &case {
            NativeCase::Http(c) => {
                let view = h.rt.block_on(h.manager_store()).view();
                build(c, &routes, &view, true)
            }
            NativeCase::Grpc(g) => g.call(),
        };
        h.check(&call)
    });
    h.report("native API");
    h.stop();
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The valid bodies the mutations start from are valid: each is accepted as it is (else the
/// mutations would only ever reach the first check that refuses it).
#[test]
fn the_bodies_the_mutations_start_from_are_accepted() {
    let h = Harness::start();
    seed(&h);
    h.rt.block_on(async {
        let view = h.manager_store().await.view();
        let find = |kind: Kind, name: &str| {
            objects_of(&view, kind)
                .into_iter()
                .find(|o| o.1 == name)
                .unwrap_or_else(|| panic!("no {kind:?} {name}"))
        };
        let swarm_version = objects_of(&view, Kind::Cluster)[0].2;
        let node = objects_of(&view, Kind::Node)[0].clone();
        let service = find(Kind::Service, "fz-seed");
        let secret = find(Kind::Secret, "fz-seed-secrets");
        let config = find(Kind::Config, "fz-seed-configs");
        let calls = [
            (
                "/networks/create".to_string(),
                base_body(Base::Network, 7, None),
            ),
            (
                "/services/create".to_string(),
                base_body(Base::Service, 7, None),
            ),
            (
                "/secrets/create".to_string(),
                base_body(Base::Secret, 7, None),
            ),
            (
                "/configs/create".to_string(),
                base_body(Base::Config, 7, None),
            ),
            (
                format!("/services/{}/update?version={}", service.0, service.2),
                base_body(Base::Service, 8, Some("fz-seed")),
            ),
            (
                format!("/secrets/{}/update?version={}", secret.0, secret.2),
                base_body(Base::Secret, 8, Some(&secret.1)),
            ),
            (
                format!("/configs/{}/update?version={}", config.0, config.2),
                base_body(Base::Config, 8, Some(&config.1)),
            ),
            (
                format!("/nodes/{}/update?version={}", node.0, node.2),
                base_body(Base::Node, 8, None),
            ),
            (
                format!("/swarm/update?version={swarm_version}"),
                base_body(Base::Swarm, 8, None),
            ),
            (
                "/shoal/v1/stacks/fz-valid/plan".to_string(),
                base_body(Base::Apply, 9, None),
            ),
            (
                "/shoal/v1/stacks/fz-valid/apply".to_string(),
                base_body(Base::Apply, 9, None),
            ),
        ];
        for (uri, body) in calls {
            let a = h.call_ok("POST", &uri, body.clone()).await;
            assert!(
                a.status.is_success(),
                "POST {uri} {body}: {} {:?}",
                a.status,
                a.body
            );
        }
    });
    h.stop();
}

/// Regressions: requests that axum's extractors refused with plain-text bodies (the Go client
/// and the native API's clients only read JSON errors), and a wrong method on a native path that
/// got the Docker API's error without a `code`.
#[test]
fn malformed_paths_bodies_queries_and_methods_get_json_errors() {
    let h = Harness::start();
    seed(&h);
    // Method, path, content type, body, the status expected, whether the native API answers.
    type Expected = (
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static [u8],
        u16,
        bool,
    );
    let cases: &[Expected] = &[
        ("GET", "/tasks/%ff", None, b"", 400, false),
        (
            "GET",
            "/v1.44/services/%C0%AF/logs?stdout=1",
            None,
            b"",
            400,
            false,
        ),
        ("DELETE", "/secrets/%ED%A0%80", None, b"", 400, false),
        (
            "POST",
            "/shoal/v1/stacks/fz-seed-stack/rollback",
            Some("application/json"),
            b"[[1",
            400,
            true,
        ),
        (
            "POST",
            "/shoal/v1/stacks/fz-seed-stack/plan",
            None,
            b"{}",
            415,
            true,
        ),
        (
            "GET",
            "/shoal/v1/stacks/fz-seed-stack/revisions/abc",
            None,
            b"",
            400,
            true,
        ),
        ("GET", "/shoal/v1/stacks/%ff", None, b"", 400, true),
        (
            "GET",
            "/shoal/v1/wait?revision=1&revision=2",
            None,
            b"",
            400,
            true,
        ),
        ("POST", "/shoal/v1/openapi.json", None, b"", 404, true),
        ("POST", "/shoal/", None, b"", 404, true),
        ("GET", "/shoal", None, b"", 404, true),
    ];
    for (method, uri, content_type, body, status, native) in cases {
        let call = Call {
            method: method.to_string(),
            uri: uri.to_string(),
            headers: content_type
                .map(|c| vec![("content-type".to_string(), c.to_string())])
                .unwrap_or_default(),
            body: body.to_vec(),
            may_wait: false,
            native: *native,
            grpc: false,
            label: uri.to_string(),
        };
        if let Err(e) = h.check(&call) {
            panic!("{e}");
        }
        let answer = h.rt.block_on(h.send(&call)).unwrap().unwrap();
        assert_eq!(
            answer.status.as_u16(),
            *status,
            "{method} {uri}: {answer:?}"
        );
    }
    h.stop();
}

/// The panic oracle sees a panic in a task the server spawned (tokio would swallow it).
#[test]
fn a_panic_in_a_spawned_task_is_seen() {
    harness::record_panics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("panic-selftest")
        .enable_all()
        .build()
        .unwrap();
    let task = rt.spawn(async { panic!("a handler's task panics") });
    assert!(rt.block_on(task).is_err());
    let seen = harness::take_panics(|t| t == "panic-selftest");
    assert!(
        seen.iter().any(|p| p.contains("a handler's task panics")),
        "{seen:?}"
    );
}
