//! Rebuilds HQ when the dashboard build changes, so release binaries embed the current `web/dist`.

fn main() {
    println!("cargo:rerun-if-changed=../../web/dist");
}
