//! The dashboard against a real store (objects written as the controllers and agents would):
//! fragments, the login flow and the event stream.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use shoal_store::model::{Object, TaskState, TaskStatus, Timestamp};
use shoal_store::{Store, Txn};
use tower::ServiceExt;

use super::auth::{Access, Token};
use super::{pages, router, Dashboard};
use crate::bench::dashboard::{open_store, populate, Populated};

async fn swarm(nodes: usize, tasks: usize) -> (tempfile::TempDir, Store, Populated) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(dir.path()).await.expect("store");
    let populated = populate(&store, nodes, tasks).await.expect("populate");
    (dir, store, populated)
}

fn open() -> Access {
    Access::decide("127.0.0.1:1".parse().unwrap(), None, None).unwrap()
}

async fn body_text(res: axum::response::Response) -> String {
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn fragments_show_the_stores_nodes_services_and_tasks() {
    let (_dir, store, populated) = swarm(5, 20).await;
    let view = store.view();

    let services = pages::services_fragment(&view).into_string();
    for k in 0..10 {
        assert!(services.contains(&format!("svc-{k:02}")), "{services}");
    }
    assert!(
        services.contains(r#"<span class="running">2</span>/<span class="desired">2</span>"#),
        "2 of 2 replicas running: {services}"
    );
    assert!(services.contains("nginx:1.27"));

    let nodes = pages::nodes_fragment(&view).into_string();
    for i in 0..5 {
        assert!(nodes.contains(&format!("node-{i:04}")), "{nodes}");
    }
    assert!(
        nodes.contains(">leader<"),
        "the leading manager is marked: {nodes}"
    );

    let svc = view
        .get::<shoal_store::model::Service>(&populated.services[0].meta.id)
        .expect("service");
    let detail = pages::service_fragment_of(&view, &svc).into_string();
    assert!(
        detail.contains("svc-00.1") && detail.contains("svc-00.2"),
        "{detail}"
    );
    assert!(detail.contains("2 running"), "{detail}");

    let overview = pages::overview_fragment(&store, &view, &[]).into_string();
    assert!(
        overview.contains("10<span class=\"muted\"> / 10</span>"),
        "10 of 10 services converged: {overview}"
    );
    assert!(
        overview.contains("20<span class=\"muted\"> / 20</span>"),
        "20 of 20 tasks running: {overview}"
    );
    store.shutdown().await;
}

#[tokio::test]
async fn a_failed_task_shows_its_error_and_its_service_is_not_converged() {
    let (_dir, store, populated) = swarm(3, 10).await;
    let view = store.view();
    let s = &populated.services[3];
    let mut t = view
        .tasks_of_service(&s.meta.id)
        .next()
        .expect("a task")
        .to_owned_value();
    t.status = TaskStatus::new(TaskState::Failed, Timestamp::now(), "failed");
    t.status.err = "task: non-zero exit (137)".into();
    store
        .submit(Txn::new().update(Object::Task(t)))
        .await
        .expect("update");
    let view = store.view();
    let svc = view.get::<shoal_store::model::Service>(&s.meta.id).unwrap();
    let detail = pages::service_fragment_of(&view, &svc).into_string();
    assert!(detail.contains("task: non-zero exit (137)"), "{detail}");
    let overview = pages::overview_fragment(&store, &view, &[]).into_string();
    assert!(
        overview.contains("svc-03"),
        "listed as not converged: {overview}"
    );
    store.shutdown().await;
}

#[tokio::test]
async fn with_a_token_pages_need_a_session_and_only_the_right_token_opens_one() {
    let (_dir, store, _) = swarm(2, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "the-right-token-0123\n").unwrap();
    let access = Access::decide("0.0.0.0:1".parse().unwrap(), None, Some(&file)).unwrap();
    let app = router(Dashboard::new(store.clone(), access));
    let get = |path: &str, cookie: Option<&str>| {
        let mut req = Request::get(path);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        req.body(Body::empty()).unwrap()
    };
    let login = |token: &str| {
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}&next=%2Fservices")))
            .unwrap()
    };

    let res = app.clone().oneshot(get("/services", None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/login?next=%2Fservices");
    for path in ["/fragments/services", "/live"] {
        let res = app.clone().oneshot(get(path, None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let res = app.clone().oneshot(get("/login", None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body_text(res).await.contains("type=\"password\""));

    let res = app
        .clone()
        .oneshot(login("the-wrong-token-0123"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    let res = app
        .clone()
        .oneshot(get("/services", Some("shoal_dashboard_session=00ff")))
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "a made-up cookie opens nothing"
    );

    let res = app
        .clone()
        .oneshot(login("the-right-token-0123"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/services");
    let set = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();

    let res = app
        .clone()
        .oneshot(get("/services", Some(&cookie)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body_text(res).await.contains("svc-00"));
    let res = app
        .clone()
        .oneshot(get("/fragments/nodes", Some(&cookie)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let logout = Request::post("/logout")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(logout).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = app
        .clone()
        .oneshot(get("/services", Some(&cookie)))
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the session ended with the logout"
    );
    // A redirect after login never leaves the site.
    let res = app
        .clone()
        .oneshot(
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(
                    "token=the-right-token-0123&next=%2F%2Fevil.example",
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.headers()[header::LOCATION], "/");
    store.shutdown().await;
}

#[tokio::test]
async fn the_event_stream_names_what_a_commit_made_stale_and_resumes_after_its_id() {
    let (_dir, store, populated) = swarm(2, 10).await;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let server = tokio::spawn(super::serve(
        Dashboard::new(store.clone(), open()),
        tcp,
        std::future::pending(),
    ));
    let before = store.current_revision();

    let s = &populated.services[5];
    let mut t = store
        .view()
        .tasks_of_service(&s.meta.id)
        .next()
        .unwrap()
        .to_owned_value();
    t.status = TaskStatus::new(TaskState::Shutdown, Timestamp::now(), "stopped");
    let committed = store
        .submit(Txn::new().update(Object::Task(t)))
        .await
        .unwrap();

    // Connect after the commit, resuming from the revision before it: the commit is replayed.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("/live")
        .header("Host", "localhost")
        .header("Last-Event-ID", before.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.into_body();
    let mut text = String::new();
    let message = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let frame = body.frame().await.expect("stream open").expect("frame");
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
            if let Some(end) = text.find("\n\n") {
                return text[..end].to_string();
            }
        }
    })
    .await
    .expect("an event within 20 s");
    assert!(message.contains("event: change"), "{message}");
    assert!(
        message.contains(&format!("id: {}", committed.revision)),
        "{message}"
    );
    assert!(
        message.contains(&format!("service:{}", s.meta.id)),
        "{message}"
    );
    assert!(
        message.contains("\"services\"") && message.contains("\"nodes\""),
        "{message}"
    );
    server.abort();
    store.shutdown().await;
}

#[test]
fn a_token_from_the_login_form_is_compared_whole() {
    let token = Token::new("0123456789abcdefXYZ").unwrap();
    assert!(token.matches("0123456789abcdefXYZ"));
    assert!(!token.matches("0123456789abcdefXY"));
    assert!(!token.matches("0123456789abcdefXYZ0"));
}

#[tokio::test]
async fn a_stack_page_lists_its_revisions_and_the_diff_between_two() {
    let (_dir, store, _) = swarm(2, 2).await;
    let apply = |image: &str| {
        let body = crate::stack::source::ApplyBody {
            files: vec![crate::stack::source::FileBody {
                name: "compose.yaml".into(),
                content: format!(
                    "services:\n  web:\n    image: {image}\n    deploy:\n      replicas: 2\n"
                ),
            }],
            applied_by: "tester@host".into(),
            ..Default::default()
        };
        let desired = crate::stack::source::desired("shop", &body).expect("desired");
        let store = store.clone();
        async move {
            crate::stack::apply::apply(&store, &desired, &Default::default())
                .await
                .expect("apply")
        }
    };
    apply("nginx:1.26").await;
    apply("nginx:1.27").await;
    let app = router(Dashboard::new(store.clone(), open()));
    let res = app
        .clone()
        .oneshot(
            Request::get("/stacks/shop?from=1&to=2")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = body_text(res).await;
    assert!(page.contains("shop_web"), "the stack's service: {page}");
    assert!(page.contains("tester@host"), "who applied: {page}");
    assert!(
        page.contains("TaskTemplate.ContainerSpec.Image"),
        "the changed field: {page}"
    );
    assert!(
        page.contains("nginx:1.26") && page.contains("nginx:1.27"),
        "{page}"
    );
    let res = app
        .clone()
        .oneshot(Request::get("/stacks").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let page = body_text(res).await;
    assert!(
        page.contains("/stacks/shop") && page.contains("#2"),
        "{page}"
    );
    let res = app
        .oneshot(Request::get("/stacks/nope").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    store.shutdown().await;
}

#[tokio::test]
async fn a_rolling_update_shows_its_state_and_how_many_tasks_run_the_new_spec() {
    let (_dir, store, populated) = swarm(2, 20).await;
    let view = store.view();
    let mut s = view
        .get::<shoal_store::model::Service>(&populated.services[1].meta.id)
        .unwrap()
        .to_owned_value();
    s.spec.task_template.container_spec =
        Some(shoal_store::model::ContainerSpec::with_image("nginx:1.28"));
    s.update_status = Some(shoal_store::model::UpdateStatus {
        state: Some(shoal_store::model::UpdateState::Updating),
        message: "update in progress".into(),
        ..Default::default()
    });
    let committed = store
        .submit(Txn::new().update(Object::Service(s.clone())))
        .await
        .unwrap();
    // One of the two tasks replaced by a task of the new spec.
    let mut s = store
        .view()
        .get::<shoal_store::model::Service>(&s.meta.id)
        .unwrap()
        .to_owned_value();
    s.spec_version = shoal_store::model::Version::at(committed.revision);
    store
        .submit(Txn::new().update(Object::Service(s.clone())))
        .await
        .unwrap();
    let old = store
        .view()
        .tasks_of_service(&s.meta.id)
        .next()
        .unwrap()
        .to_owned_value();
    let mut stopped = old.clone();
    stopped.desired_state = TaskState::Shutdown;
    stopped.status = TaskStatus::new(TaskState::Shutdown, Timestamp::now(), "shutdown");
    let mut new = old.clone();
    new.meta = shoal_store::model::Meta::with_id(shoal_store::model::new_id());
    new.spec_version = s.spec_version;
    new.spec = s.spec.task_template.clone();
    store
        .submit(
            Txn::new()
                .update(Object::Task(stopped))
                .create(Object::Task(new)),
        )
        .await
        .unwrap();
    let view = store.view();
    let services = pages::services_fragment(&view).into_string();
    assert!(services.contains(">updating<"), "{services}");
    assert!(services.contains("1 of 2 updated"), "{services}");
    let svc = view.get::<shoal_store::model::Service>(&s.meta.id).unwrap();
    let detail = pages::service_fragment_of(&view, &svc).into_string();
    assert!(detail.contains("update in progress"), "{detail}");
    assert!(
        detail.contains("class=\"history\""),
        "the replaced task is history: {detail}"
    );
    store.shutdown().await;
}

#[tokio::test]
async fn a_gitops_source_shows_its_commits_stacks_drift_and_feed_lines() {
    use shoal_store::model::{
        Condition, DriftedField, GitSource, GitSourceSpec, GitStackStatus, Meta,
    };
    let (_dir, store, _) = swarm(1, 2).await;
    let source = GitSource {
        meta: Meta::with_id("gs1".to_string()),
        spec: GitSourceSpec {
            name: "prod".into(),
            repo: "file:///srv/git/prod".into(),
            git_ref: "main".into(),
            path: "stacks".into(),
            self_heal: true,
            ..Default::default()
        },
        status: Default::default(),
    };
    let created = store
        .submit(Txn::new().create(Object::GitSource(source)))
        .await
        .unwrap();
    let mut g = match created.objects[0].as_ref() {
        Object::GitSource(g) => g.clone(),
        o => panic!("{o:?}"),
    };
    g.status.last_fetched_commit = "c0ffee".repeat(7);
    g.status.stacks.insert(
        "web".into(),
        GitStackStatus {
            path: "stacks/web".into(),
            result: "Failed".into(),
            message: "services.app: image is required".into(),
            commit: "c0ffee".repeat(7),
            drift: vec![DriftedField {
                object: "service web_app".into(),
                path: "Mode.Replicated.Replicas".into(),
                live: Some(5.into()),
                git: Some(2.into()),
            }],
            ..Default::default()
        },
    );
    g.status.conditions = vec![Condition {
        kind: "Degraded".into(),
        status: true,
        reason: "CommitFailed".into(),
        message: "stack web at commit c0ffeec0ffee: services.app: image is required".into(),
        last_transition: Timestamp::now(),
    }];
    let updated = store
        .submit(Txn::new().update(Object::GitSource(g)))
        .await
        .unwrap();

    let page = pages::gitops_fragment(&store.view()).into_string();
    for want in [
        "prod",
        "file:///srv/git/prod",
        "self-heal",
        "c0ffeec0ffee",
        "image is required",
        "Mode.Replicated.Replicas",
        "/stacks/web",
    ] {
        assert!(page.contains(want), "{want} missing: {page}");
    }

    // The feed says what the update did, in the words `docker events` uses.
    let mut watch = store
        .watch(shoal_store::WatchRequest::new(
            shoal_store::WatchStart::After(updated.revision - 1),
        ))
        .await
        .unwrap();
    let commit = loop {
        match watch.next().await.unwrap().unwrap() {
            shoal_store::WatchMessage::Commit(c) if c.revision == updated.revision => break c,
            _ => {}
        }
    };
    let rows = super::events::summarise(&commit);
    let details: Vec<&str> = rows.iter().map(|r| r.detail.as_str()).collect();
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("fetched c0ffeec0ffee")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("stack web failed") && d.contains("image is required")),
        "{details:?}"
    );
    assert!(details.iter().any(|d| d.contains("drifted")), "{details:?}");
    let mut topics = std::collections::BTreeSet::new();
    super::events::topics(&commit, &mut topics);
    assert!(topics.contains("gitops"), "{topics:?}");
    store.shutdown().await;
}
