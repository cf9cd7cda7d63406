//! Build script of the Lambda crates: links their binaries as position-dependent executables
//! (non-PIE) on Linux. A PIE needs a dynamic relocation for every pointer in its read-only
//! tables, which the loader patches at start; a fixed load address needs none. Only the
//! binaries are affected (not build scripts or proc-macros, and not the library the tests
//! link), and only on Linux with glibc, where every linker used here takes `-no-pie` (GNU ld,
//! lld, and Zig's under cargo-lambda). What it saves: docs/benchmarks.md.
fn main() {
    println!("cargo:rerun-if-changed=../non-pie.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
