//! Templated HTTP destinations: rows are grouped into batches (by action, optionally by identity
//! namespace), each batch is rendered into one request from the Destination's templates and sent
//! under the Account's shared rate limits, with retries on throttling and server errors, token
//! refresh on a 401, and per-row errors read from the response.

pub mod auth;
pub mod guard;
pub mod limiter;
pub mod retry;
pub mod row_errors;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Map, Value, json};

use self::auth::{Auth, TokenError};
use self::retry::{Step, next_step};
use self::template::{Action, Templates};
use super::push::{PushContext, PushOutcome, PushRow, PushSession, Pusher};
use super::{ConnectorError, redact};
use crate::api::{ConnectionSpec, DestinationSpec, HttpSpec};
use crate::export::extract::render_time;

const CONNECTOR: &str = "HTTP";
/// Identities per request when the Destination gives no limit.
pub const DEFAULT_BATCH_SIZE: usize = 1_000;
/// Requests in flight per Account when the Destination gives no limit.
pub const DEFAULT_CONCURRENCY: u32 = 4;

/// Everything a batch needs, shared by the run's requests.
struct Shared {
    spec: HttpSpec,
    templates: Templates,
    client: reqwest::Client,
    auth: Auth,
    limiter: Arc<limiter::AccountLimiter>,
    account: Map<String, Value>,
    secret_map: Map<String, Value>,
    secrets: Vec<String>,
    allow_link_local: bool,
    host: String,
}

/// An HTTP platform reached through one Account.
pub struct HttpPusher {
    shared: Arc<Shared>,
    max_batch: usize,
    max_age: Option<Duration>,
    concurrency: usize,
    group_by_namespace: bool,
    runtime: Arc<tokio::runtime::Runtime>,
}

/// The full chain of an error (reqwest hides the cause, e.g. a refused certificate, below).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// The start of a response body, for messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    crate::plan::text::truncate(String::from_utf8_lossy(body).trim(), 300)
}

fn remote(host: &str, message: String) -> ConnectorError {
    ConnectorError::Remote { connector: CONNECTOR, target: host.to_string(), message }
}

fn rejected(host: &str, message: String) -> ConnectorError {
    ConnectorError::Rejected { connector: CONNECTOR, target: host.to_string(), message }
}

impl HttpPusher {
    /// The pusher of an Account (`account`: `namespace/name`) on an HTTP Destination.
    pub fn new(
        destination: &DestinationSpec,
        account: &str,
        parameters: &BTreeMap<String, String>,
        connection: Option<&ConnectionSpec>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<Self, ConnectorError> {
        let spec = destination
            .http
            .clone()
            .ok_or_else(|| rejected(account, "the Destination has no spec.http request templates".into()))?;
        let auth_spec = spec.auth.as_ref();
        let templates = Templates::compile(&spec, auth_spec.and_then(|a| a.token_url.as_deref()))
            .map_err(|m| ConnectorError::Template { connector: CONNECTOR, message: m })?;
        let account_map: Map<String, Value> =
            parameters.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        let secret_map: Map<String, Value> =
            secrets.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        let token_url = match auth_spec.and_then(|a| a.token_url.as_ref()) {
            Some(_) => Some(
                templates
                    .token_url(&template::context(json!({"account": account_map})))
                    .map_err(|m| ConnectorError::Template { connector: CONNECTOR, message: m })?,
            ),
            None => None,
        };
        let auth = Auth::new(auth_spec, secrets, token_url, account)
            .map_err(|m| ConnectorError::Template { connector: CONNECTOR, message: m })?;
        let connection = connection.cloned().unwrap_or_default();
        let allow_link_local = connection.allow_link_local_addresses.unwrap_or(false);
        let limits = destination.limits.clone().unwrap_or_default();
        let lower = |a: Option<u32>, b: Option<u32>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let rate = limiter::Rate {
            requests_per_second: lower(limits.requests_per_second, connection.requests_per_second),
            max_concurrent: lower(limits.max_concurrent_requests, connection.max_concurrent_requests)
                .unwrap_or(DEFAULT_CONCURRENCY),
        };
        let host = reqwest::Url::parse(spec.add.url.split("{{").next().unwrap_or_default())
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| destination.display_name.clone());
        let mut client = reqwest::Client::builder()
            .dns_resolver(guard::GuardedResolver { allow_link_local })
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("outflow/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &connection.ca_bundle {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| rejected(&host, format!("spec.connection.caBundle: {}", error_chain(&e))))?;
            if certs.is_empty() {
                return Err(rejected(&host, "spec.connection.caBundle holds no PEM certificate".into()));
            }
            client = client.tls_certs_only(certs);
        }
        let client = client.build().map_err(|e| remote(&host, error_chain(&e)))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("outflow-http")
            .enable_all()
            .build()
            .map_err(|source| ConnectorError::Io { connector: CONNECTOR, target: host.clone(), source })?;
        let max_batch = limits.max_batch_size.map_or(DEFAULT_BATCH_SIZE, |n| n as usize).max(1);
        Ok(Self {
            max_batch,
            max_age: limits.max_batch_age_seconds.map(|s| Duration::from_secs(u64::from(s))),
            concurrency: rate.max_concurrent as usize,
            group_by_namespace: spec.group_by_identity_namespace.unwrap_or(false),
            shared: Arc::new(Shared {
                templates,
                client,
                auth,
                limiter: limiter::for_account(account, rate),
                account: account_map,
                secret_map,
                secrets: secrets.values().cloned().collect(),
                allow_link_local,
                host,
                spec,
            }),
            runtime: Arc::new(runtime),
        })
    }
}

impl Pusher for HttpPusher {
    fn describe(&self) -> String {
        format!("HTTP({})", self.shared.host)
    }

    /// Renders the add URL for an empty batch, checks where it points, resolves it through the
    /// address rules, and fetches an OAuth2 token. Nothing is sent to the platform's API.
    fn probe(&self) -> Result<(), ConnectorError> {
        let shared = self.shared.clone();
        self.runtime.block_on(async move {
            let context = json!({"account": shared.account, "secret": shared.secret_map, "rows": [], "action": "add",
                "segment": {"id": "", "name": ""}, "dataflow": "", "run": {"id": "", "scheduledTime": ""}, "identityNamespace": null});
            let rendered = shared
                .templates
                .url(&shared.spec, Action::Add, &template::context(&context))
                .map_err(|m| ConnectorError::Template { connector: CONNECTOR, message: shared.redact(&m) })?;
            let url = parse_url(&shared, &rendered)?;
            if let Some(host) = url.host_str()
                && host.parse::<std::net::IpAddr>().is_err()
            {
                let resolver = guard::GuardedResolver { allow_link_local: shared.allow_link_local };
                let name: reqwest::dns::Name = host.parse().map_err(|_| rejected(host, "not a host name".into()))?;
                let _addresses = reqwest::dns::Resolve::resolve(&resolver, name)
                    .await
                    .map_err(|e| rejected(host, shared.redact(&error_chain(e.as_ref()))))?;
            }
            shared.auth.check(&shared.client).await.map_err(|e| shared.token_error(e))
        })
    }

    fn start(&self, context: PushContext) -> Result<Box<dyn PushSession>, ConnectorError> {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Batch>(self.concurrency);
        let shared = self.shared.clone();
        let failure: Arc<Mutex<Option<String>>> = Arc::default();
        let concurrency = self.concurrency;
        let fatal = failure.clone();
        let worker = self.runtime.spawn(async move {
            let batches = futures::stream::unfold(receiver, |mut r| async move { r.recv().await.map(|b| (b, r)) });
            let mut results = std::pin::pin!(
                batches
                    .map(|batch| {
                        let (shared, fatal) = (shared.clone(), fatal.clone());
                        async move {
                            if fatal.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                                return Ok(PushOutcome::default());
                            }
                            let result = send_batch(&shared, batch).await;
                            if let Err(e) = &result {
                                fatal.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| e.to_string());
                            }
                            result
                        }
                    })
                    .buffer_unordered(concurrency)
            );
            let mut outcome = PushOutcome::default();
            let mut first_error = None;
            while let Some(result) = results.next().await {
                match result {
                    Ok(done) => outcome.merge(done),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            first_error.map_or(Ok(outcome), Err)
        });
        let base = json!({
            "account": self.shared.account,
            "secret": self.shared.secret_map,
            "segment": {"id": context.segment_id, "name": context.segment_name},
            "dataflow": context.dataflow,
            "run": {"id": context.run_id, "scheduledTime": crate::plan::schedule::format_time(context.scheduled)},
        });
        Ok(Box::new(HttpSession {
            base,
            context,
            open: HashMap::new(),
            sender: Some(sender),
            worker: Some(worker),
            failure,
            runtime: self.runtime.clone(),
            max_batch: self.max_batch,
            max_age: self.max_age,
            group_by_namespace: self.group_by_namespace,
            has_remove: self.shared.spec.remove.is_some(),
            host: self.shared.host.clone(),
            without_identity: 0,
        }))
    }
}

impl Shared {
    fn redact(&self, message: &str) -> String {
        redact(message, &self.secrets)
    }

    fn token_error(&self, e: TokenError) -> ConnectorError {
        let message = self.redact(&e.to_string());
        match e {
            TokenError::Refused { .. } => rejected(&self.host, message),
            TokenError::Unavailable(_) => remote(&self.host, message),
        }
    }
}

fn parse_url(shared: &Shared, url: &str) -> Result<reqwest::Url, ConnectorError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| ConnectorError::Template {
        connector: CONNECTOR,
        message: shared.redact(&format!("the URL '{url}' is not valid: {e}")),
    })?;
    guard::check_literal(&parsed, shared.allow_link_local).map_err(|m| rejected(&shared.host, m))?;
    Ok(parsed)
}

/// Rows sent in one request.
struct Batch {
    action: Action,
    rows: Vec<PushRow>,
    json: Vec<Value>,
    context: Value,
}

struct Pending {
    rows: Vec<PushRow>,
    json: Vec<Value>,
    opened: Instant,
}

struct HttpSession {
    base: Value,
    context: PushContext,
    open: HashMap<(Action, Option<String>), Pending>,
    sender: Option<tokio::sync::mpsc::Sender<Batch>>,
    worker: Option<tokio::task::JoinHandle<Result<PushOutcome, ConnectorError>>>,
    failure: Arc<Mutex<Option<String>>>,
    runtime: Arc<tokio::runtime::Runtime>,
    max_batch: usize,
    max_age: Option<Duration>,
    group_by_namespace: bool,
    has_remove: bool,
    host: String,
    without_identity: u64,
}

/// A row as templates see it.
pub fn row_json(context: &PushContext, row: &PushRow) -> Value {
    json!({
        "id": row.profile_id,
        "status": row.status,
        "action": if row.is_exit() { "remove" } else { "add" },
        "lastQualificationTime": row.qualified_us.map(render_time),
        "fields": context.fields_json(row),
        "identities": context.identities_json(row),
    })
}

impl HttpSession {
    fn key(&self, row: &PushRow) -> (Action, Option<String>) {
        let action = if row.is_exit() && self.has_remove { Action::Remove } else { Action::Add };
        let namespace = self
            .group_by_namespace
            .then(|| {
                self.context
                    .identities
                    .iter()
                    .find(|(i, _)| row.values.get(*i).is_some_and(Option::is_some))
                    .map(|(_, ns)| ns.clone())
            })
            .flatten();
        (action, namespace)
    }

    fn send(&mut self, key: (Action, Option<String>)) -> Result<(), ConnectorError> {
        let Some(pending) = self.open.remove(&key) else { return Ok(()) };
        let (action, namespace) = key;
        let mut context = self.base.clone();
        context["action"] = json!(action.name());
        context["identityNamespace"] = json!(namespace);
        let batch = Batch { action, rows: pending.rows, json: pending.json, context };
        let sender = self.sender.as_ref().expect("open until finish");
        if sender.blocking_send(batch).is_err() {
            return Err(self.stopped());
        }
        self.check_failure()
    }

    fn stopped(&self) -> ConnectorError {
        let message = self.failure.lock().unwrap_or_else(|e| e.into_inner()).clone();
        remote(&self.host, message.unwrap_or_else(|| "the sender stopped".into()))
    }

    fn check_failure(&self) -> Result<(), ConnectorError> {
        match self.failure.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(_) => Err(self.stopped()),
            None => Ok(()),
        }
    }
}

impl PushSession for HttpSession {
    fn push(&mut self, row: PushRow) -> Result<(), ConnectorError> {
        if !self.context.matchable(&row) {
            self.without_identity += 1;
            return Ok(());
        }
        let key = self.key(&row);
        let json = row_json(&self.context, &row);
        let pending = self.open.entry(key.clone()).or_insert_with(|| Pending {
            rows: Vec::new(),
            json: Vec::new(),
            opened: Instant::now(),
        });
        pending.rows.push(row);
        pending.json.push(json);
        let full = pending.rows.len() >= self.max_batch;
        if full {
            self.send(key)?;
        }
        if let Some(age) = self.max_age {
            let stale: Vec<_> =
                self.open.iter().filter(|(_, p)| p.opened.elapsed() >= age).map(|(k, _)| k.clone()).collect();
            for key in stale {
                self.send(key)?;
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<PushOutcome, ConnectorError> {
        let mut keys: Vec<_> = self.open.keys().cloned().collect();
        keys.sort_by_key(|(a, ns)| (*a == Action::Remove, ns.clone()));
        let mut sent = Ok(());
        for key in keys {
            sent = sent.and_then(|()| self.send(key));
        }
        drop(self.sender.take());
        let worker = self.worker.take().expect("finished once");
        let joined =
            self.runtime.block_on(worker).map_err(|e| remote(&self.host, format!("the sender failed: {e}")))?;
        let mut outcome = joined?;
        outcome.without_identity += self.without_identity;
        sent.map(|()| outcome)
    }
}

impl Drop for HttpSession {
    fn drop(&mut self) {
        // An aborted run: stop sending what is queued.
        drop(self.sender.take());
        if let Some(worker) = self.worker.take() {
            worker.abort();
        }
    }
}

/// Sends one batch until it is delivered, rejected, or the run must fail.
async fn send_batch(shared: &Shared, batch: Batch) -> Result<PushOutcome, ConnectorError> {
    let mut outcome = PushOutcome::default();
    let mut context = batch.context;
    context["rows"] = Value::Array(batch.json);
    let rendered = shared
        .templates
        .request(&shared.spec, batch.action, &template::context(&context))
        .map_err(|m| ConnectorError::Template { connector: CONNECTOR, message: shared.redact(&m) })?;
    let Value::Array(rows_json) = context["rows"].take() else { unreachable!("set above") };
    let url = parse_url(shared, &rendered.url)?;
    let body = rendered.body.unwrap_or_default().into_bytes();
    let mut refreshed = false;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let permit = shared.limiter.acquire().await;
        let mut request = shared.client.request(rendered.method.clone(), url.clone());
        for (name, value) in rendered.headers.iter().filter(|(_, v)| !v.trim().is_empty()) {
            request = request.header(name.as_str(), value.trim());
        }
        let generation = shared.auth.generation();
        request = shared.auth.apply(&shared.client, request, &body).await.map_err(|e| shared.token_error(e))?;
        outcome.requests += 1;
        let sent = request.body(body.clone()).send().await;
        let (status, retry_after, response) = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                (Some(status), retry_after, Ok(body))
            }
            Err(e) => (None, None, Err(shared.redact(&error_chain(&e)))),
        };
        drop(permit);
        if let Err(message) = &response
            && (message.contains("allowLinkLocalAddresses") || message.to_lowercase().contains("certificate"))
        {
            return Err(rejected(&shared.host, message.clone()));
        }
        let what = || match (&response, status) {
            (Ok(body), Some(status)) => shared.redact(&format!("HTTP {status}: {}", snippet(body))),
            (Err(message), _) => message.clone(),
            (Ok(_), None) => "no response".into(),
        };
        let step = next_step(
            status,
            retry_after.as_deref(),
            attempt,
            refreshed,
            shared.auth.can_refresh(),
            chrono::Utc::now(),
            fastrand::f64(),
        );
        match step {
            Step::Delivered => {
                let body = response.unwrap_or_default();
                let failed = match (&shared.spec.row_errors, serde_json::from_slice::<Value>(&body)) {
                    (Some(spec), Ok(parsed)) => row_errors::rejected(&parsed, spec, &rows_json),
                    _ => Vec::new(),
                };
                for (index, reason) in &failed {
                    outcome.reject(&batch.rows[*index], &shared.redact(reason));
                }
                outcome.delivered += (batch.rows.len() - failed.len()) as u64;
                return Ok(outcome);
            }
            Step::RetryAfter(delay) => {
                tracing::debug!(host = %shared.host, attempt, ?delay, error = %what(), "request failed; retrying");
                tokio::time::sleep(delay).await;
            }
            Step::RefreshToken => {
                shared.auth.refused(generation).await;
                refreshed = true;
            }
            Step::Unauthorized => return Err(rejected(&shared.host, format!("credentials refused: {}", what()))),
            Step::RejectBatch => {
                let reason = what();
                for row in &batch.rows {
                    outcome.reject(row, &reason);
                }
                return Ok(outcome);
            }
            Step::GiveUp => {
                return Err(remote(&shared.host, format!("gave up after {attempt} attempts: {}", what())));
            }
        }
    }
}
