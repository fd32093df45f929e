//! The request templates of an HTTP destination, compiled once per run and rendered per batch.

use minijinja::{Environment, UndefinedBehavior, Value};
use sha2::Digest;

use crate::api::{HttpRequestTemplate, HttpSpec};

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

/// Which request a batch is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Add,
    Remove,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Remove => "remove",
        }
    }
}

/// A rendered request.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// A template context from anything serializable.
pub fn context<T: serde::Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

fn sha256_filter(value: String) -> String {
    crate::export::transform::hex(&sha2::Sha256::digest(value.as_bytes()))
}

fn base64_filter(value: String) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
}

impl Templates {
    /// Compiles every template; an error names the Destination field.
    pub fn compile(spec: &HttpSpec, token_url: Option<&str>) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("sha256", sha256_filter);
        env.add_filter("base64", base64_filter);
        let mut add = |name: String, source: &str| {
            env.add_template_owned(name.clone(), source.to_string())
                .map_err(|e| format!("spec.http.{name}: {}", describe(&e)))
        };
        for (action, request) in [("add", Some(&spec.add)), ("remove", spec.remove.as_ref())] {
            let Some(request) = request else { continue };
            add(format!("{action}.url"), &request.url)?;
            if let Some(body) = &request.body {
                add(format!("{action}.body"), body)?;
            }
            for (header, value) in &request.headers {
                add(format!("{action}.headers.{header}"), value)?;
            }
        }
        if let Some(url) = token_url {
            add("auth.tokenUrl".into(), url)?;
        }
        Ok(Self { env })
    }

    fn render(&self, name: &str, context: &Value) -> Result<String, String> {
        let template = self.env.get_template(name).map_err(|e| format!("spec.http.{name}: {}", describe(&e)))?;
        template.render(context).map_err(|e| format!("spec.http.{name}: {}", describe(&e)))
    }

    /// Renders the request of `action` for one batch's context.
    pub fn request(&self, spec: &HttpSpec, action: Action, context: &Value) -> Result<Rendered, String> {
        let request: &HttpRequestTemplate = match action {
            Action::Remove => spec.remove.as_ref().unwrap_or(&spec.add),
            Action::Add => &spec.add,
        };
        let key = if action == Action::Remove && spec.remove.is_some() { "remove" } else { "add" };
        let method = match request.method.unwrap_or(crate::api::HttpMethod::Post) {
            crate::api::HttpMethod::Post => reqwest::Method::POST,
            crate::api::HttpMethod::Put => reqwest::Method::PUT,
            crate::api::HttpMethod::Patch => reqwest::Method::PATCH,
            crate::api::HttpMethod::Delete => reqwest::Method::DELETE,
        };
        let url = self.render(&format!("{key}.url"), context)?.trim().to_string();
        let headers = request
            .headers
            .keys()
            .map(|h| Ok((h.clone(), self.render(&format!("{key}.headers.{h}"), context)?)))
            .collect::<Result<Vec<_>, String>>()?;
        let body = match &request.body {
            Some(_) => Some(self.render(&format!("{key}.body"), context)?),
            None => None,
        };
        Ok(Rendered { method, url, headers, body })
    }

    /// Renders only the URL of `action` (the Account's probe has no rows to render a body with).
    pub fn url(&self, spec: &HttpSpec, action: Action, context: &Value) -> Result<String, String> {
        let key = if action == Action::Remove && spec.remove.is_some() { "remove" } else { "add" };
        self.render(&format!("{key}.url"), context).map(|u| u.trim().to_string())
    }

    /// Renders the OAuth2 token URL.
    pub fn token_url(&self, context: &Value) -> Result<String, String> {
        self.render("auth.tokenUrl", context).map(|u| u.trim().to_string())
    }
}

/// A template error with its line, without minijinja's multi-line debug dump.
fn describe(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!("{} (line {line})", e.detail().unwrap_or(&e.kind().to_string())),
        None => e.detail().map_or_else(|| e.kind().to_string(), str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(body: &str) -> HttpSpec {
        serde_json::from_value(json!({
            "add": {"url": "https://graph.example.com/{{ account.audienceId }}/users", "body": body,
                    "headers": {"Authorization": "Bearer {{ secret.token }}"}},
            "remove": {"method": "DELETE", "url": "https://graph.example.com/{{ account.audienceId }}/users", "body": body}
        }))
        .unwrap()
    }

    fn sample_context() -> Value {
        context(json!({
            "account": {"audienceId": "42"}, "secret": {"token": "t0k"}, "action": "add",
            "rows": [{"id": "p1", "identities": {"email": "ab12"}}, {"id": "p2", "identities": {"email": "cd34"}}]
        }))
    }

    #[test]
    fn a_batch_renders_url_headers_and_body() {
        let body = r#"{"payload": {"schema": ["EMAIL_SHA256"], "data": [{% for r in rows %}[{{ r.identities.email | tojson }}]{% if not loop.last %}, {% endif %}{% endfor %}]}}"#;
        let spec = spec(body);
        let t = Templates::compile(&spec, None).unwrap();
        let add = t.request(&spec, Action::Add, &sample_context()).unwrap();
        assert_eq!(add.method, reqwest::Method::POST);
        assert_eq!(add.url, "https://graph.example.com/42/users");
        assert_eq!(add.headers, vec![("Authorization".to_string(), "Bearer t0k".to_string())]);
        let parsed: serde_json::Value = serde_json::from_str(add.body.as_deref().unwrap()).unwrap();
        assert_eq!(parsed["payload"]["data"], json!([["ab12"], ["cd34"]]));
        assert_eq!(t.request(&spec, Action::Remove, &sample_context()).unwrap().method, reqwest::Method::DELETE);
    }

    #[test]
    fn template_errors_name_the_field() {
        let err = Templates::compile(&spec("{{ rows | tojson "), None).err().unwrap();
        assert!(err.starts_with("spec.http.add.body:"), "{err}");
        let spec = spec("{{ rows[0].nope }}");
        let t = Templates::compile(&spec, None).unwrap();
        let err = t.request(&spec, Action::Add, &sample_context()).unwrap_err();
        assert!(err.starts_with("spec.http.add.body:"), "{err}");
    }

    #[test]
    fn filters_hash_and_encode() {
        let spec = spec("{{ 'abc' | sha256 }} {{ 'x:y' | base64 }}");
        let r = Templates::compile(&spec, None).unwrap().request(&spec, Action::Add, &sample_context()).unwrap();
        assert_eq!(r.body.as_deref(), Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad eDp5"));
    }
}
