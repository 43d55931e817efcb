//! Instructions per call, counted by valgrind's callgrind: ratios that a busy machine does not
//! disturb (the count is the same whatever else the cores are doing), for the targets whose
//! wall-clock ratios the shared 2-core machines cannot settle (`benches/README.md`).
//!
//! `cargo bench --bench instructions` runs each routine below under
//! `valgrind --tool=callgrind`, collecting only inside [`measured_calls`] ([`CALLS`] calls after
//! the setup and one warm-up call), and prints the count divided by [`CALLS`]: the
//! instructions of one call, setup excluded.
//! Without valgrind on the `PATH` it says so and exits 0.
//!
//! - `fresh`: a fresh `Verifier::verify` (token cache off, keys preloaded) vs aws-lc-rs
//!   `ParsedPublicKey::verify_sig` of the same signing input;
//! - `pools`: the same verify with the bench token's pool last of 2 and of 20 (issue 13: the
//!   cost does not grow with the number of pools);
//! - `hit`: a verified-token cache hit.
//!
//! Instructions are not time (RSA's big-number loops retire more instructions per cycle than
//! JSON parsing), so these ratios complement the criterion benches, they do not replace them.

mod common;

use std::process::Command;

use tower_cognito::Verifier;

/// Calls counted per routine (after one warm-up call in the setup).
const CALLS: u64 = 200;

/// The routines, by name: each returns a closure making one call.
const ROUTINES: &[&str] = &[
    "rsa_verify_preparsed",
    "verify_fresh_1_pool",
    "verify_fresh_2_pools",
    "verify_fresh_20_pools",
    "verify_hit",
];

/// The ratios printed, as (routine, baseline).
const RATIOS: &[(&str, &str)] = &[
    ("verify_fresh_1_pool", "rsa_verify_preparsed"),
    ("verify_fresh_2_pools", "verify_fresh_1_pool"),
    ("verify_fresh_20_pools", "verify_fresh_2_pools"),
    ("verify_fresh_20_pools", "verify_fresh_1_pool"),
];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.as_slice() {
        [routine, calls] => run(routine, calls.parse().expect("a number of calls")),
        _ => measure(),
    }
}

/// In the child: the setup of `routine`, then `calls` calls inside [`measured_calls`].
fn run(routine: &str, calls: u64) {
    let token = common::token();
    let rt = common::runtime();
    let verifier = |others: usize, cache: u64| {
        let v = Verifier::new(common::offline_config_among(others).token_cache_size(cache))
            .expect("bench verifier");
        rt.block_on(v.verify(token))
            .expect("the bench token verifies");
        v
    };
    let verify = |v: &Verifier| {
        measured_calls(calls, &mut || {
            std::hint::black_box(rt.block_on(v.verify(std::hint::black_box(token))).is_ok());
        });
    };
    match routine {
        "rsa_verify_preparsed" => {
            let key = common::key().parsed();
            let (input, signature) = common::split_signed(token);
            assert!(key.verify_sig(input, &signature).is_ok());
            measured_calls(calls, &mut || {
                std::hint::black_box(
                    key.verify_sig(input, std::hint::black_box(&signature))
                        .is_ok(),
                );
            });
        }
        "verify_fresh_1_pool" => verify(&verifier(0, 0)),
        "verify_fresh_2_pools" => verify(&verifier(1, 0)),
        "verify_fresh_20_pools" => verify(&verifier(19, 0)),
        "verify_hit" => verify(&verifier(0, 1024)),
        other => panic!("unknown routine {other}; known: {ROUTINES:?}"),
    }
}

/// The only function whose instructions callgrind collects (`--toggle-collect`): the setup
/// (an RSA key generated at random, tokens signed) varies from run to run, the calls do not.
#[inline(never)]
fn measured_calls(calls: u64, call: &mut dyn FnMut()) {
    for _ in 0..calls {
        call();
    }
}

/// In the parent: each routine under callgrind with 0 and `CALLS` calls.
fn measure() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("instructions: valgrind is not installed; nothing counted");
        return;
    }
    let exe = std::env::current_exe().expect("the bench's own path");
    let count = |routine: &str, calls: u64| -> u64 {
        let out = Command::new("valgrind")
            .args([
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                "--toggle-collect=*measured_calls*",
            ])
            .arg(&exe)
            .args([routine, &calls.to_string()])
            .output()
            .expect("valgrind runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{routine} {calls} failed:\n{stderr}");
        stderr
            .lines()
            .find_map(|l| l.split("Collected :").nth(1))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no instruction count in callgrind's output:\n{stderr}"))
    };
    let mut per_call = Vec::new();
    for routine in ROUTINES {
        let each = count(routine, CALLS) as f64 / CALLS as f64;
        println!("instructions: {routine:<24} {each:>12.0} per call");
        per_call.push((*routine, each));
    }
    let of = |name: &str| {
        per_call
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap()
    };
    for (routine, baseline) in RATIOS {
        println!(
            "instructions: {routine} / {baseline} = {:.3}x",
            of(routine) / of(baseline)
        );
    }
}
