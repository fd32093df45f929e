//! Request authentication from the Account's Secret. OAuth2 tokens are cached per Account until
//! shortly before they expire, shared by the runs of this process, and fetched again after a 401.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{KeyInit, Mac};

use crate::api::{AuthType, HmacAlgorithm, HttpAuth};

/// How requests authenticate.
pub enum Auth {
    None,
    Bearer(String),
    Basic { username: String, password: String },
    ApiKey { header: String, key: String },
    OAuth2(OAuth2),
    Hmac { header: String, key: Vec<u8>, algorithm: HmacAlgorithm },
}

/// An OAuth2 client: client credentials, or a refresh token when the Secret has one.
pub struct OAuth2 {
    pub token_url: String,
    client_id: String,
    client_secret: String,
    refresh_token: Option<String>,
    scopes: Vec<String>,
    cache: Arc<TokenCache>,
}

/// The current token of one Account.
#[derive(Default)]
pub struct TokenCache {
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
    /// Bumped when a token is refused, so concurrent batches refresh it once, not each.
    generation: Mutex<u64>,
}

/// Token caches by Account and token endpoint.
type TokenCaches = Mutex<HashMap<(String, String), Arc<TokenCache>>>;

static TOKENS: LazyLock<TokenCaches> = LazyLock::new(Default::default);

/// The refresh margin: a token this close to its expiry is fetched again.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

fn secret<'a>(secrets: &'a BTreeMap<String, String>, keys: &[&str]) -> Option<&'a String> {
    keys.iter().find_map(|k| secrets.get(*k).filter(|v| !v.trim().is_empty()))
}

fn missing(kind: &str, keys: &[&str]) -> String {
    format!("{kind} authentication needs the Secret key {}", keys.join(" or "))
}

impl Auth {
    /// The authentication the Destination asks for, with the Account's Secret values.
    /// `token_url` is the rendered OAuth2 endpoint; `account` keys the token cache.
    pub fn new(
        spec: Option<&HttpAuth>,
        secrets: &BTreeMap<String, String>,
        token_url: Option<String>,
        account: &str,
    ) -> Result<Self, String> {
        let Some(spec) = spec else { return Ok(Auth::None) };
        let need = |kind: &str, keys: &[&str]| secret(secrets, keys).cloned().ok_or_else(|| missing(kind, keys));
        Ok(match spec.kind {
            AuthType::None => Auth::None,
            AuthType::Bearer => Auth::Bearer(need("Bearer", &["token", "accessToken", "bearerToken"])?),
            AuthType::Basic => {
                Auth::Basic { username: need("Basic", &["username"])?, password: need("Basic", &["password"])? }
            }
            AuthType::ApiKey => Auth::ApiKey {
                header: spec.header.clone().unwrap_or_else(|| "X-API-Key".into()),
                key: need("ApiKey", &["apiKey"])?,
            },
            AuthType::HmacSignature => Auth::Hmac {
                header: spec.header.clone().unwrap_or_else(|| "X-Signature".into()),
                key: need("HmacSignature", &["secretKey"])?.into_bytes(),
                algorithm: spec.algorithm.unwrap_or(HmacAlgorithm::Sha256),
            },
            AuthType::OAuth2 => {
                let token_url = token_url.ok_or("OAuth2 authentication needs spec.http.auth.tokenUrl")?;
                let cache = TOKENS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry((account.to_string(), token_url.clone()))
                    .or_default()
                    .clone();
                Auth::OAuth2(OAuth2 {
                    client_id: need("OAuth2", &["clientId"])?,
                    client_secret: need("OAuth2", &["clientSecret"])?,
                    refresh_token: secret(secrets, &["refreshToken"]).cloned(),
                    scopes: spec.scopes.clone(),
                    token_url,
                    cache,
                })
            }
        })
    }

    /// Whether a 401 may be cured by fetching a new token.
    pub fn can_refresh(&self) -> bool {
        matches!(self, Auth::OAuth2(_))
    }

    /// A marker of the token a request was sent with, for [`Auth::refused`].
    pub fn generation(&self) -> u64 {
        match self {
            Auth::OAuth2(o) => *o.cache.generation.lock().unwrap_or_else(|e| e.into_inner()),
            _ => 0,
        }
    }

    /// Drops the cached token after a 401, unless another batch already did since `generation`.
    pub async fn refused(&self, generation: u64) {
        if let Auth::OAuth2(o) = self {
            let first = {
                let mut current = o.cache.generation.lock().unwrap_or_else(|e| e.into_inner());
                let first = *current == generation;
                if first {
                    *current += 1;
                }
                first
            };
            if first {
                *o.cache.token.lock().await = None;
            }
        }
    }

    /// Adds the credentials to a request whose body is `body`.
    pub async fn apply(
        &self,
        client: &reqwest::Client,
        request: reqwest::RequestBuilder,
        body: &[u8],
    ) -> Result<reqwest::RequestBuilder, TokenError> {
        Ok(match self {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
            Auth::ApiKey { header, key } => request.header(header.as_str(), key.as_str()),
            Auth::Hmac { header, key, algorithm } => request.header(header.as_str(), sign(*algorithm, key, body)),
            Auth::OAuth2(o) => request.bearer_auth(o.token(client).await?),
        })
    }

    /// Fetches a token when the authentication uses one (the Account's probe).
    pub async fn check(&self, client: &reqwest::Client) -> Result<(), TokenError> {
        match self {
            Auth::OAuth2(o) => o.token(client).await.map(|_| ()),
            _ => Ok(()),
        }
    }
}

/// Base64 of the HMAC of `body` with `key`.
pub fn sign(algorithm: HmacAlgorithm, key: &[u8], body: &[u8]) -> String {
    let digest = match algorithm {
        HmacAlgorithm::Sha1 => {
            let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(body);
            mac.finalize().into_bytes().to_vec()
        }
        HmacAlgorithm::Sha256 => {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(body);
            mac.finalize().into_bytes().to_vec()
        }
    };
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint refused the client: bad credentials.
    #[error("the token endpoint refused the credentials: HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    /// The endpoint could not be reached or answered oddly; may pass.
    #[error("could not fetch a token: {0}")]
    Unavailable(String),
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl OAuth2 {
    async fn token(&self, client: &reqwest::Client) -> Result<String, TokenError> {
        let mut cached = self.cache.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let mut form: Vec<(&str, &str)> = vec![("client_id", &self.client_id), ("client_secret", &self.client_secret)];
        match &self.refresh_token {
            Some(refresh) => form.extend([("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())]),
            None => form.push(("grant_type", "client_credentials")),
        }
        let scope = self.scopes.join(" ");
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        let response = client
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| TokenError::Unavailable(super::error_chain(&e)))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| TokenError::Unavailable(super::error_chain(&e)))?;
        if matches!(status, 400 | 401 | 403) {
            return Err(TokenError::Refused { status, body: super::snippet(&body) });
        }
        if !(200..300).contains(&status) {
            return Err(TokenError::Unavailable(format!("HTTP {status}: {}", super::snippet(&body))));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| TokenError::Unavailable(format!("the token response is not a token: {e}")))?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600)).saturating_sub(EXPIRY_MARGIN);
        *cached = Some((parsed.access_token.clone(), Instant::now() + lifetime));
        Ok(parsed.access_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn spec(kind: AuthType) -> HttpAuth {
        HttpAuth { kind, header: None, token_url: None, scopes: vec![], algorithm: None }
    }

    #[test]
    fn hmac_signatures_match_rfc_4231_and_2202() {
        // RFC 4231 test case 2 and RFC 2202 test case 2, as base64.
        assert_eq!(
            sign(HmacAlgorithm::Sha256, b"Jefe", b"what do ya want for nothing?"),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
        );
        assert_eq!(sign(HmacAlgorithm::Sha1, b"Jefe", b"what do ya want for nothing?"), "7/zfauXrL6LSdBbV8YTfnCWafHk=");
    }

    #[test]
    fn missing_secret_keys_are_named() {
        let err = Auth::new(Some(&spec(AuthType::Bearer)), &secrets(&[]), None, "ns/a").err().unwrap();
        assert_eq!(err, "Bearer authentication needs the Secret key token or accessToken or bearerToken");
        let err =
            Auth::new(Some(&spec(AuthType::OAuth2)), &secrets(&[("clientId", "c")]), Some("http://t".into()), "ns/a")
                .err()
                .unwrap();
        assert_eq!(err, "OAuth2 authentication needs the Secret key clientSecret");
        assert!(Auth::new(Some(&spec(AuthType::ApiKey)), &secrets(&[("apiKey", "k")]), None, "ns/a").is_ok());
    }
}
