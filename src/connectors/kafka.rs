//! Kafka (rdkafka): one JSON message per selected member, keyed by profile ID, with the mapped
//! fields, the identities and the segment membership. A run finishes only once the broker has
//! acknowledged every message (`acks=all`, idempotent producer), so the watermark never moves past
//! a message that was not stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde_json::{Value, json};

use super::push::{PushContext, PushOutcome, PushRow, PushSession, Pusher};
use super::{ConnectorError, redact, required};
use crate::api::ConnectionSpec;
use crate::export::extract::render_time;

const CONNECTOR: &str = "Kafka";
/// How long a run waits for the broker to acknowledge what is still in flight.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// Counts acknowledgements and keeps the first delivery error.
#[derive(Default)]
struct Deliveries {
    acknowledged: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// The last error librdkafka reported about the connection (a refused login, say).
    client_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {
    /// Keeps the latest error, except that a refused login or certificate is never hidden by the
    /// "all brokers down" that follows it.
    fn error(&self, error: KafkaError, reason: &str) {
        let mut kept = self.client_error.lock().unwrap_or_else(|e| e.into_inner());
        let telling = |k: &str| ["uthentication", "SSL", "certificate"].iter().any(|n| k.contains(n));
        if !kept.as_deref().is_some_and(telling) {
            *kept = Some(format!("{error}: {reason}"));
        }
    }
}

impl Deliveries {
    /// `message`, followed by what librdkafka said about the connection, if anything.
    fn explain(&self, message: String) -> String {
        match self.client_error.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(cause) => format!("{message} ({cause})"),
            None => message,
        }
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Where messages go, and what to scrub from messages about them.
struct Route {
    topic: String,
    bootstrap: String,
    secrets: Vec<String>,
}

impl Route {
    fn error(&self, e: impl std::fmt::Display) -> ConnectorError {
        let message = redact(&e.to_string(), &self.secrets);
        let permanent = ["Authentication", "SASL", "uthorization", "certificate"].iter().any(|n| message.contains(n));
        if permanent {
            ConnectorError::Rejected { connector: CONNECTOR, target: self.bootstrap.clone(), message }
        } else {
            ConnectorError::Remote { connector: CONNECTOR, target: self.bootstrap.clone(), message }
        }
    }
}

/// A topic on a Kafka cluster, reached through one Account.
pub struct KafkaPusher {
    config: ClientConfig,
    route: Arc<Route>,
}

impl KafkaPusher {
    pub fn new(
        parameters: &BTreeMap<String, String>,
        connection: Option<&ConnectionSpec>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<Self, ConnectorError> {
        let bootstrap = required(parameters, CONNECTOR, "bootstrapServers")?.clone();
        let topic = required(parameters, CONNECTOR, "topic")?.clone();
        let protocol = parameters.get("securityProtocol").map_or("PLAINTEXT", String::as_str).to_ascii_uppercase();
        let invalid =
            |message: String| ConnectorError::Rejected { connector: CONNECTOR, target: bootstrap.clone(), message };
        if !matches!(protocol.as_str(), "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL") {
            return Err(invalid(format!(
                "parameter 'securityProtocol' is '{protocol}'; use PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            )));
        }
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &bootstrap)
            .set("security.protocol", &protocol)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", "lz4")
            .set("linger.ms", "20")
            .set("message.timeout.ms", "60000")
            .set("client.id", "outflow");
        if protocol.starts_with("SASL") {
            let mechanism = parameters.get("saslMechanism").map_or("PLAIN", String::as_str);
            if !matches!(mechanism, "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512") {
                return Err(invalid(format!(
                    "parameter 'saslMechanism' is '{mechanism}'; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                )));
            }
            let secret = |key: &'static str| {
                secrets
                    .get(key)
                    .filter(|v| !v.is_empty())
                    .ok_or(ConnectorError::MissingParameter { connector: CONNECTOR, parameter: key })
            };
            config
                .set("sasl.mechanism", mechanism)
                .set("sasl.username", secret("saslUsername")?)
                .set("sasl.password", secret("saslPassword")?);
        }
        let ca = secrets.get("caCert").cloned().or_else(|| connection.and_then(|c| c.ca_bundle.clone()));
        if let Some(pem) = ca {
            config.set("ssl.ca.pem", pem);
        }
        Ok(Self { config, route: Arc::new(Route { topic, bootstrap, secrets: secrets.values().cloned().collect() }) })
    }

    fn producer(&self) -> Result<ThreadedProducer<Deliveries>, ConnectorError> {
        self.config.create_with_context(Deliveries::default()).map_err(|e| self.route.error(e))
    }
}

impl Pusher for KafkaPusher {
    fn describe(&self) -> String {
        format!("Kafka({}/{})", self.route.bootstrap, self.route.topic)
    }

    /// Asks the cluster for the topic's metadata, which needs a working connection and login.
    fn probe(&self) -> Result<(), ConnectorError> {
        let (producer, route) = (self.producer()?, &self.route);
        let metadata = producer
            .client()
            .fetch_metadata(Some(&route.topic), Duration::from_secs(15))
            .map_err(|e| route.error(producer.context().explain(e.to_string())))?;
        match metadata.topics().iter().find(|t| t.name() == route.topic).and_then(|t| t.error()) {
            // A topic the broker creates on first write reads as unknown until then.
            Some(e) if RDKafkaErrorCode::from(e) != RDKafkaErrorCode::UnknownTopicOrPartition => {
                Err(route.error(format!("topic '{}': {:?}", route.topic, RDKafkaErrorCode::from(e))))
            }
            _ => Ok(()),
        }
    }

    fn start(&self, context: PushContext) -> Result<Box<dyn PushSession>, ConnectorError> {
        let route = self.route.clone();
        Ok(Box::new(KafkaSession { producer: self.producer()?, route, context, sent: 0, without_identity: 0 }))
    }
}

struct KafkaSession {
    producer: ThreadedProducer<Deliveries>,
    route: Arc<Route>,
    context: PushContext,
    sent: u64,
    without_identity: u64,
}

/// The message of one member.
pub fn message(context: &PushContext, row: &PushRow) -> Value {
    json!({
        "profileId": row.profile_id,
        "identityMap": context.identities_json(row),
        "fields": context.fields_json(row),
        "segmentMembership": {
            context.segment_id.clone(): {
                "status": row.status,
                "lastQualificationTime": row.qualified_us.map(render_time),
            }
        },
        "dataflow": context.dataflow,
        "runId": context.run_id,
    })
}

impl PushSession for KafkaSession {
    fn push(&mut self, row: PushRow) -> Result<(), ConnectorError> {
        if !self.context.matchable(&row) {
            self.without_identity += 1;
            return Ok(());
        }
        let payload = message(&self.context, &row).to_string();
        let key = row.profile_id.clone().unwrap_or_default();
        let mut record = BaseRecord::to(&self.route.topic).key(&key).payload(&payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The local queue is full: wait for the broker to drain some of it.
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(self.route.error(e)),
            }
        }
        self.sent += 1;
        if let Some(e) = self.producer.context().first_error.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(self.route.error(format!("a message was not delivered: {e}")));
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<PushOutcome, ConnectorError> {
        self.producer.flush(FLUSH_TIMEOUT).map_err(|e| {
            self.route.error(self.producer.context().explain(format!("the broker did not confirm every message: {e}")))
        })?;
        let deliveries = self.producer.context();
        let (acknowledged, failed) =
            (deliveries.acknowledged.load(Ordering::SeqCst), deliveries.failed.load(Ordering::SeqCst));
        if failed > 0 || acknowledged != self.sent {
            let first = deliveries.first_error.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default();
            return Err(self
                .route
                .error(format!("{acknowledged} of {} messages confirmed, {failed} failed: {first}", self.sent)));
        }
        Ok(PushOutcome {
            delivered: acknowledged,
            requests: self.sent,
            without_identity: self.without_identity,
            ..PushOutcome::default()
        })
    }
}
