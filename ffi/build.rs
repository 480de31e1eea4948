//! Link settings of `libcircuit.so`.

fn main() {
    // The SONAME carries the major version of the binary interface: programs
    // link against `libcircuit.so.0` and keep working across compatible
    // releases (`libcircuit.so.0.1.0`, `libcircuit.so.0.2.0`, ...).
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" || os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcircuit.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
