//! Secrets stay out of logs and error messages; risky exposure is warned
//! about by `validate`.

use std::time::Duration;

use crate::common::*;

const SECRET: &str = "s3cretPassw0rd";

fn validate(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, config).unwrap();
    let out = bin().args(["validate", "--no-environment", "--config"]).arg(&path).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[cfg(feature = "otlp")]
#[test]
fn url_passwords_stay_out_of_logs_and_errors() {
    // A bad URL: the error names it without its password.
    let (ok, text) = validate(&format!(
        "[sources.d]\ntype = \"demo\"\n[sinks.ch]\ntype = \"clickhouse\"\ninputs = [\"d\"]\ntable = \"t\"\nendpoint = \"ftp://kong:{SECRET}@ch:8123\"\n"
    ));
    assert!(!ok && text.contains("ftp://kong:***@ch:8123"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    // A running sink whose receiver is down logs its endpoint and its errors, never the password.
    let port = free_port();
    let mut pipeline = Pipeline::start(&format!(
        "[sources.d]\ntype = \"demo\"\nrate = 50\n\
         [sinks.otlp]\ntype = \"opentelemetry\"\ninputs = [\"d\"]\nprotocol = \"http/protobuf\"\nendpoint = \"http://kong:{SECRET}@127.0.0.1:{port}\"\nrequest.retry_initial_backoff_secs = 0.1\nrequest.retry_attempts = 3\n\
         [sinks.rw]\ntype = \"prometheus_remote_write\"\ninputs = [\"m\"]\nendpoint = \"http://kong:{SECRET}@127.0.0.1:{port}/api/v1/write\"\nrequest.retry_initial_backoff_secs = 0.1\nrequest.retry_attempts = 3\n\
         [sources.m]\ntype = \"internal_metrics\"\nscrape_interval_secs = 0.2\n"
    ));
    wait_for("retries", Duration::from_secs(30), || {
        std::fs::read_to_string(&pipeline.stderr).unwrap_or_default().matches("retrying").count() >= 4
    });
    let log = pipeline.stop();
    assert!(log.contains(&format!("http://127.0.0.1:{port}")), "{log}");
    assert!(!log.contains(SECRET), "the password is in the log:\n{log}");
}

#[cfg(feature = "kafka")]
#[test]
fn librdkafka_messages_lose_the_secret_values() {
    // The secret is also (by mistake) the value of a property librdkafka refuses, which it quotes.
    let (ok, text) = validate(&format!(
        "[sources.d]\ntype = \"demo\"\n[sinks.k]\ntype = \"kafka\"\ninputs = [\"d\"]\nbootstrap_servers = \"127.0.0.1:9092\"\ntopic = \"t\"\nencoding.codec = \"json\"\n\
         sasl.mechanism = \"PLAIN\"\nsasl.username = \"kong\"\nsasl.password = \"{SECRET}\"\nlibrdkafka_options.\"compression.codec\" = \"{SECRET}\"\n"
    ));
    assert!(!ok && text.contains("librdkafka refuses the configuration") && text.contains("***"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}

#[cfg(feature = "kafka")]
#[test]
fn validate_warns_about_open_receivers_and_clear_text_secrets() {
    let (ok, text) = validate(
        "[api]\naddress = \"0.0.0.0:8686\"\n\
         [sources.kong]\ntype = \"kong_http_log\"\naddress = \"0.0.0.0:8080\"\n\
         [sources.safe]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:8081\"\n\
         [sinks.metrics]\ntype = \"prometheus_exporter\"\ninputs = [\"m\"]\n\
         [sources.m]\ntype = \"internal_metrics\"\n\
         [sinks.k]\ntype = \"kafka\"\ninputs = [\"kong\", \"safe\"]\nbootstrap_servers = \"127.0.0.1:9092\"\ntopic = \"t\"\nencoding.codec = \"json\"\n\
         sasl.mechanism = \"PLAIN\"\nsasl.username = \"kong\"\nsasl.password = \"p\"\n\
         [sinks.ch]\ntype = \"clickhouse\"\ninputs = [\"kong\"]\nendpoint = \"http://u:p@127.0.0.1:8123\"\ntable = \"t\"\nauth.user = \"default\"\nauth.password = \"\"\n",
    );
    assert!(ok, "{text}");
    for expected in [
        "the admin API listens on 0.0.0.0:8686 without auth",
        "source `kong` (type `kong_http_log`): listens on 0.0.0.0:8080 without `auth`",
        "sink `metrics` (type `prometheus_exporter`): listens on 0.0.0.0:9598 without `auth`",
        "`sasl.mechanism = \"PLAIN\"` without `tls.enabled`",
        "`endpoint` holds credentials and `auth` is set: `auth` is used",
    ] {
        assert!(text.contains(expected), "missing warning `{expected}`:\n{text}");
    }
    assert!(!text.contains("source `safe`"), "{text}");
    assert!(text.contains("valid: 6 component(s), 5 warning(s)"), "{text}");
}
