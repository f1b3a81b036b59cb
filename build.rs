//! The pages embed hls.js from web/node_modules (an npm dependency with a lockfile, installed by
//! `make`); say so clearly when it is missing instead of failing inside `include_bytes!`.
fn main() {
    let hls = "web/node_modules/hls.js/dist/hls.min.js";
    println!("cargo:rerun-if-changed={hls}");
    println!("cargo:rerun-if-changed=web/package-lock.json");
    if !std::path::Path::new(hls).exists() {
        panic!(
            "{hls} is missing: run `make build` (or `npm ci --prefix web`) to install the web \
             pages' npm dependencies before `cargo build`"
        );
    }
}
