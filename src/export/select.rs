//! Which profiles a run exports: segment membership (full or incremental), consent, mandatory
//! fields and deduplication. Pure functions over values already read from a batch.

use std::collections::HashSet;

/// Membership statuses.
pub const REALIZED: &str = "realized";
pub const EXISTING: &str = "existing";
pub const EXITED: &str = "exited";

/// Whether a profile's membership in the exported segment makes it part of this run.
/// `watermark_us` is `Some` only for an incremental run that follows a successful one: it then
/// takes changes qualified strictly after the watermark, exits included (so the platform can
/// remove them). Otherwise (full runs, first incremental run) the current members.
pub fn is_selected(status: Option<&str>, qualified_us: Option<i64>, watermark_us: Option<i64>) -> bool {
    let Some(status) = status else { return false };
    match watermark_us {
        None => status == REALIZED || status == EXISTING,
        Some(w) => {
            qualified_us.is_some_and(|t| t > w) && (status == REALIZED || status == EXISTING || status == EXITED)
        }
    }
}

/// Whether the profile consented to marketing email (`y`).
pub fn has_email_consent(val: Option<&str>) -> bool {
    val.is_some_and(|v| v.trim().eq_ignore_ascii_case("y"))
}

/// Whether every mandatory field has a non-empty value.
pub fn has_mandatory(values: &[Option<String>], mandatory: &[usize]) -> bool {
    mandatory.iter().all(|&i| values.get(i).and_then(|v| v.as_deref()).is_some_and(|v| !v.trim().is_empty()))
}

/// What happened to a member of the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Exported,
    ExcludedConsent,
    ExcludedMandatory,
    Duplicate,
}

/// Remembers dedup keys already exported (first occurrence wins).
#[derive(Debug, Default)]
pub struct Deduplicator {
    seen: HashSet<String>,
}

impl Deduplicator {
    /// True when the key was seen before. Profiles without a key are never duplicates.
    pub fn is_duplicate(&mut self, key: Option<String>) -> bool {
        match key {
            Some(k) => !self.seen.insert(k),
            None => false,
        }
    }
}

/// Decides a member's outcome in the order consent, mandatory fields, deduplication.
pub fn decide(
    enforce_consent: bool,
    consent: Option<&str>,
    values: &[Option<String>],
    mandatory: &[usize],
    dedup_key: Option<String>,
    dedup: &mut Deduplicator,
) -> Outcome {
    if enforce_consent && !has_email_consent(consent) {
        Outcome::ExcludedConsent
    } else if !has_mandatory(values, mandatory) {
        Outcome::ExcludedMandatory
    } else if dedup.is_duplicate(dedup_key) {
        Outcome::Duplicate
    } else {
        Outcome::Exported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_runs_take_current_members_only() {
        assert!(is_selected(Some("realized"), Some(5), None));
        assert!(is_selected(Some("existing"), None, None));
        assert!(!is_selected(Some("exited"), Some(5), None));
        assert!(!is_selected(None, Some(5), None));
        assert!(!is_selected(Some("unknown"), Some(5), None));
    }

    #[test]
    fn incremental_runs_take_changes_after_the_watermark_exits_included() {
        assert!(is_selected(Some("exited"), Some(11), Some(10)));
        assert!(is_selected(Some("realized"), Some(11), Some(10)));
        assert!(!is_selected(Some("realized"), Some(10), Some(10)));
        assert!(!is_selected(Some("existing"), None, Some(10)));
    }

    #[test]
    fn consent_then_mandatory_then_duplicates() {
        let mut d = Deduplicator::default();
        let v = vec![Some("a".to_string()), None];
        assert_eq!(decide(true, Some("n"), &v, &[0], None, &mut d), Outcome::ExcludedConsent);
        assert_eq!(decide(true, None, &v, &[0], None, &mut d), Outcome::ExcludedConsent);
        assert_eq!(decide(false, Some("n"), &v, &[0], None, &mut d), Outcome::Exported);
        assert_eq!(decide(true, Some("y"), &v, &[1], None, &mut d), Outcome::ExcludedMandatory);
        assert_eq!(decide(true, Some(" Y "), &v, &[0], Some("k".into()), &mut d), Outcome::Exported);
        assert_eq!(decide(true, Some("y"), &v, &[0], Some("k".into()), &mut d), Outcome::Duplicate);
        assert_eq!(decide(true, Some("y"), &v, &[0], None, &mut d), Outcome::Exported);
    }

    #[test]
    fn empty_values_do_not_satisfy_mandatory() {
        assert!(!has_mandatory(&[Some("  ".into())], &[0]));
        assert!(has_mandatory(&[Some("x".into())], &[0]));
        assert!(has_mandatory(&[None], &[]));
    }
}
