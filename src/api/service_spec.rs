//! What dockerd and swarmkit do to a `ServiceSpec` before storing it, in their order and with
//! their texts: API-version stripping (`adjustForAPIVersion`), the conversion checks of moby's
//! `convert.ServiceSpecToGRPC` (plain 400s), mode defaulting, swarmkit's `validateServiceSpec`
//! (`rpc error: code = InvalidArgument ...`; constraint syntax is a 500 `code = Unknown`), and
//! the normalisation the round trip through swarmkit's protobufs implies (`Isolation:"default"`,
//! `Runtime:"container"`, enum zero values), so that what the CLI reads back and sends again on
//! `docker service update` compares equal to what is stored.

use axum::http::StatusCode;
use shoal_store::model::{
    HealthConfig, MountType, PortProtocol, PublishMode, ReplicatedJob, ResolutionMode,
    RestartCondition, RuntimeType, ServiceMode, ServiceModeKind, ServiceSpec, UpdateConfig,
    UpdateFailureAction, UpdateOrder,
};

use super::error::{ApiError, ApiResult};
use super::version::ApiVersion;

/// Largest encoded service spec accepted (swarmkit keeps a Raft entry under 1.5 MiB; a service
/// holds its spec and previous spec).
pub const MAX_SPEC_BYTES: usize = 512 * 1024;

/// Clears what clients older than a field's API version cannot have meant to send.
pub fn adjust_for_api_version(spec: &mut ServiceSpec, v: ApiVersion) {
    let t = &mut spec.task_template;
    if !v.at_least(1, 40) {
        if let Some(c) = t.container_spec.as_mut() {
            c.sysctls.clear();
            if let Some(cs) = c
                .privileges
                .as_mut()
                .and_then(|p| p.credential_spec.as_mut())
            {
                cs.config.clear();
            }
            for cfg in &mut c.configs {
                cfg.runtime = None;
            }
        }
        if let Some(p) = t.placement.as_mut() {
            p.max_replicas = 0;
        }
    }
    if !v.at_least(1, 41) {
        if let Some(c) = t.container_spec.as_mut() {
            c.capability_add.clear();
            c.capability_drop.clear();
            c.ulimits.clear();
        }
        if let Some(l) = t.resources.as_mut().and_then(|r| r.limits.as_mut()) {
            l.pids = 0;
        }
        spec.mode.replicated_job = None;
        spec.mode.global_job = None;
    }
    if !v.at_least(1, 44) {
        if let Some(p) = t
            .container_spec
            .as_mut()
            .and_then(|c| c.privileges.as_mut())
        {
            p.seccomp = None;
            p.app_armor = None;
            p.no_new_privileges = false;
        }
    }
    if !v.at_least(1, 46) {
        if let Some(c) = t.container_spec.as_mut() {
            for m in &mut c.mounts {
                if let Some(o) = m.tmpfs_options.as_mut() {
                    o.options.clear();
                }
            }
        }
    }
}

/// moby's conversion checks (plain texts, 400), then mode defaulting: no mode or
/// `{"Replicated":{}}` is one replica; a replicated job runs one at a time and completes as many
/// times as it runs at once unless told otherwise.
pub fn convert(spec: &mut ServiceSpec) -> ApiResult<()> {
    let bad = |m: String| Err(ApiError::bad_request(m));
    if spec.mode.set_count() > 1 {
        return bad("must specify only one service mode".into());
    }
    let t = &spec.task_template;
    match &t.runtime {
        None | Some(RuntimeType::Container) => {
            if t.container_spec.is_none() {
                return bad("mismatched Runtime and *Spec fields".into());
            }
        }
        Some(RuntimeType::Plugin) => {
            if t.plugin_spec.is_none() {
                return bad("mismatched Runtime and *Spec fields".into());
            }
            // dockerd only runs plugin services with experimental features; shoal has none.
            return Err(ApiError::internal(
                "runtime type \"plugin\" only supported in experimental",
            ));
        }
        Some(_) => return bad("unsupported runtime".into()),
    }
    if let Some(c) = &t.container_spec {
        for m in &c.mounts {
            if let Some(MountType::Other(x)) = &m.kind {
                return bad(format!("invalid MountType: {x:?}"));
            }
        }
    }
    if let Some(RestartCondition::Other(x)) =
        t.restart_policy.as_ref().and_then(|r| r.condition.as_ref())
    {
        return bad(format!("invalid RestartCondition: {x:?}"));
    }
    for cfg in [&spec.update_config, &spec.rollback_config]
        .into_iter()
        .flatten()
    {
        if let Some(UpdateFailureAction::Other(x)) = &cfg.failure_action {
            return bad(format!("unrecognized update failure action {x}"));
        }
        if let Some(UpdateOrder::Other(x)) = &cfg.order {
            return bad(format!("unrecognized update order {x}"));
        }
    }
    if let Some(ResolutionMode::Other(x)) =
        spec.endpoint_spec.as_ref().and_then(|e| e.mode.as_ref())
    {
        return bad(format!("invalid resolution mode: {x:?}"));
    }
    default_mode(&mut spec.mode);
    Ok(())
}

fn default_mode(mode: &mut ServiceMode) {
    match mode.kind() {
        ServiceModeKind::Replicated => {
            let replicas = mode.replicas().unwrap_or(1);
            *mode = ServiceMode::replicated(replicas);
        }
        ServiceModeKind::ReplicatedJob => {
            let job = mode
                .replicated_job
                .get_or_insert_with(ReplicatedJob::default);
            let max = job.max_concurrent_or_default();
            job.max_concurrent = Some(max);
            job.total_completions = Some(job.total_completions.unwrap_or(max));
        }
        ServiceModeKind::Global | ServiceModeKind::GlobalJob => {}
    }
}

fn invalid(desc: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_argument(desc)
}

/// swarmkit's `validateServiceSpec`.
pub fn validate(spec: &ServiceSpec) -> ApiResult<()> {
    validate_name(spec.name())?;
    let t = &spec.task_template;
    if let Some(r) = &t.resources {
        if let Some(l) = &r.limits {
            validate_resources(l.nano_cpus, l.memory_bytes)?;
        }
        if let Some(r) = &r.reservations {
            validate_resources(r.nano_cpus, r.memory_bytes)?;
        }
    }
    if let Some(rp) = &t.restart_policy {
        if rp.delay.is_some_and(|d| d < 0) {
            return Err(invalid("TaskSpec: restart-delay cannot be negative"));
        }
        if rp.window.is_some_and(|w| w < 0) {
            return Err(invalid("TaskSpec: restart-window cannot be negative"));
        }
    }
    for c in t.constraints() {
        validate_constraint(c)
            .map_err(|e| ApiError::rpc(StatusCode::INTERNAL_SERVER_ERROR, "Unknown", e))?;
    }
    if let Some(c) = &t.container_spec {
        validate_references(c)?;
        if c.image.is_empty() {
            return Err(invalid("ContainerSpec: image reference must be provided"));
        }
        if !valid_image_reference(&c.image) {
            return Err(invalid(format!(
                "ContainerSpec: {:?} is not a valid repository/tag",
                c.image
            )));
        }
        let mut targets = std::collections::HashSet::new();
        for m in &c.mounts {
            if !targets.insert(m.target.as_str()) {
                return Err(invalid(format!(
                    "ContainerSpec: duplicate mount point: {}",
                    m.target
                )));
            }
        }
        if let Some(h) = &c.healthcheck {
            validate_healthcheck(h)?;
        }
    }
    for cfg in [&spec.update_config, &spec.rollback_config]
        .into_iter()
        .flatten()
    {
        validate_update(cfg)?;
    }
    if let Some(ep) = &spec.endpoint_spec {
        let dnsrr = ep.mode == Some(ResolutionMode::Dnsrr);
        let mut published = std::collections::HashSet::new();
        for p in &ep.ports {
            if dnsrr && p.publish_mode_or_default() == PublishMode::Ingress {
                return Err(invalid(
                    "EndpointSpec: port published with ingress mode can't be used with dnsrr mode",
                ));
            }
            if p.published_port != 0
                && !published.insert((p.published_port, protocol_of(p.protocol.as_ref())))
            {
                return Err(invalid("EndpointSpec: duplicate published ports provided"));
            }
        }
    }
    if spec.is_job() && spec.update_config.is_some() {
        return Err(invalid("Jobs may not have an update config"));
    }
    Ok(())
}

/// swarmkit's `validateAnnotations` for services: a DNS name component of at most 63 characters.
pub fn validate_name(name: &str) -> ApiResult<()> {
    if name.is_empty() {
        return Err(invalid("meta: name must be provided"));
    }
    let bytes = name.as_bytes();
    let edges_ok =
        bytes[0].is_ascii_alphanumeric() && bytes[bytes.len() - 1].is_ascii_alphanumeric();
    let chars_ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    if !(edges_ok && chars_ok) {
        return Err(invalid("name must be valid as a DNS name component"));
    }
    if name.len() > 63 {
        return Err(invalid("name must be 63 characters or fewer"));
    }
    Ok(())
}

/// Go's `%g` for the small positive values of CPU errors.
fn go_g(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-4 {
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    } else {
        format!("{v}")
    }
}

fn validate_resources(nano_cpus: i64, memory: i64) -> ApiResult<()> {
    if nano_cpus != 0 && nano_cpus < 1_000_000 {
        return Err(invalid(format!(
            "invalid cpu value {}: Must be at least 0.001",
            go_g(nano_cpus as f64 / 1e9)
        )));
    }
    if memory != 0 && memory < 4 * 1024 * 1024 {
        return Err(invalid(format!(
            "invalid memory value {memory}: Must be at least 4MiB"
        )));
    }
    Ok(())
}

fn validate_update(u: &UpdateConfig) -> ApiResult<()> {
    if u.delay < 0 {
        return Err(invalid("TaskSpec: update-delay cannot be negative"));
    }
    if u.monitor < 0 {
        return Err(invalid("TaskSpec: update-monitor cannot be negative"));
    }
    if !(0.0..=1.0).contains(&u.max_failure_ratio) {
        return Err(invalid(
            "TaskSpec: update-maxfailureratio cannot be less than 0 or bigger than 1",
        ));
    }
    Ok(())
}

fn validate_healthcheck(h: &HealthConfig) -> ApiResult<()> {
    const MIN: i64 = 1_000_000;
    for (what, v) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
    ] {
        if v != 0 && v < MIN {
            return Err(invalid(format!(
                "ContainerSpec: {what} in HealthConfig cannot be less than 1ms"
            )));
        }
    }
    if h.retries < 0 {
        return Err(invalid(
            "ContainerSpec: Retries in HealthConfig cannot be negative",
        ));
    }
    Ok(())
}

/// swarmkit's `validateSecretRefsSpec` / `validateConfigRefsSpec` (after names were resolved).
fn validate_references(c: &shoal_store::model::ContainerSpec) -> ApiResult<()> {
    let mut targets: std::collections::HashMap<&str, &str> = Default::default();
    for s in &c.secrets {
        if s.secret_id.is_empty() || s.secret_name.is_empty() {
            return Err(invalid("malformed secret reference"));
        }
        let Some(file) = &s.file else {
            return Err(invalid("malformed secret reference, no target provided"));
        };
        if file.name.is_empty() {
            return Err(invalid(
                "malformed file secret reference, invalid target file name provided",
            ));
        }
        if let Some(prev) = targets.insert(&file.name, &s.secret_name) {
            return Err(invalid(format!(
                "secret references '{prev}' and '{}' have a conflicting target: '{}'",
                s.secret_name, file.name
            )));
        }
    }
    let mut targets: std::collections::HashMap<&str, &str> = Default::default();
    for r in &c.configs {
        if r.config_id.is_empty() || r.config_name.is_empty() {
            return Err(invalid("malformed config reference"));
        }
        match (&r.file, &r.runtime) {
            (None, None) => return Err(invalid("malformed config reference, no target provided")),
            (Some(file), _) => {
                if file.name.is_empty() {
                    return Err(invalid(
                        "malformed file config reference, invalid target file name provided",
                    ));
                }
                if let Some(prev) = targets.insert(&file.name, &r.config_name) {
                    return Err(invalid(format!(
                        "config references '{prev}' and '{}' have a conflicting target: '{}'",
                        r.config_name, file.name
                    )));
                }
            }
            (None, Some(_)) => {}
        }
    }
    Ok(())
}

/// swarmkit's `constraint.Parse` for one expression: `key==value` or `key!=value`, with its
/// key and value character rules.
pub fn validate_constraint(expr: &str) -> Result<(), String> {
    let (key, value) = if let Some(p) = expr.split_once("==") {
        p
    } else if let Some(p) = expr.split_once("!=") {
        p
    } else {
        return Err("constraint expected one operator from ==, !=".into());
    };
    let key = key.trim();
    let mut kc = key.chars();
    let key_ok = matches!(kc.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && key.len() >= 2
        && kc.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !key_ok {
        return Err(format!("key '{key}' is invalid"));
    }
    let value = value.trim();
    let value_ok = !value.is_empty()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || c.is_whitespace() || ":-_.*()?+[]\\^$|/".contains(c)
        });
    if !value_ok {
        return Err(format!("value '{value}' is invalid"));
    }
    Ok(())
}

/// Whether `s` parses as a Docker image reference (`[domain/]path[:tag][@digest]`, lowercase
/// path components, the distribution reference grammar).
pub fn valid_image_reference(s: &str) -> bool {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let Some((algo, hex)) = d.split_once(':') else {
            return false;
        };
        let algo_ok = !algo.is_empty()
            && algo.starts_with(|c: char| c.is_ascii_alphabetic())
            && algo
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-_".contains(c));
        if !algo_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return false;
        }
    }
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if let Some(tag) = tag {
        let mut tc = tag.chars();
        let first_ok = matches!(tc.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_');
        if !first_ok
            || tag.len() > 128
            || !tc.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return false;
        }
    }
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    // A 64-hex-digit name would be mistaken for an image id.
    if name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()) {
        return false;
    }
    let mut parts = name.split('/').peekable();
    let first = parts.next().unwrap_or("");
    let has_domain = name.contains('/')
        && (first.contains(['.', ':']) || first == "localhost" || first != first.to_lowercase());
    let path: Vec<&str> = if has_domain {
        if !valid_domain(first) {
            return false;
        }
        parts.collect()
    } else {
        name.split('/').collect()
    };
    !path.is_empty() && path.iter().all(|c| valid_path_component(c))
}

fn valid_domain(d: &str) -> bool {
    // `[v6]` or `[v6]:port`, else `host` or `host:port`.
    let (host, port) = match d.strip_prefix('[') {
        Some(rest) => {
            let Some((v6, after)) = rest.split_once(']') else {
                return false;
            };
            if v6.parse::<std::net::Ipv6Addr>().is_err() {
                return false;
            }
            if !after.is_empty() && !after.starts_with(':') {
                return false;
            }
            (None, after.strip_prefix(':'))
        }
        None => match d.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        },
    };
    if port.is_some_and(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit())) {
        return false;
    }
    host.is_none_or(|h| {
        !h.is_empty()
            && h.split('.').all(|c| {
                !c.is_empty()
                    && c.chars().all(|x| x.is_ascii_alphanumeric() || x == '-')
                    && !c.starts_with('-')
                    && !c.ends_with('-')
            })
    })
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn valid_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty() || !is_lower_alnum(bytes[0]) || !is_lower_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_lower_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_lower_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn protocol_of(p: Option<&PortProtocol>) -> PortProtocol {
    match p {
        Some(PortProtocol::Udp) => PortProtocol::Udp,
        Some(PortProtocol::Sctp) => PortProtocol::Sctp,
        // Unknown protocols are TCP to swarmkit (the enum's zero value).
        _ => PortProtocol::Tcp,
    }
}

/// What swarmkit's protobuf round trip makes of a spec: enum zero values spelled out
/// (`Isolation:"default"`, `Runtime:"container"`, restart condition `any`, update failure action
/// `pause` and order `stop-first`, endpoint mode `vip`, port protocol `tcp` and publish mode
/// `ingress`), and a restart policy's `MaxAttempts` always present.
pub fn normalize(spec: &mut ServiceSpec) {
    let t = &mut spec.task_template;
    if let Some(c) = t.container_spec.as_mut() {
        let isolation = c.isolation.to_ascii_lowercase();
        c.isolation = match isolation.as_str() {
            "process" | "hyperv" => isolation,
            _ => "default".into(),
        };
        t.runtime = Some(RuntimeType::Container);
    }
    if let Some(rp) = t.restart_policy.as_mut() {
        rp.condition.get_or_insert(RestartCondition::Any);
        // swarmkit keeps MaxAttempts as a plain number; moby's conversion back always points
        // to it, so a restart policy always shows `"MaxAttempts":0` (0: no limit).
        rp.max_attempts.get_or_insert(0);
    }
    for cfg in [&mut spec.update_config, &mut spec.rollback_config]
        .into_iter()
        .flatten()
    {
        cfg.failure_action.get_or_insert(UpdateFailureAction::Pause);
        cfg.order.get_or_insert(UpdateOrder::StopFirst);
    }
    if let Some(ep) = spec.endpoint_spec.as_mut() {
        ep.mode.get_or_insert(ResolutionMode::Vip);
        for p in &mut ep.ports {
            p.protocol = Some(protocol_of(p.protocol.as_ref()));
            p.publish_mode = Some(match p.publish_mode {
                Some(PublishMode::Host) => PublishMode::Host,
                _ => PublishMode::Ingress,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_follow_the_distribution_grammar() {
        for ok in [
            "busybox",
            "busybox:latest",
            "local/busybox:1",
            "shoal-test/busybox:1",
            "registry.example.com:5000/team/app:v1.2",
            "localhost/app",
            "alpine:3.10",
            "a__b/c-d--e.f_g:tag",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "busybox:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(valid_image_reference(ok), "{ok} should be valid");
        }
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "bad image",
            "-x",
            "x-",
            "busybox:-tag",
            "a///b",
            "busybox@sha256:xyz",
            "a..b",
        ] {
            assert!(!valid_image_reference(bad), "{bad} should be invalid");
        }
    }

    #[test]
    fn constraints_need_an_operator_and_valid_parts() {
        assert!(validate_constraint("node.role==manager").is_ok());
        assert!(validate_constraint("node.labels.zone != a").is_ok());
        assert_eq!(
            validate_constraint("node.role=manager").unwrap_err(),
            "constraint expected one operator from ==, !="
        );
        assert_eq!(
            validate_constraint("n==x").unwrap_err().to_string(),
            "key 'n' is invalid"
        );
        assert_eq!(
            validate_constraint("node.id==a<b").unwrap_err(),
            "value 'a<b' is invalid"
        );
    }

    #[test]
    fn names_are_dns_components() {
        assert!(validate_name("web").is_ok());
        assert!(validate_name("st_web-1").is_ok());
        for bad in ["-web", "web-", "we.b", "we b"] {
            assert_eq!(
                validate_name(bad).unwrap_err().message,
                "rpc error: code = InvalidArgument desc = name must be valid as a DNS name component"
            );
        }
        assert!(validate_name(&"a".repeat(64))
            .unwrap_err()
            .message
            .ends_with("name must be 63 characters or fewer"));
    }

    #[test]
    fn modes_default_like_dockerd() {
        let mut spec: ServiceSpec = serde_json::from_str(
            r#"{"Name":"a","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Mode":{"Replicated":{}}}"#,
        )
        .unwrap();
        convert(&mut spec).unwrap();
        assert_eq!(spec.mode, ServiceMode::replicated(1));
        let mut job: ServiceSpec = serde_json::from_str(
            r#"{"Name":"a","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Mode":{"ReplicatedJob":{"MaxConcurrent":5}}}"#,
        )
        .unwrap();
        convert(&mut job).unwrap();
        assert_eq!(job.mode, ServiceMode::replicated_job(5, 5));
        let mut both: ServiceSpec = serde_json::from_str(
            r#"{"TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Mode":{"Replicated":{},"Global":{}}}"#,
        )
        .unwrap();
        assert_eq!(
            convert(&mut both).unwrap_err().message,
            "must specify only one service mode"
        );
        let mut none: ServiceSpec = serde_json::from_str(r#"{"Name":"a"}"#).unwrap();
        assert_eq!(
            convert(&mut none).unwrap_err().message,
            "mismatched Runtime and *Spec fields"
        );
    }

    #[test]
    fn validation_uses_swarmkit_texts() {
        let spec = |json: &str| -> ServiceSpec { serde_json::from_str(json).unwrap() };
        let e = validate(&spec(
            r#"{"Name":"a","TaskTemplate":{"ContainerSpec":{"Image":"x"},"RestartPolicy":{"Delay":-1}}}"#,
        ))
        .unwrap_err();
        assert_eq!(
            e.message,
            "rpc error: code = InvalidArgument desc = TaskSpec: restart-delay cannot be negative"
        );
        let e = validate(&spec(
            r#"{"Name":"a","TaskTemplate":{"ContainerSpec":{"Image":"x"},"Placement":{"Constraints":["node.role=manager"]}}}"#,
        ))
        .unwrap_err();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            e.message,
            "rpc error: code = Unknown desc = constraint expected one operator from ==, !="
        );
        let e = validate(&spec(
            r#"{"Name":"a","TaskTemplate":{"ContainerSpec":{"Image":"x","Mounts":[{"Target":"/x"},{"Target":"/x"}]}}}"#,
        ))
        .unwrap_err();
        assert!(e
            .message
            .ends_with("ContainerSpec: duplicate mount point: /x"));
        let e = validate(&spec(
            r#"{"Name":"a","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"UpdateConfig":{"MaxFailureRatio":1.5}}"#,
        ))
        .unwrap_err();
        assert!(e
            .message
            .ends_with("TaskSpec: update-maxfailureratio cannot be less than 0 or bigger than 1"));
        let e = validate(&spec(
            r#"{"Name":"a","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"EndpointSpec":{"Ports":[{"TargetPort":80,"PublishedPort":8080},{"TargetPort":81,"PublishedPort":8080,"Protocol":"tcp"}]}}"#,
        ))
        .unwrap_err();
        assert!(e
            .message
            .ends_with("EndpointSpec: duplicate published ports provided"));
        let e = validate(&spec(
            r#"{"Name":"a","TaskTemplate":{"ContainerSpec":{"Image":"x"},"Resources":{"Reservations":{"MemoryBytes":100}}}}"#,
        ))
        .unwrap_err();
        assert!(e
            .message
            .ends_with("invalid memory value 100: Must be at least 4MiB"));
        assert_eq!(go_g(0.0001), "0.0001");
        assert_eq!(go_g(0.00001), "1e-05");
    }

    #[test]
    fn normalisation_spells_out_enum_zero_values() {
        let mut spec: ServiceSpec = serde_json::from_str(
            r#"{"Name":"a","TaskTemplate":{"ContainerSpec":{"Image":"x"},"RestartPolicy":{"MaxAttempts":3}},"UpdateConfig":{"Parallelism":2},"EndpointSpec":{"Ports":[{"TargetPort":80}]}}"#,
        )
        .unwrap();
        normalize(&mut spec);
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["TaskTemplate"]["ContainerSpec"]["Isolation"], "default");
        assert_eq!(v["TaskTemplate"]["Runtime"], "container");
        assert_eq!(v["TaskTemplate"]["RestartPolicy"]["Condition"], "any");
        assert_eq!(v["UpdateConfig"]["FailureAction"], "pause");
        assert_eq!(v["UpdateConfig"]["Order"], "stop-first");
        assert_eq!(
            v["EndpointSpec"],
            serde_json::json!({"Mode":"vip","Ports":[{"Protocol":"tcp","TargetPort":80,"PublishMode":"ingress"}]})
        );
        let before = spec.clone();
        normalize(&mut spec);
        assert_eq!(spec, before, "normalisation is idempotent");

        // A restart policy always shows MaxAttempts, as moby's conversion back shows it.
        let mut partial: ServiceSpec = serde_json::from_str(
            r#"{"Name":"a","TaskTemplate":{"ContainerSpec":{"Image":"x"},"RestartPolicy":{"Condition":"on-failure"}}}"#,
        )
        .unwrap();
        normalize(&mut partial);
        assert_eq!(
            serde_json::to_value(&partial).unwrap()["TaskTemplate"]["RestartPolicy"],
            serde_json::json!({"Condition":"on-failure","MaxAttempts":0})
        );
    }
}
