//! How every client of a run reaches the broker: the bootstrap servers plus
//! connection-level librdkafka properties (`security.protocol`, `ssl.*`,
//! `sasl.*`) given once and applied to the producer, the consumer and the
//! admin client alike.

use std::path::Path;

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use serde_json::{Map, Value};

pub struct Connection {
    pub bootstrap: String,
    /// In the order given: the file first, then `--client-set` (later wins).
    properties: Vec<(String, String)>,
}

impl Connection {
    pub fn new(
        bootstrap: &str,
        config_file: Option<&Path>,
        client_set: &[String],
    ) -> anyhow::Result<Self> {
        let mut properties = Vec::new();
        if let Some(path) = config_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --client-config {}", path.display()))?;
            properties = parse_properties(&text)
                .with_context(|| format!("--client-config {}", path.display()))?;
        }
        for pair in client_set {
            properties.push(split_pair(pair).with_context(|| format!("--client-set {pair:?}"))?);
        }
        Ok(Connection {
            bootstrap: bootstrap.to_owned(),
            properties,
        })
    }

    /// The configuration every client starts from.
    pub fn base_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "gregor-bench")
            // Loopback only: no need to try IPv6 for "localhost".
            .set("broker.address.family", "v4");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// The properties as the JSON line shows them: secrets replaced, so a
    /// results file can be shared.
    pub fn shown(&self) -> Value {
        let mut shown = Map::new();
        for (key, value) in &self.properties {
            let secret = key.contains("password") || key.ends_with(".key.pem");
            let value = if secret { "(hidden)" } else { value.as_str() };
            shown.insert(key.clone(), Value::from(value));
        }
        Value::Object(shown)
    }
}

/// Java properties as Kafka's client.properties uses them: `key=value` (or
/// `key: value`) a line, `#`/`!` comments, blank lines ignored. Keys are
/// librdkafka's (`sasl.mechanisms`, `ssl.ca.location`, …); Java-only keys
/// such as `sasl.jaas.config` are refused by librdkafka with their name.
pub fn parse_properties(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut properties = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some(at) = line.find(['=', ':']) else {
            bail!("line {}: expected key=value, got {line:?}", number + 1);
        };
        let (key, value) = (line[..at].trim(), line[at + 1..].trim());
        if key.is_empty() {
            bail!("line {}: empty key", number + 1);
        }
        properties.push((key.to_owned(), value.to_owned()));
    }
    Ok(properties)
}

fn split_pair(pair: &str) -> anyhow::Result<(String, String)> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => bail!("expected KEY=VALUE"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_skip_comments_and_trim_around_the_separator() {
        let text = "# TLS\n! also a comment\n\nsecurity.protocol = SASL_SSL\nsasl.mechanisms: SCRAM-SHA-512\nsasl.password=a=b\n";
        assert_eq!(
            parse_properties(text).unwrap(),
            [
                ("security.protocol".into(), "SASL_SSL".into()),
                ("sasl.mechanisms".into(), "SCRAM-SHA-512".into()),
                ("sasl.password".into(), "a=b".into()),
            ]
        );
        assert!(parse_properties("no separator here").is_err());
        assert!(parse_properties("=value").is_err());
    }

    #[test]
    fn set_flags_override_the_file_and_passwords_stay_out_of_the_json() {
        let dir = std::env::temp_dir().join(format!("gregor-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.properties");
        std::fs::write(&file, "sasl.username=bench\nsasl.password=secret\n").unwrap();
        let connection =
            Connection::new("127.0.0.1:1", Some(&file), &["sasl.username=other".into()]).unwrap();
        assert_eq!(
            connection.shown(),
            serde_json::json!({"sasl.username": "other", "sasl.password": "(hidden)"})
        );
        assert_eq!(connection.base_config().get("sasl.username"), Some("other"));
        assert!(Connection::new("127.0.0.1:1", None, &["novalue".into()]).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
