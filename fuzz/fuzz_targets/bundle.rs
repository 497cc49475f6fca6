//! `elsadoctor::bundle::read` (the `replay` reader) on arbitrary text.
//!
//! Checked (a violation panics, which libFuzzer reports as a crash):
//! * nothing panics, however truncated or edited the bundle;
//! * an error is one line;
//! * a bundle it accepts writes back and reads again (the writer's output is always readable).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match elsadoctor::bundle::read(input) {
        Err(e) => assert!(!e.to_string().contains('\n'), "error on several lines: {e}"),
        Ok(b) => {
            let written = elsadoctor::bundle::write(&b.facts, &b.header.vantage, "t")
                .expect("an accepted bundle writes back");
            elsadoctor::bundle::read(&written).expect("a written bundle reads again");
        }
    }
});
