//! Value transforms (Trim, Lowercase, SHA256) and the normalization SHA256 applies first.

use sha2::{Digest, Sha256};

use crate::api::Transform;

/// How a value is normalized before hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalization {
    /// Trimmed and lower-cased.
    Email,
    /// E.164: keep a leading '+', strip spaces, dashes, dots and parentheses, "00" prefix → '+'.
    Phone,
    /// Trimmed only.
    Plain,
}

impl Normalization {
    /// The normalization of an identity namespace (`email`, `phone`, anything else).
    pub fn for_namespace(namespace: Option<&str>) -> Self {
        match namespace {
            Some(ns) if ns.eq_ignore_ascii_case("email") => Self::Email,
            Some(ns) if ns.eq_ignore_ascii_case("phone") => Self::Phone,
            _ => Self::Plain,
        }
    }
}

/// Trimmed and lower-cased.
pub fn normalize_email(value: &str) -> String {
    value.trim().to_lowercase()
}

/// E.164 digits: `"+1 (415) 555-0101"` → `"+14155550101"`, `"0044 20 7946 0958"` → `"+442079460958"`.
pub fn normalize_phone(value: &str) -> String {
    let trimmed = value.trim();
    let plus = trimmed.starts_with('+');
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if plus {
        format!("+{digits}")
    } else if let Some(rest) = digits.strip_prefix("00") {
        format!("+{rest}")
    } else {
        digits
    }
}

/// Whether a value already is a SHA-256 hex digest.
pub fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// SHA-256 of the normalized value, in lower-case hex; a value that already is a digest is
/// only lower-cased.
pub fn sha256(value: &str, normalization: Normalization) -> String {
    let trimmed = value.trim();
    if is_sha256_hex(trimmed) {
        return trimmed.to_ascii_lowercase();
    }
    let normalized = match normalization {
        Normalization::Email => normalize_email(trimmed),
        Normalization::Phone => normalize_phone(trimmed),
        Normalization::Plain => trimmed.to_string(),
    };
    hex(&Sha256::digest(normalized.as_bytes()))
}

/// Applies transforms in order.
pub fn apply(value: String, transforms: &[Transform], normalization: Normalization) -> String {
    let mut v = value;
    for t in transforms {
        v = match t {
            Transform::Trim => v.trim().to_string(),
            Transform::Lowercase => v.to_lowercase(),
            Transform::Sha256 => sha256(&v, normalization),
        };
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_vectors() {
        assert_eq!(
            sha256("test@example.com", Normalization::Plain),
            "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
        );
        // Emails are normalized first.
        assert_eq!(
            sha256("  Test@Example.COM ", Normalization::Email),
            "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
        );
        assert_eq!(
            sha256("", Normalization::Plain),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn an_existing_digest_is_left_alone() {
        let d = "973DFE463EC85785F5F95AF5BA3906EEDB2D931C24E69824A89EA65DBA4E813B";
        assert_eq!(sha256(d, Normalization::Email), d.to_ascii_lowercase());
        assert_eq!(
            apply(d.to_ascii_lowercase(), &[Transform::Sha256, Transform::Sha256], Normalization::Email),
            d.to_ascii_lowercase()
        );
    }

    #[test]
    fn phones_become_e164() {
        assert_eq!(normalize_phone("+1 (415) 555-0101"), "+14155550101");
        assert_eq!(normalize_phone("0044 20 7946 0958"), "+442079460958");
        assert_eq!(normalize_phone(" +33-1-234-5678 "), "+3312345678");
        assert_eq!(sha256("+1 (415) 555-0101", Normalization::Phone), sha256("+14155550101", Normalization::Plain));
    }

    #[test]
    fn transforms_apply_in_order() {
        assert_eq!(apply("  MiXed ".into(), &[Transform::Trim], Normalization::Plain), "MiXed");
        assert_eq!(apply("  MiXed ".into(), &[Transform::Lowercase], Normalization::Plain), "  mixed ");
        assert_eq!(apply("  MiXed ".into(), &[Transform::Trim, Transform::Lowercase], Normalization::Plain), "mixed");
        assert_eq!(
            apply(" A@B.C ".into(), &[Transform::Sha256], Normalization::Email),
            sha256("a@b.c", Normalization::Plain)
        );
    }
}
