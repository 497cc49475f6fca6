//! appsettings.json parsing (.NET rules: comments, trailing commas, case-insensitive duplicate
//! keys refused) and the effective-configuration merge.
//!
//! The whole input is the JSON text. On `Ok`, the value is added to an `EffectiveConfig` (twice,
//! as two layers), then queried with `get`/`section` on every flattened key, on its upper-cased
//! spelling and on every `:`-prefix of it, and on a few words of the input; `env_key` is called
//! with `Some(9)` and `Some(10)` on those keys written as environment variable names (`__`) and on
//! the words.
//!
//! Checked (a violation panics):
//! * nothing panics;
//! * every setting `iter()` yields is found again by `get` under its own key and under the
//!   upper-cased key (keys are case-insensitive), and by `section` of every `:`-prefix of its key;
//! * adding the same JSON again as a second layer overrides every key once more per definition;
//! * the value serialized back to strict JSON parses again (comments/trailing-comma blanking must
//!   leave strict JSON alone), to the same set of keys;
//! * `env_key`: .NET 9 and .NET 10 agree except on a name with a .NET 10-only prefix; a name with
//!   no prefix maps to itself with `__` → `:`.
#![no_main]

use elsadoctor::domain::dotnet_config::{
    EffectiveConfig, Source, connection_string_prefixes, env_key, parse_appsettings,
};
use libfuzzer_sys::fuzz_target;

fn file_source(path: &'static str) -> impl Fn(&str) -> Source {
    move |k: &str| Source::File {
        path: path.to_owned(),
        json_path: k.to_owned(),
    }
}

fn check_env_key(name: &str) {
    let net9 = env_key(name, Some(9));
    let net10 = env_key(name, Some(10));
    let upper = name.to_ascii_uppercase();
    let has = |major| {
        connection_string_prefixes(Some(major))
            .iter()
            .any(|p| upper.starts_with(p))
    };
    if !has(10) {
        assert_eq!(
            net10,
            name.replace("__", ":"),
            "env_key({name:?}, 10) without prefix"
        );
    }
    if !has(9) {
        assert_eq!(
            net9,
            name.replace("__", ":"),
            "env_key({name:?}, 9) without prefix"
        );
    } else {
        assert_eq!(
            net9, net10,
            "env_key({name:?}) differs between .NET 9 and 10"
        );
        assert!(
            net9.starts_with("ConnectionStrings:"),
            "env_key({name:?}) = {net9:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for word in text
        .split(|c: char| c.is_whitespace() || matches!(c, '"' | '{' | '}' | '[' | ']' | ','))
        .filter(|w| !w.is_empty())
        .take(16)
    {
        check_env_key(word);
    }
    let Ok(json) = parse_appsettings(text) else {
        return;
    };

    let mut config = EffectiveConfig::default();
    config.add_json(&json, file_source("/app/appsettings.json"));
    let keys: Vec<String> = config.iter().map(|s| s.key.clone()).collect();
    for key in &keys {
        let found = config
            .get(key)
            .unwrap_or_else(|| panic!("get({key:?}) misses a key iter() yields"));
        assert_eq!(&found.key, key);
        let upper = key.to_ascii_uppercase();
        assert!(
            config.get(&upper).is_some(),
            "get({upper:?}) is case-sensitive"
        );
        for (at, _) in key.match_indices(':') {
            let prefix = &key[..at];
            assert!(
                config.section(prefix).any(|s| s.key == *key),
                "section({prefix:?}) misses {key:?}"
            );
        }
        check_env_key(&key.replace(':', "__"));
        let _ = (
            found.value.display(),
            found.value.has_secret(),
            found.source.to_string(),
        );
    }
    for word in text
        .split(['"', ' ', '\n'])
        .filter(|w| !w.is_empty())
        .take(16)
    {
        let _ = config.get(word);
        let _ = config.section(word).count();
    }

    // A second layer with the same keys: a key set k times by one file (`a:b` and `a` > `b`
    // flatten alike) was overridden k-1 times by the first layer, 2k-1 times after the second.
    let before: Vec<usize> = config.iter().map(|s| s.overridden.len()).collect();
    config.add_json(&json, file_source("/app/appsettings.Production.json"));
    for (s, n) in config.iter().zip(&before) {
        assert_eq!(
            s.overridden.len(),
            2 * n + 1,
            "{:?} overridden {:?}",
            s.key,
            s.overridden
        );
    }
    assert_eq!(config.iter().count(), keys.len());

    // Strict JSON must come through the comment/trailing-comma blanking untouched.
    for strict in [
        serde_json::to_string(&json).expect("serialize"),
        serde_json::to_string_pretty(&json).expect("serialize"),
    ] {
        let again = parse_appsettings(&strict)
            .unwrap_or_else(|e| panic!("re-parsing {strict:?} failed: {e}"));
        let mut c2 = EffectiveConfig::default();
        c2.add_json(&again, file_source("again.json"));
        let keys2: Vec<String> = c2.iter().map(|s| s.key.clone()).collect();
        assert_eq!(keys, keys2, "keys changed when re-parsing {strict:?}");
    }
});
