//! The verifier apart from the issuer: no module outside `src/issue/` names the `issue`
//! module, so a build without the `issue` feature is the verifier alone, and the verifier's
//! code cannot come to depend on issuing. (CI also builds the crate with each feature alone.)

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_verifier_module_imports_the_issuer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let issue = src.join("issue");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 10,
        "found {} files under {src:?}",
        files.len()
    );
    let mut offenders = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&issue)) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            // lib.rs declares the module and re-exports the issuer's two entry points.
            let declaration = file.ends_with("lib.rs")
                && (line.trim() == "pub mod issue;"
                    || line.trim() == "pub use self::issue::{JwtIssuer, JwtIssuerBuilder};");
            let code = line.split("//").next().unwrap_or_default();
            if !declaration && (code.contains("issue::") || code.contains("mod issue")) {
                offenders.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "verifier code names `issue`:\n{}",
        offenders.join("\n")
    );
}
