//! Compiles `bpf/esprit_xdp.c` into `$OUT_DIR/esprit_xdp.o` with clang; the
//! object is embedded in the crate with `include_bytes!` (see `program.rs`).

use std::{env, path::PathBuf, process::Command};

const SOURCE: &str = "bpf/esprit_xdp.c";
const APT_HINT: &str = "apt-get install clang llvm libbpf-dev linux-libc-dev";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default()).join("esprit_xdp.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());

    let mut cmd = Command::new(&clang);
    cmd.args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"]);
    // <linux/bpf.h> pulls <asm/types.h>, which Debian keeps under the
    // multiarch directory of the build host.
    if let Some(dir) = multiarch_include() {
        cmd.arg(format!("-I{dir}"));
    }
    cmd.args(["-c", SOURCE, "-o"]).arg(&out);

    match cmd.status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!(
            "esprit-xdp: `{clang}` failed to compile {SOURCE} ({status}); \
             the BPF headers come from libbpf-dev and linux-libc-dev: {APT_HINT}"
        ),
        Err(e) => panic!(
            "esprit-xdp: cannot run `{clang}` to build the XDP program ({e}); \
             install the BPF toolchain: {APT_HINT} (or set CLANG=/path/to/clang)"
        ),
    }
}

fn multiarch_include() -> Option<String> {
    let out = Command::new("gcc").arg("-print-multiarch").output().ok();
    let triple = out
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|t| !t.is_empty())
        .or_else(|| {
            let arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
            Some(format!("{arch}-linux-gnu"))
        })?;
    let dir = format!("/usr/include/{triple}");
    std::path::Path::new(&dir).is_dir().then_some(dir)
}
