//! Records the commit the binary is built from, for `gossip --version` and
//! the `gossip_build_info` metric: `GOSSIP_COMMIT` if set (a build without
//! `.git`), else `git rev-parse HEAD`, else "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=GOSSIP_COMMIT");
    let commit = std::env::var("GOSSIP_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves: HEAD itself, and the ref it points to, loose
    // or packed. Only files that exist: cargo reruns a build script on every
    // build while a file it watches is missing.
    let mut watch = Vec::new();
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        watch.push(format!("{dir}/HEAD"));
        if let (Some(r), Some(common)) = (
            git(&["symbolic-ref", "-q", "HEAD"]),
            git(&["rev-parse", "--git-common-dir"]),
        ) {
            watch.push(format!("{common}/{r}"));
            // Its folder too: a packed ref that becomes loose again.
            if let Some((folder, _)) = r.rsplit_once('/') {
                watch.push(format!("{common}/{folder}"));
            }
            watch.push(format!("{common}/packed-refs"));
        }
    }
    for path in watch {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rustc-env=GOSSIP_COMMIT={commit}");
}
