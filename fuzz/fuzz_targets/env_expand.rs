//! Kubernetes `$(VAR)` expansion: `expand_str`, `shell_style_refs`, `dependency_order` and the
//! whole-container `expand`.
//!
//! Input format (UTF-8 text, split at `\n`): line 0 is the raw string; each further line (at most
//! 8) is one variable, both an entry of the `expand_str` map and an `env` entry of a container:
//! * `NAME=VALUE`  literal value (also in the `expand_str` map);
//! * `NAME<KEY`    `secretKeyRef` `sec/KEY` (or `SRC/KEY` when KEY contains `/`);
//! * `NAME~KEY`    `configMapKeyRef` `cm/KEY` (same `/` rule);
//! * `^PREFIX`     an `envFrom` `secretRef` of `sec` with that prefix;
//! * `%PREFIX`     an `envFrom` `configMapRef` of `cm` with that prefix;
//! * `NAME`        a variable with neither value nor valueFrom.
//!
//! The container's last env var is `CONN` = the raw string, and its command is `[raw]`.
//! Inputs whose expansion could exceed 1 MiB skip `expand` (exponential growth is Kubernetes
//! semantics, not a bug of the harness's making: see `expansion_bound`).
//!
//! Checked (a violation panics):
//! * nothing panics, `display()` included;
//! * `expand_str`: a raw with no `$` expands to itself (value, display), with no references;
//!   with plain vars nothing is secret and `display() == expose()`; every reference span is a
//!   `$…)` slice of the raw that contains the name;
//! * `shell_style_refs`: spans are in order, disjoint, on char boundaries, start with `$` and
//!   contain the (non-empty) name;
//! * `dependency_order`: `Some` is a permutation of the input, and ordering it again changes
//!   nothing (its result is a valid order, and a valid order is kept as is);
//! * `expand`: no Secret text (the Secret values below are made of `☃`, so any `☃` in the output
//!   when the input has none is a leak) in any `display()`, `Debug` of the expansion.
#![no_main]

use std::collections::BTreeMap;

use elsadoctor::domain::env_expand::{
    self, Input, Lookup, RefState, ServiceLink, ServicePort, Sources,
};
use elsadoctor::redact::Secret;
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, ConfigMapKeySelector, Container, EnvFromSource, EnvVar, EnvVarSource,
    SecretEnvSource, SecretKeySelector,
};
use libfuzzer_sys::fuzz_target;

/// Every Secret value contains this and nothing else in the fixtures does.
const SECRET_CHAR: char = '\u{2603}';

struct FixedSources {
    cm: BTreeMap<String, String>,
    sec: BTreeMap<String, Secret>,
}

impl Sources for FixedSources {
    fn config_map(&self, name: &str) -> Lookup<&BTreeMap<String, String>> {
        match name {
            "cm" => Lookup::Found(&self.cm),
            "forbidden" => Lookup::Unknown("forbidden".to_owned()),
            _ => Lookup::Missing,
        }
    }
    fn secret(&self, name: &str) -> Lookup<&BTreeMap<String, Secret>> {
        match name {
            "sec" => Lookup::Found(&self.sec),
            "forbidden" => Lookup::Unknown("forbidden".to_owned()),
            _ => Lookup::Missing,
        }
    }
}

fn sources() -> FixedSources {
    let cm = [
        ("host", "postgres"),
        ("ref", "$(POSTGRES_PASSWORD)"),
        ("POSTGRES_DB", "elsa"),
        ("empty", ""),
    ];
    let sec = [
        ("pw", "\u{2603}\u{2603}\u{2603}\u{2603}"),
        ("POSTGRES_PASSWORD", "\u{2603}p$(w)\u{2603}"),
        ("empty", ""),
    ];
    FixedSources {
        cm: cm
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        sec: sec
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Secret::new(*v)))
            .collect(),
    }
}

fn src_key(spec: &str, default: &str) -> (String, String) {
    match spec.split_once('/') {
        Some((src, key)) => (src.to_owned(), key.to_owned()),
        None => (default.to_owned(), spec.to_owned()),
    }
}

fn check_expanded(raw: &str, x: &env_expand::Expanded) {
    let shown = x.display();
    assert_eq!(x.raw(), raw);
    for r in &x.refs {
        let text = raw
            .get(r.span.clone())
            .unwrap_or_else(|| panic!("reference span {:?} not a slice of {raw:?}", r.span));
        assert!(
            text.starts_with('$') && text.ends_with(')') && text.contains(r.name.as_str()),
            "reference {r:?} does not match its text {text:?} in {raw:?}"
        );
        if r.state == RefState::Escaped {
            assert!(
                text.starts_with("$$("),
                "escaped reference {r:?} is {text:?}"
            );
        }
    }
    let _ = (shown, x.is_secret(), x.has_unresolved(), format!("{x:?}"));
}

/// An upper bound of the longest string `expand` builds: every `$(…)` of a value is replaced by
/// at most the longest value defined before it (fixture values are all under 64 bytes).
///
/// The growth is exponential by design (Kubernetes semantics): `A=$(A)$(A)…` written n times
/// doubles (or more) A each time, and the kubelet builds the same strings. A few hundred bytes of
/// input reach gigabytes, which libFuzzer reports as out-of-memory; such inputs skip `expand`.
fn expansion_bound(env: &[EnvVar], command: &str) -> usize {
    let grow = |longest: usize, v: &str| {
        let refs = v.matches("$(").count();
        v.len().saturating_add(refs.saturating_mul(longest))
    };
    let mut longest = 64usize;
    for v in env.iter().filter_map(|e| e.value.as_deref()) {
        longest = longest.max(grow(longest, v));
    }
    longest.max(grow(longest, command))
}

/// Inputs whose expansion could exceed this skip `expand` (see [`expansion_bound`]).
const EXPANSION_LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = input.split('\n');
    let raw = lines.next().unwrap_or("");

    let mut vars = BTreeMap::new();
    let mut env = Vec::new();
    let mut env_from = Vec::new();
    for line in lines.take(8) {
        let sep = line.find(['=', '<', '~']);
        if let Some(prefix) = line.strip_prefix('^') {
            env_from.push(EnvFromSource {
                prefix: Some(prefix.to_owned()),
                secret_ref: Some(SecretEnvSource {
                    name: "sec".to_owned(),
                    optional: None,
                }),
                ..Default::default()
            });
        } else if let Some(prefix) = line.strip_prefix('%') {
            env_from.push(EnvFromSource {
                prefix: Some(prefix.to_owned()),
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "cm".to_owned(),
                    optional: None,
                }),
                ..Default::default()
            });
        } else if let Some(at) = sep {
            let (name, rest) = (&line[..at], &line[at + 1..]);
            let var = match line.as_bytes()[at] {
                b'=' => {
                    vars.insert(name.to_owned(), rest.to_owned());
                    EnvVar {
                        name: name.to_owned(),
                        value: Some(rest.to_owned()),
                        value_from: None,
                    }
                }
                b'<' => {
                    let (src, key) = src_key(rest, "sec");
                    EnvVar {
                        name: name.to_owned(),
                        value: None,
                        value_from: Some(EnvVarSource {
                            secret_key_ref: Some(SecretKeySelector {
                                name: src,
                                key,
                                optional: None,
                            }),
                            ..Default::default()
                        }),
                    }
                }
                _ => {
                    let (src, key) = src_key(rest, "cm");
                    EnvVar {
                        name: name.to_owned(),
                        value: None,
                        value_from: Some(EnvVarSource {
                            config_map_key_ref: Some(ConfigMapKeySelector {
                                name: src,
                                key,
                                optional: Some(true),
                            }),
                            ..Default::default()
                        }),
                    }
                }
            };
            env.push(var);
        } else {
            env.push(EnvVar {
                name: line.to_owned(),
                value: None,
                value_from: None,
            });
        }
    }

    // expand_str against plain values.
    let x = env_expand::expand_str(raw, &vars);
    check_expanded(raw, &x);
    assert!(!x.is_secret(), "plain vars made a secret: {raw:?}");
    assert_eq!(x.display(), x.expose(), "display differs with no secret");
    if !raw.contains('$') {
        assert_eq!(x.expose(), raw, "a raw without '$' changed");
        assert_eq!(x.display(), raw, "a raw without '$' displays differently");
        assert!(x.refs.is_empty(), "references found in a raw without '$'");
    }

    // Shell-style references.
    let mut last_end = 0;
    for (name, span) in env_expand::shell_style_refs(raw) {
        let text = raw
            .get(span.clone())
            .unwrap_or_else(|| panic!("shell ref span {span:?} not a slice of {raw:?}"));
        assert!(
            span.start >= last_end,
            "shell refs overlap or go back in {raw:?}"
        );
        assert!(
            !name.is_empty() && text.starts_with('$') && text.contains(name.as_str()),
            "shell ref {name:?} at {span:?} is {text:?} in {raw:?}"
        );
        last_end = span.end;
    }

    // A container built from the input.
    env.push(EnvVar {
        name: "CONN".to_owned(),
        value: Some(raw.to_owned()),
        value_from: None,
    });
    let container = Container {
        name: "elsa".to_owned(),
        command: Some(vec![raw.to_owned()]),
        env: Some(env),
        env_from: Some(env_from),
        ..Default::default()
    };
    let env = container.env.as_deref().unwrap_or_default();
    if let Some(order) = env_expand::dependency_order(env) {
        assert_eq!(
            order.len(),
            env.len(),
            "dependency_order lost or added entries"
        );
        let mut used = vec![false; env.len()];
        for e in &order {
            let slot = (0..env.len()).find(|&i| !used[i] && env[i] == *e);
            let Some(i) = slot else {
                panic!("dependency_order returned an entry not in the input: {e:?}");
            };
            used[i] = true;
        }
        assert_eq!(
            env_expand::dependency_order(&order).as_ref(),
            Some(&order),
            "ordering an already ordered env changed it"
        );
    }

    if expansion_bound(env, raw) > EXPANSION_LIMIT {
        return;
    }
    let services = [ServiceLink {
        name: "postgres".to_owned(),
        cluster_ip: "10.0.0.5".to_owned(),
        ports: vec![ServicePort {
            name: Some("pg".to_owned()),
            port: 5432,
            protocol: String::new(),
        }],
    }];
    let srcs = sources();
    let expansion = env_expand::expand(&Input {
        container: &container,
        enable_service_links: true,
        services: &services,
        master: None,
        sources: &srcs,
    });
    if input.contains(SECRET_CHAR) {
        return;
    }
    for entry in &expansion.vars {
        if let Some(x) = entry.value.expanded() {
            let shown = x.display();
            assert!(
                !shown.contains(SECRET_CHAR),
                "display() of {} shows Secret text: {shown:?}",
                entry.name
            );
        }
    }
    for x in expansion.command.iter().chain(&expansion.args) {
        let shown = x.display();
        assert!(
            !shown.contains(SECRET_CHAR),
            "command shows Secret text: {shown:?}"
        );
    }
    let debug = format!("{expansion:?}");
    assert!(
        !debug.contains(SECRET_CHAR),
        "Debug shows Secret text: {debug}"
    );
});
