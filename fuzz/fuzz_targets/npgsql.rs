//! `elsadoctor::domain::npgsql::parse` on arbitrary text, then every accessor on what it accepts.
//!
//! Checked (a violation panics, which libFuzzer reports as a crash):
//! * nothing panics: `parse`, `hosts`, `ssl_mode`, `max_pool_size`, `timeout`,
//!   `unknown_keywords`, `problems`, `redacted`, `to_tokio_postgres`;
//! * `redacted()` never contains the effective password (the value `password()` returns) when
//!   that password is at least 4 characters long, occurs in the input only inside the value of
//!   the pair that sets it, and shares no character with the mask (so that an occurrence in the
//!   output can only be a leak, never the mask or the surrounding text matching by chance).
#![no_main]

use elsadoctor::domain::npgsql::{self, Keyword};
use libfuzzer_sys::fuzz_target;

/// The mask `redacted()` writes in place of a secret value (`elsadoctor::redact::MASK`).
const MASK: &str = "*****";

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cs) = npgsql::parse(input) else {
        return;
    };

    let _ = cs.hosts();
    let _ = cs.ssl_mode();
    let _ = cs.max_pool_size();
    let _ = cs.timeout();
    let _ = cs.unknown_keywords();
    let _ = cs.problems();
    let redacted = cs.redacted();
    let _ = cs.to_tokio_postgres();

    let Some(password) = cs.password() else {
        return;
    };
    let pw = password.expose();
    if pw.chars().count() < 4 || pw.chars().any(|c| MASK.contains(c)) {
        return;
    }
    // The pair `password()` took its value from: the last one with the Password keyword.
    let Some(pair) = cs
        .pairs()
        .iter()
        .rev()
        .find(|p| p.keyword == Some(Keyword::Password))
    else {
        return;
    };
    // Every occurrence, overlapping ones included, must lie inside that pair's value.
    let elsewhere = (0..input.len())
        .filter(|&i| input.is_char_boundary(i) && input[i..].starts_with(pw))
        .any(|i| !(pair.value_span.start <= i && i + pw.len() <= pair.value_span.end));
    if elsewhere {
        return;
    }
    assert!(
        !redacted.contains(pw),
        "redacted() leaks the password.\n  input:    {input:?}\n  password: {pw:?}\n  redacted: {redacted:?}\n  pair:     key={:?} value_span={:?} span={:?} quote={:?}",
        pair.key,
        pair.value_span,
        pair.span,
        pair.quote,
    );
});
