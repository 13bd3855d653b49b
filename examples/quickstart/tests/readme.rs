//! The README's session, run as written against a fresh server on a free port: every line
//! between the `readme-session` markers, with `BASE` set to that server, `cargo run -q -p
//! quickstart --` running this build of the binary, and each status written after `#` on a
//! `curl` line checked.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;

mod common;

use common::{BIN, serve_with};

const README: &str = include_str!("../../../README.md");

/// The shell lines of the README's session.
fn session() -> Vec<&'static str> {
    let start = README
        .find("<!-- readme-session: begin -->")
        .expect("README.md has no readme-session markers");
    let end = README[start..]
        .find("<!-- readme-session: end -->")
        .unwrap()
        + start;
    README[start..end]
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("```"))
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect()
}

/// Runs each line of `SESSION` in one bash process (so variables carry over), in order. A
/// `curl ... # NNN` line is run with its output in `body.txt` and must answer NNN; any other
/// line must exit 0. `BASE=` lines point at `$BASE_URL`. Prints `ok: LINE` or `FAILED: ...`.
const HARNESS: &str = r#"
set -uo pipefail
# `cargo run -q -p quickstart -- ARGS` is the binary under test.
cargo() {
  if [[ "$*" == "run -q -p quickstart -- "* ]]; then
    shift 5
    "$QUICKSTART" "$@" || return
    # A key made by another process reaches the server within about 100 ms (the README says
    # so); a person typing the next line takes longer.
    if [[ "$1 $2" == "keys create" || "$1 $2" == "keys rotate" ]]; then sleep 0.5; fi
  else
    echo "unexpected cargo command: cargo $*" >&2
    return 1
  fi
}
failed=0
while IFS= read -r line; do
  if [[ $line =~ ^BASE= ]]; then
    BASE=$BASE_URL
    echo "ok: BASE=$BASE"
  elif [[ $line =~ ^curl\ (.*[^\ ])\ +\#\ ([0-9]{3}) ]]; then
    want=${BASH_REMATCH[2]}
    got=$(eval "command curl -s -o body.txt -w '%{http_code}' ${BASH_REMATCH[1]}")
    if [[ $got == "$want" ]]; then
      echo "ok: $line"
    else
      echo "FAILED: answered $got, expected $want: $line"
      cat body.txt
      echo
      failed=1
    fi
  elif eval "$line" >out.txt 2>&1; then
    echo "ok: $line"
  else
    echo "FAILED: exit status $?: $line"
    cat out.txt
    failed=1
  fi
done <<<"$SESSION"
exit $failed
"#;

#[tokio::test]
#[ignore = "needs bash and curl: scripts/test runs it"]
async fn the_readme_session_runs_as_written() {
    let curl = Command::new("curl").arg("--version").output();
    assert!(
        curl.is_ok_and(|o| o.status.success()),
        "this test runs the README's curl lines: install curl (apt-get install curl)"
    );
    let lines = session();
    assert!(
        lines.iter().filter(|l| l.starts_with("curl ")).count() >= 10,
        "{lines:#?}"
    );

    // A fresh database and a free port.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quickstart.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n").unwrap();
    let (mut server, base) = serve_with(dir.path(), &config).await;

    let out = tokio::process::Command::new("bash")
        .args(["-c", HARNESS])
        .current_dir(dir.path())
        .env("SESSION", lines.join("\n"))
        .env("BASE_URL", &base)
        .env("QUICKSTART", BIN)
        // The `tokens` command computes the built-in issuer's URL from the server's address.
        .env("QUICKSTART_LISTEN", base.trim_start_matches("http://"))
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok: ")).count(),
        lines.len(),
        "{report}"
    );
    server.kill().await.unwrap();
}
