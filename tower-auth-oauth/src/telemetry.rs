//! The metrics of this crate, described for the recorder.

/// Describes the metrics this crate emits, and tower-auth-core's, to the installed recorder,
/// with their help texts (Prometheus `# HELP` lines).
///
/// Call it once after installing the recorder: a recorder installed later does not see the
/// descriptions. Introspection cache lookups are counted by tower-auth-core's
/// `tower_auth_cache_requests_total{cache="introspection"}`.
///
/// | metric | labels | what |
/// |---|---|---|
/// | `tower_auth_introspection_requests_total` | `outcome` | introspected requests: `active`, `rejected` or `error` |
/// | `tower_auth_introspection_calls_total` | | calls to the introspection endpoint |
/// | `tower_auth_client_credentials_token_requests_total` | | token requests of the client-credentials layer |
/// | `tower_auth_login_starts_total` | | logins started at the provider (feature `login`) |
/// | `tower_auth_login_callbacks_total` | `outcome` | login callbacks, by outcome (feature `login`) |
pub fn describe_metrics() {
    tower_auth_core::describe_metrics();
    metrics::describe_counter!(
        "tower_auth_introspection_requests_total",
        "Requests authenticated by token introspection, by outcome: active, rejected or error"
    );
    metrics::describe_counter!(
        "tower_auth_introspection_calls_total",
        "Calls to the introspection endpoint (RFC 7662)"
    );
    metrics::describe_counter!(
        "tower_auth_client_credentials_token_requests_total",
        "Token requests of the client-credentials layer to the token endpoint"
    );
    metrics::describe_counter!(
        "tower_auth_login_starts_total",
        "Logins started at the authorization server (authorization code with PKCE)"
    );
    metrics::describe_counter!(
        "tower_auth_login_callbacks_total",
        "Login callbacks from the authorization server, by outcome"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    /// A name the scan must find, so that it is known to work.
    const EMITTED_FOR_SURE: &str = "tower_auth_introspection_requests_total";
    /// tower-auth-core's metrics, described here too.
    const DESCRIBED_ELSEWHERE: &[&str] = &[
        "tower_auth_requests_total",
        "tower_auth_cache_requests_total",
    ];

    /// A recorder that keeps the help text of every metric described to it.
    #[derive(Default)]
    struct Descriptions(std::sync::Mutex<BTreeMap<String, String>>);

    impl Descriptions {
        fn keep(&self, name: metrics::KeyName, help: metrics::SharedString) {
            let mut all = self.0.lock().unwrap();
            all.insert(name.as_str().to_owned(), help.into_owned());
        }
    }

    impl metrics::Recorder for Descriptions {
        fn describe_counter(
            &self,
            name: metrics::KeyName,
            _: Option<metrics::Unit>,
            help: metrics::SharedString,
        ) {
            self.keep(name, help);
        }
        fn describe_gauge(
            &self,
            name: metrics::KeyName,
            _: Option<metrics::Unit>,
            help: metrics::SharedString,
        ) {
            self.keep(name, help);
        }
        fn describe_histogram(
            &self,
            name: metrics::KeyName,
            _: Option<metrics::Unit>,
            help: metrics::SharedString,
        ) {
            self.keep(name, help);
        }
        fn register_counter(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            metrics::Counter::noop()
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    /// The metric names this crate's sources emit: the string literal that opens a `counter!`,
    /// `gauge!` or `histogram!` call (or a macro of ours named `*counter!`), or a `NAME`
    /// constant.
    fn emitted_names() -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for marker in [
                    "counter!(",
                    "gauge!(",
                    "histogram!(",
                    "NAME: &'static str =",
                ] {
                    for (at, _) in text.match_indices(marker) {
                        if text[..at].ends_with("describe_") {
                            continue;
                        }
                        let rest = text[at + marker.len()..].trim_start();
                        if let Some(name) = rest.strip_prefix("\"tower_auth_") {
                            let end = name.find('"').unwrap();
                            names.insert(format!("tower_auth_{}", &name[..end]));
                        }
                    }
                }
            }
        }
        names
    }

    /// `describe_metrics` gives a help text to every metric the crate's code emits.
    #[test]
    fn every_emitted_metric_is_described() {
        let recorder = Descriptions::default();
        metrics::with_local_recorder(&recorder, crate::describe_metrics);
        let described = recorder.0.into_inner().unwrap();
        let emitted = emitted_names();
        assert!(emitted.contains(EMITTED_FOR_SURE), "{emitted:?}");
        for name in &emitted {
            let help = described.get(name);
            assert!(
                help.is_some_and(|h| !h.is_empty()),
                "{name} is not described"
            );
        }
        for name in DESCRIBED_ELSEWHERE {
            assert!(described.contains_key(*name), "{name} is not described");
        }
    }
}
