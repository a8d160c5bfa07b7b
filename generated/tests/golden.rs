//! The generated source of the default model is checked in (`generated/golden/model.rs`),
//! so every change to what the compiler emits shows up in review as a readable diff. After
//! an intended change, rewrite it with
//! `GPT2C_BLESS=1 cargo test -p gpt2 --test golden` and commit the result.

use std::path::Path;

#[test]
fn generated_source_matches_the_checked_in_copy() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/model.rs");
    let got = std::fs::read_to_string(gpt2::build_info::SOURCE_PATH).unwrap();
    // Only the default model, compiled with every pass, has a checked-in copy.
    let default_sha = "8b3f18a99baffbb89ef4f82430bdcc03261c087724d41c307a5066624dbe142c";
    if gpt2::build_info::MODEL_SHA256 != default_sha || got.contains("passes disabled") {
        eprintln!("skipped: this build embeds another model or disabled passes");
        return;
    }
    if std::env::var_os("GPT2C_BLESS").is_some() {
        std::fs::write(&golden, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    if got == want {
        return;
    }
    let first = got
        .lines()
        .zip(want.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(got.lines().count().min(want.lines().count()));
    let line = |s: &str| s.lines().nth(first).unwrap_or("<end of file>").to_string();
    panic!(
        "the generated source differs from generated/golden/model.rs ({} vs {} lines), first at \
         line {}:\n  checked in: {}\n  generated:  {}\nIf the change is intended, run \
         `GPT2C_BLESS=1 cargo test -p gpt2 --test golden` and commit generated/golden/model.rs.",
        got.lines().count(),
        want.lines().count(),
        first + 1,
        line(&want),
        line(&got),
    );
}
