//! The pages embed hls.js and uPlot from web/node_modules (npm dependencies with a lockfile,
//! installed by `make`); say so clearly when one is missing instead of failing inside
//! `include_bytes!`.
fn main() {
    println!("cargo:rerun-if-changed=web/package-lock.json");
    for file in [
        "web/node_modules/hls.js/dist/hls.min.js",
        "web/node_modules/uplot/dist/uPlot.iife.min.js",
        "web/node_modules/uplot/dist/uPlot.min.css",
    ] {
        println!("cargo:rerun-if-changed={file}");
        if !std::path::Path::new(file).exists() {
            panic!(
                "{file} is missing: run `make build` (or `npm ci --prefix web`) to install the \
                 web pages' npm dependencies before `cargo build`"
            );
        }
    }
}
