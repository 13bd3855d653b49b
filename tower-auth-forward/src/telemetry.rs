//! A tracing event and a metrics counter per decision, compiled away when their features are
//! off. Events go to the `tower_auth` target; they name the outcome and the fixed error
//! description, never a credential or a path.
//!
//! Counter: `tower_auth_forward_requests_total{api, outcome}`, `api` being `http` or
//! `envoy_grpc` and `outcome` `allowed`, `anonymous` or an
//! [`AuthErrorKind`](tower_auth_core::AuthErrorKind) name.

#![allow(unused_variables)]

use crate::service::Decision;

pub(crate) fn decided(api: &'static str, decision: &Decision) {
    let outcome = match decision {
        Ok(Some(_)) => "allowed",
        Ok(None) => "anonymous",
        Err(e) => e.kind().as_str(),
    };
    #[cfg(feature = "tracing")]
    match decision {
        Ok(Some(p)) => tracing::trace!(
            target: "tower_auth",
            api,
            scheme = p.scheme().as_str(),
            subject = p.subject(),
            "forwarded request allowed"
        ),
        Ok(None) => {
            tracing::trace!(target: "tower_auth", api, "forwarded request allowed anonymously")
        }
        Err(e) => tracing::debug!(
            target: "tower_auth",
            api,
            outcome,
            reason = e.description(),
            "forwarded request refused"
        ),
    }
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_forward_requests_total", "api" => api, "outcome" => outcome)
        .increment(1);
}

/// Describes this crate's metric to the installed recorder, with its help text (Prometheus
/// `# HELP` line). Call it once after installing the recorder.
///
/// | metric | labels | what |
/// |---|---|---|
/// | `tower_auth_forward_requests_total` | `api` (`http`, `envoy_grpc`), `outcome` | forward-authentication decisions |
#[cfg(feature = "metrics")]
pub fn describe_metrics() {
    metrics::describe_counter!(
        "tower_auth_forward_requests_total",
        "Forward-authentication decisions, by api (http or envoy_grpc) and outcome: allowed, \
         anonymous or the refusal's kind"
    );
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use tower_auth_core::{AuthError, Principal, Scheme};

    use super::*;

    #[test]
    fn counts_each_outcome() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            decided(
                "http",
                &Ok(Some(Principal::builder("a", Scheme::Jwt).build())),
            );
            decided("http", &Ok(None));
            decided("envoy_grpc", &Err(AuthError::insufficient_scope("x")));
            decided("envoy_grpc", &Err(AuthError::insufficient_scope("y")));
        });
        let mut seen: Vec<(String, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let labels: Vec<String> = key.labels().map(|l| l.value().to_owned()).collect();
                let DebugValue::Counter(n) = value else {
                    panic!("not a counter")
                };
                (format!("{}{{{}}}", key.name(), labels.join(",")), n)
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                (
                    "tower_auth_forward_requests_total{envoy_grpc,insufficient_scope}".to_owned(),
                    2
                ),
                (
                    "tower_auth_forward_requests_total{http,allowed}".to_owned(),
                    1
                ),
                (
                    "tower_auth_forward_requests_total{http,anonymous}".to_owned(),
                    1
                ),
            ]
        );
    }

    /// A recorder keeping what is described to it.
    #[derive(Default)]
    struct Described(std::sync::Mutex<Vec<(String, String)>>);

    impl metrics::Recorder for Described {
        fn describe_counter(
            &self,
            name: metrics::KeyName,
            _: Option<metrics::Unit>,
            help: metrics::SharedString,
        ) {
            if let Ok(mut all) = self.0.lock() {
                all.push((name.as_str().to_owned(), help.into_owned()));
            }
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
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

    #[test]
    fn the_counter_is_described() {
        let recorder = Described::default();
        metrics::with_local_recorder(&recorder, describe_metrics);
        let described = recorder.0.into_inner().unwrap_or_default();
        assert_eq!(described.len(), 1);
        assert_eq!(described[0].0, "tower_auth_forward_requests_total");
        assert!(!described[0].1.is_empty());
    }
}
