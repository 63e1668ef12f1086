//! Keeps the dashboard embedding honest: `web/dist` must exist when HQ compiles (rust-embed
//! resolves the folder then, and a missing one would hide a later web build from debug binaries),
//! and HQ rebuilds when the dashboard build changes so release binaries embed the current one.

fn main() {
    let dist = std::path::Path::new("../../web/dist");
    if let Err(error) = std::fs::create_dir_all(dist) {
        println!("cargo:warning=cannot create {}: {error}", dist.display());
    }
    println!("cargo:rerun-if-changed=../../web/dist");
}
