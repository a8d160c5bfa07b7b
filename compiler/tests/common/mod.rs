//! Shared by the integration tests that run the `gpt2c` binary.

use std::path::Path;
use std::process::Command;

/// Runs `gpt2c` with `args`, in `dir` when given: (exit code, stdout, stderr). A panic
/// fails the test.
pub fn gpt2c_in(dir: Option<&Path>, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpt2c"));
    cmd.args(args);
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd.output().unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        !se.contains("panicked") && out.status.code() != Some(101),
        "gpt2c {args:?} panicked:\n{se}"
    );
    (out.status.code(), so, se)
}
