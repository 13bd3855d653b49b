//! What every quickstart test file needs: the binary, started as a server.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// The quickstart binary built for these tests.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_quickstart");

/// Starts `quickstart serve --config CONFIG` in `dir` (killed when the child is dropped);
/// returns the child and the base URL it printed.
pub(crate) async fn serve_with(dir: &Path, config: &Path) -> (tokio::process::Child, String) {
    let (child, url, _) = serve_logged(dir, config, "info").await;
    (child, url)
}

/// The lines a server wrote to stderr (its request logs) so far.
pub(crate) type Logs = Arc<Mutex<Vec<String>>>;

/// [`serve_with`], logging with `RUST_LOG` = `filter`; returns the logs too.
pub(crate) async fn serve_logged(
    dir: &Path,
    config: &Path,
    filter: &str,
) -> (tokio::process::Child, String, Logs) {
    let mut child = tokio::process::Command::new(BIN)
        .current_dir(dir)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", filter)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let logs = Logs::default();
    let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
    let kept = Arc::clone(&logs);
    tokio::spawn(async move {
        while let Ok(Some(line)) = errors.next_line().await {
            kept.lock().unwrap().push(line);
        }
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let Some(line) = lines.next_line().await.unwrap() else {
                panic!("the server exited: {:?}", logs.lock().unwrap());
            };
            if let Some(rest) = line.strip_prefix("quickstart listening on ") {
                return rest.split(' ').next().unwrap().to_owned();
            }
        }
    })
    .await
    .unwrap();
    // Keep reading its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url, logs)
}

/// A string claim of a JWT, read without verifying it (the tests' own tokens).
#[allow(dead_code)] // not every test file reads claims
pub(crate) fn claim(jwt: &str, name: &str) -> String {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims[name].as_str().unwrap().to_owned()
}
