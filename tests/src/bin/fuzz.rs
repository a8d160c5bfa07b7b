//! `fuzz`: the mutation fuzzer of `gpt2c_tests::fuzz` as a command.
//!
//! ```text
//! cargo run --release -p gpt2c-tests --bin fuzz -- [--seed S] [--cases N] [--first I] [--budget SECS]
//! cargo run --release -p gpt2c-tests --bin fuzz -- --seed S --case I [--dump FILE]
//! ```
//! The first form runs cases `I..I+N` of seed `S` and exits non-zero on any finding; the
//! second replays one case without catching its panic (set RUST_BACKTRACE=1 for the stack)
//! and can write its bytes to FILE (for `gpt2c inspect FILE`).

use gpt2c_tests::fuzz::{self, CappedAlloc};
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

const USAGE: &str = "usage: fuzz [--seed S] [--cases N] [--first I] [--budget SECS] | fuzz --seed S --case I [--dump FILE]";

fn main() -> ExitCode {
    let (mut seed, mut cases, mut first, mut budget) =
        (1u64, 10_000u64, 0u64, fuzz::DEFAULT_BUDGET);
    let (mut replay, mut dump) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            eprintln!("{flag} needs a value\n{USAGE}");
            return ExitCode::from(2);
        };
        let num = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        let parsed = match flag.as_str() {
            "--seed" => num().map(|v| seed = v),
            "--cases" => num().map(|v| cases = v),
            "--first" => num().map(|v| first = v),
            "--budget" => num().map(|v| budget = Duration::from_secs(v)),
            "--case" => num().map(|v| replay = Some(v)),
            "--dump" => {
                dump = Some(value.clone());
                Ok(())
            }
            _ => Err(format!("unknown flag {flag}")),
        };
        if let Err(e) = parsed {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let corpus = fuzz::load_corpus(&gpt2c_tests::repo_root());

    if let Some(index) = replay {
        let case = fuzz::make_case(&corpus, seed, index);
        println!("case {index} of seed {seed}: {}", case.seed_model);
        for m in &case.mutations {
            println!("  {m}");
        }
        if let Some(path) = dump {
            if let Err(e) = std::fs::write(&path, &case.bytes) {
                eprintln!("cannot write {path}: {e}");
                return ExitCode::FAILURE;
            }
            println!("wrote {} bytes to {path}", case.bytes.len());
        }
        println!(
            "compiled as {} (external data resolves in its folder)",
            case.model_path.display()
        );
        match fuzz::compile(&case.bytes, &case.model_path) {
            Ok(n) => println!("accepted: {n} bytes of source"),
            Err(e) => println!("rejected: {e}"),
        }
        return ExitCode::SUCCESS;
    }

    println!(
        "fuzzing cases {first}..{} of seed {seed} over {} seed models",
        first + cases,
        corpus.len()
    );
    let report = fuzz::run(&corpus, seed, first, cases, budget, |r| {
        println!(
            "  {} cases in {:.0} s: {} accepted, {} rejected, {} findings",
            r.cases,
            r.elapsed.as_secs_f64(),
            r.accepted,
            r.rejected,
            r.findings.len()
        );
    });
    println!(
        "{} cases in {:.1} s ({:.0} cases/s): {} accepted, {} rejected; slowest case {} took {:.2} s",
        report.cases,
        report.elapsed.as_secs_f64(),
        report.cases as f64 / report.elapsed.as_secs_f64().max(1e-9),
        report.accepted,
        report.rejected,
        report.slowest.1,
        report.slowest.0.as_secs_f64()
    );
    let mut kinds: Vec<_> = report.errors.iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(a.1));
    println!("most frequent errors:");
    for (kind, n) in kinds.iter().take(25) {
        println!("  {n:>7}  {kind}");
    }
    println!("{} findings", report.findings.len());
    for f in &report.findings {
        println!(
            "  case {} ({}; {}): panic: {}",
            f.index,
            f.seed_model,
            f.mutations.join("; "),
            f.panic
        );
    }
    if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
