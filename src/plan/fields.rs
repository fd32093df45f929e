//! The profile fields a Dataflow can export: dotted XDM paths into the profile store's records.

use std::fmt;

/// A profile field a Dataflow can read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceField {
    ProfileId,
    FirstName,
    LastName,
    Email,
    Phone,
    City,
    Country,
    PostalCode,
    EmailConsent,
    /// The primary id of an identity namespace (`identityMap.email`).
    Identity(String),
    /// The profile's membership status in the exported segment.
    SegmentStatus,
    /// When the profile last qualified for (or exited) the exported segment.
    SegmentQualificationTime,
}

/// The value type of a field, for the checks that depend on it (hashing needs a string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Timestamp,
}

/// Paths of the fixed (non-identity) fields, for error messages and parsing.
pub const KNOWN_PATHS: &[(&str, SourceField)] = &[
    ("profile_id", SourceField::ProfileId),
    ("person.name.firstName", SourceField::FirstName),
    ("person.name.lastName", SourceField::LastName),
    ("personalEmail.address", SourceField::Email),
    ("mobilePhone.number", SourceField::Phone),
    ("homeAddress.city", SourceField::City),
    ("homeAddress.country", SourceField::Country),
    ("homeAddress.postalCode", SourceField::PostalCode),
    ("consents.marketing.email.val", SourceField::EmailConsent),
    ("segmentMembership.status", SourceField::SegmentStatus),
    ("segmentMembership.lastQualificationTime", SourceField::SegmentQualificationTime),
];

/// Why a source path is not a profile field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown profile field '{path}'; use one of {known}, or identityMap.<namespace>")]
pub struct UnknownField {
    pub path: String,
    pub known: String,
}

impl SourceField {
    pub fn parse(path: &str) -> Result<Self, UnknownField> {
        if let Some(ns) = path.strip_prefix("identityMap.")
            && !ns.is_empty()
            && !ns.contains('.')
        {
            return Ok(Self::Identity(ns.to_string()));
        }
        KNOWN_PATHS.iter().find(|(p, _)| *p == path).map(|(_, f)| f.clone()).ok_or_else(|| UnknownField {
            path: path.to_string(),
            known: KNOWN_PATHS.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", "),
        })
    }

    pub fn field_type(&self) -> FieldType {
        match self {
            Self::SegmentQualificationTime => FieldType::Timestamp,
            _ => FieldType::String,
        }
    }

    /// The identity namespace the field holds, if it is an identity (an email address or a
    /// phone number read from its own field counts as that namespace for hashing rules).
    pub fn identity_namespace(&self) -> Option<&str> {
        match self {
            Self::Identity(ns) => Some(ns),
            Self::Email => Some("email"),
            Self::Phone => Some("phone"),
            _ => None,
        }
    }
}

impl fmt::Display for SourceField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Identity(ns) => write!(f, "identityMap.{ns}"),
            other => {
                let path = KNOWN_PATHS.iter().find(|(_, field)| field == other).map(|(p, _)| *p).unwrap_or("?");
                f.write_str(path)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_identities() {
        assert_eq!(SourceField::parse("person.name.firstName"), Ok(SourceField::FirstName));
        assert_eq!(SourceField::parse("identityMap.crmId"), Ok(SourceField::Identity("crmId".into())));
        assert_eq!(SourceField::parse("identityMap.email").unwrap().to_string(), "identityMap.email");
        assert_eq!(SourceField::parse("homeAddress.postalCode").unwrap().to_string(), "homeAddress.postalCode");
    }

    #[test]
    fn unknown_paths_list_the_known_ones() {
        let err = SourceField::parse("person.nme.firstName").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "unknown profile field 'person.nme.firstName'; use one of profile_id, person.name.firstName"
            )
        );
        assert!(SourceField::parse("identityMap.").is_err());
        assert!(SourceField::parse("identityMap.a.b").is_err());
    }
}
