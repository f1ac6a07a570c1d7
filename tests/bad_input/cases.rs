//! The requests the HTTP tests send: an HTTP request to one of the routes, before this run's
//! object ids are filled in ([`HttpCase`], [`build`]), and a gRPC call to the native watch on
//! the API socket ([`GrpcCase`]).

use proptest::prelude::*;
use shoal_proto::watch as pb;
use shoal_store::model::Kind;
use shoal_store::View;

use crate::gen::{self, BodyGen, ObjRef, QueryValue};
use crate::harness::{objects_of, Call};
use crate::routes::{apply_body, base_body, Base};

/// One HTTP request before this run's object ids are filled in.
#[derive(Clone, Debug)]
pub struct HttpCase {
    route: usize,
    method: String,
    version: String,
    refs: Vec<ObjRef>,
    tail: Option<String>,
    query: Vec<(String, QueryValue)>,
    content_type: Option<String>,
    registry_auth: Option<String>,
    body: BodyGen,
    suffix: u16,
    /// Updates: send the object's current version first, so most get past the version check.
    with_version: bool,
}

/// A request for one of `routes`.
pub fn http_case(
    routes: Vec<(&'static str, String, Base)>,
    versioned: bool,
) -> BoxedStrategy<HttpCase> {
    let n = routes.len();
    (0..n)
        .prop_flat_map(move |route| {
            let (method, _, base) = routes[route].clone();
            (
                Just(route),
                gen::method(method),
                if versioned {
                    gen::version_prefix().boxed()
                } else {
                    prop_oneof![9 => Just(String::new()), 1 => gen::version_prefix()].boxed()
                },
                proptest::collection::vec(gen::obj_ref(), 2),
                gen::tail(),
                gen::query(),
                gen::content_type(),
                gen::registry_auth(),
                gen::body(base != Base::None),
                any::<u16>(),
                prop_oneof![4 => Just(true), 1 => Just(false)],
            )
        })
        .prop_map(
            |(
                route,
                method,
                version,
                refs,
                tail,
                query,
                content_type,
                registry_auth,
                body,
                suffix,
                with_version,
            )| {
                HttpCase {
                    route,
                    method,
                    version,
                    refs,
                    tail,
                    query,
                    content_type,
                    registry_auth,
                    body,
                    suffix,
                    with_version,
                }
            },
        )
        .boxed()
}

/// The object a path placeholder names.
pub fn placeholder_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "service" => Kind::Service,
        "node" => Kind::Node,
        "task" => Kind::Task,
        "network" => Kind::Network,
        "secret" => Kind::Secret,
        "config" => Kind::Config,
        "name" => Kind::Stack,
        _ => return None,
    })
}

/// Fills `case` in against the store as it is now.
pub fn build(
    case: &HttpCase,
    routes: &[(&'static str, String, Base)],
    view: &View,
    native: bool,
) -> Call {
    let (_, template, base) = &routes[case.route];
    let mut path = case.version.clone();
    // The object the path names (for its name in update bodies and its version in the query).
    let mut target: Option<(String, u64)> = None;
    let mut refs = case.refs.iter();
    for segment in template.split('/').skip(1) {
        path.push('/');
        let Some(placeholder) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            path.push_str(segment);
            continue;
        };
        let r = refs.next().expect("two references per case");
        let objects = placeholder_kind(placeholder)
            .map(|k| objects_of(view, k))
            .unwrap_or_default();
        let existing = match r {
            ObjRef::Id(i) | ObjRef::Name(i) | ObjRef::Prefix(i, _) if !objects.is_empty() => {
                Some(&objects[i % objects.len()])
            }
            _ => None,
        };
        let rendered = match (r, existing) {
            // Stack revisions are named by their number: a few that exist, and others.
            (ObjRef::Id(i) | ObjRef::Name(i) | ObjRef::Prefix(i, _), _)
                if placeholder == "number" =>
            {
                (i % 4).to_string()
            }
            (ObjRef::Id(_), Some((id, name, version))) => {
                target = Some((name.clone(), *version));
                gen::encode(id)
            }
            (ObjRef::Name(_), Some((_, name, version))) => {
                target = Some((name.clone(), *version));
                gen::encode(name)
            }
            (ObjRef::Prefix(_, n), Some((id, name, version))) => {
                target = Some((name.clone(), *version));
                gen::encode(&id.chars().take(*n).collect::<String>())
            }
            (ObjRef::Raw(raw), _) => raw.to_string(),
            (ObjRef::Junk(s), _) => gen::encode(s),
            _ => "nothing-here".to_string(),
        };
        path.push_str(&rendered);
    }
    if let Some(tail) = &case.tail {
        path.push_str(tail);
    }
    let swarm_version = objects_of(view, Kind::Cluster)
        .first()
        .map(|c| c.2)
        .unwrap_or_default();
    let version = match template.as_str() {
        "/swarm/update" => swarm_version,
        _ => target.as_ref().map(|t| t.1).unwrap_or(swarm_version),
    };
    let current = (template.ends_with("/update") && case.with_version)
        .then(|| ("version".to_string(), QueryValue::CurrentVersion));
    let query: Vec<String> = current
        .iter()
        .chain(&case.query)
        .map(|(k, v)| {
            let v = match v {
                QueryValue::CurrentVersion => version.to_string(),
                QueryValue::Bool(b) => gen::encode(b),
                QueryValue::Filters(f) => gen::encode(&f.to_string()),
                QueryValue::Text(t) => gen::encode(t),
                QueryValue::Raw(r) => return format!("{}={r}", gen::encode(k)),
            };
            format!("{}={}", gen::encode(k), v)
        })
        .collect();
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let mut headers = Vec::new();
    if let Some(ct) = &case.content_type {
        headers.push(("content-type".to_string(), ct.clone()));
    }
    if let Some(auth) = &case.registry_auth {
        headers.push(("x-registry-auth".to_string(), auth.clone()));
    }
    let target_name = target.map(|t| t.0);
    let base_body = base_body(*base, case.suffix, target_name.as_deref());
    let body = match (*base, &case.body) {
        // Compose files travel inside the apply body: half of the mutations are the file's.
        (Base::Apply, b @ BodyGen::Plausible(_)) if case.suffix.is_multiple_of(2) => {
            apply_body(b, &base_body, case.suffix)
        }
        (_, b) => b.render(&base_body),
    };
    let may_wait = ["/events", "/logs", "/watch", "/wait"]
        .iter()
        .any(|w| template.ends_with(w));
    Call {
        method: case.method.clone(),
        uri,
        headers,
        body,
        may_wait,
        // A version prefix is the Docker API's: its version layer answers in Docker's form.
        native: native && case.version.is_empty(),
        grpc: false,
        label: format!("{} {template}", routes[case.route].0),
    }
}

/// A gRPC call to the native watch service on the API socket: its method, content type and
/// length-prefixed frames (valid messages with random fields, or random bytes, with honest or
/// lying lengths and compression flags).
#[derive(Clone, Debug)]
pub struct GrpcCase {
    method: String,
    content_type: String,
    frames: Vec<(u8, Option<u32>, Payload)>,
}

#[derive(Clone, Debug)]
pub enum Payload {
    Bytes(Vec<u8>),
    Watch(pb::WatchRequest),
    WaitFor(pb::WaitForRequest),
}

pub fn watch_request() -> impl Strategy<Value = pb::WatchRequest> {
    let strings = || proptest::collection::vec(gen::nasty_string(), 0..3);
    let filter = (
        strings(),
        strings(),
        strings(),
        gen::nasty_string(),
        gen::nasty_string(),
        gen::nasty_string(),
    )
        .prop_map(
            |(kinds, actions, labels, stack, name_prefix, node)| pb::Filter {
                kinds,
                actions,
                stack,
                labels,
                name_prefix,
                node,
            },
        );
    let start = prop_oneof![
        Just(None),
        Just(Some(pb::watch_request::Start::Now(pb::StartNow {}))),
        any::<u64>().prop_map(|r| Some(pb::watch_request::Start::AfterRevision(r))),
        (0u64..40).prop_map(|r| Some(pb::watch_request::Start::AfterRevision(r))),
    ];
    (
        proptest::option::of(filter),
        start,
        prop_oneof![Just(0u64), any::<u64>(), 0u64..40],
        prop_oneof![Just(0u32), any::<u32>(), 1u32..10],
        prop_oneof![Just(0u32), any::<u32>(), 1u32..4],
    )
        .prop_map(
            |(filter, start, min_revision, progress_interval_ms, buffer)| pb::WatchRequest {
                filter,
                start,
                min_revision,
                progress_interval_ms,
                buffer,
            },
        )
}

pub fn grpc_case() -> impl Strategy<Value = GrpcCase> {
    let payload = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Payload::Bytes),
        watch_request().prop_map(Payload::Watch),
        (any::<u64>(), prop_oneof![any::<u32>(), 0u32..50]).prop_map(|(revision, timeout_ms)| {
            Payload::WaitFor(pb::WaitForRequest {
                revision,
                timeout_ms,
            })
        }),
    ];
    let frame = (
        prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => any::<u8>()],
        prop_oneof![8 => Just(None), 1 => any::<u32>().prop_map(Some), 1 => (0u32..8).prop_map(Some)],
        payload,
    );
    (
        prop_oneof![
            3 => Just("Watch".to_string()),
            2 => Just("CurrentRevision".to_string()),
            3 => Just("WaitFor".to_string()),
            1 => "[A-Za-z]{0,8}",
        ],
        prop_oneof![
            8 => Just("application/grpc".to_string()),
            1 => Just("application/grpc+json".to_string()),
            1 => Just("application/json".to_string()),
        ],
        proptest::collection::vec(frame, 0..3),
    )
        .prop_map(|(method, content_type, frames)| GrpcCase {
            method,
            content_type,
            frames,
        })
}

impl GrpcCase {
    /// The request.
    pub fn call(&self) -> Call {
        use prost::Message;
        let mut body = Vec::new();
        for (flag, len, payload) in &self.frames {
            let bytes = match payload {
                Payload::Bytes(b) => b.clone(),
                Payload::Watch(w) => w.encode_to_vec(),
                Payload::WaitFor(w) => w.encode_to_vec(),
            };
            body.push(*flag);
            body.extend_from_slice(&len.unwrap_or(bytes.len() as u32).to_be_bytes());
            body.extend_from_slice(&bytes);
        }
        Call {
            method: "POST".into(),
            uri: format!("/shoal.watch.v1.Watch/{}", self.method),
            headers: vec![
                ("content-type".into(), self.content_type.clone()),
                ("te".into(), "trailers".into()),
            ],
            body,
            // A watch streams; WaitFor waits.
            may_wait: true,
            native: false,
            grpc: true,
            label: format!("gRPC {}", self.method),
        }
    }
}

/// A request to the native API: HTTP or gRPC.
#[derive(Clone, Debug)]
pub enum NativeCase {
    Http(HttpCase),
    Grpc(GrpcCase),
}
