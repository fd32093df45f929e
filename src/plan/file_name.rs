//! File name templates: `%DESTINATION%_%SEGMENT_ID%_%DATETIME(YYYYMMdd_HHmmss)%`.

use chrono::{DateTime, Utc};

/// The longest file name a template may produce.
pub const MAX_FILE_NAME: usize = 255;

/// What a template is rendered with.
pub struct FileNameContext<'a> {
    pub destination: &'a str,
    pub segment_id: &'a str,
    pub segment_name: &'a str,
    pub scheduled: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unknown macro %{0}% (use %DESTINATION%, %SEGMENT_ID%, %SEGMENT_NAME%, %DATETIME(format)%, %TIMESTAMP%)")]
    UnknownMacro(String),
    #[error("a '%' opens a macro that is never closed")]
    Unclosed,
    #[error("the file name is {0} characters long; at most 255 are allowed")]
    TooLong(usize),
    #[error("the file name contains '{0}', which is not allowed in a file name")]
    BadCharacter(char),
}

enum Piece<'t> {
    Text(&'t str),
    Destination,
    SegmentId,
    SegmentName,
    DateTime(&'t str),
    Timestamp,
}

fn pieces(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('%') {
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + 1..];
        let end = after.find('%').ok_or(TemplateError::Unclosed)?;
        let name = &after[..end];
        out.push(match name {
            "DESTINATION" => Piece::Destination,
            "SEGMENT_ID" => Piece::SegmentId,
            "SEGMENT_NAME" => Piece::SegmentName,
            "TIMESTAMP" => Piece::Timestamp,
            _ => match name.strip_prefix("DATETIME(").and_then(|f| f.strip_suffix(')')) {
                Some(format) => Piece::DateTime(format),
                None => return Err(TemplateError::UnknownMacro(name.to_string())),
            },
        });
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// Checks a template's macros without rendering it.
pub fn validate(template: &str) -> Result<(), TemplateError> {
    pieces(template).map(|_| ())
}

/// Whether each run gets its own name (otherwise each run overwrites the previous file).
pub fn has_time_macro(template: &str) -> bool {
    pieces(template).map(|p| p.iter().any(|p| matches!(p, Piece::DateTime(_) | Piece::Timestamp))).unwrap_or(false)
}

/// Renders a template into a file name (without the extension).
pub fn render(template: &str, ctx: &FileNameContext<'_>) -> Result<String, TemplateError> {
    let mut out = String::new();
    for piece in pieces(template)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Destination => out.push_str(&sanitize(ctx.destination)),
            Piece::SegmentId => out.push_str(&sanitize(ctx.segment_id)),
            Piece::SegmentName => out.push_str(&sanitize(ctx.segment_name)),
            Piece::Timestamp => out.push_str(&ctx.scheduled.timestamp().to_string()),
            Piece::DateTime(format) => out.push_str(&format_datetime(format, ctx.scheduled)),
        }
    }
    if let Some(bad) = out.chars().find(|c| matches!(c, '/' | '\\' | '\0' | ':' | '*' | '?' | '"' | '<' | '>' | '|')) {
        return Err(TemplateError::BadCharacter(bad));
    }
    if out.len() > MAX_FILE_NAME {
        return Err(TemplateError::TooLong(out.len()));
    }
    Ok(out)
}

/// Values that go into a name keep letters, digits, `-`, `_` and `.`; the rest becomes `_`.
fn sanitize(value: &str) -> String {
    value.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}

/// Formats with the tokens people know from the CDP: YYYY, MM, dd, HH, mm, ss.
fn format_datetime(format: &str, t: DateTime<Utc>) -> String {
    let tokens = [("YYYY", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")];
    let mut strftime = String::new();
    let mut rest = format;
    'outer: while !rest.is_empty() {
        for (token, spec) in tokens {
            if let Some(r) = rest.strip_prefix(token) {
                strftime.push_str(spec);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        if c == '%' {
            strftime.push_str("%%");
        } else {
            strftime.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    t.format(&strftime).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> FileNameContext<'static> {
        FileNameContext {
            destination: "Amazon S3",
            segment_id: "seg-high-value",
            segment_name: "High value",
            scheduled: DateTime::parse_from_rfc3339("2026-03-04T05:06:07Z").unwrap().with_timezone(&Utc),
        }
    }

    #[test]
    fn renders_every_macro() {
        let name =
            render("%DESTINATION%_%SEGMENT_ID%_%SEGMENT_NAME%_%DATETIME(YYYYMMdd_HHmmss)%_%TIMESTAMP%_export", &ctx())
                .unwrap();
        assert_eq!(name, "Amazon_S3_seg-high-value_High_value_20260304_050607_1772600767_export");
    }

    #[test]
    fn unknown_macros_and_unclosed_percent_are_refused() {
        assert_eq!(validate("%SEGMENT%").unwrap_err(), TemplateError::UnknownMacro("SEGMENT".into()));
        assert_eq!(validate("a_%SEGMENT_ID").unwrap_err(), TemplateError::Unclosed);
    }

    #[test]
    fn names_over_255_characters_are_refused() {
        let long = "x".repeat(300);
        assert_eq!(render(&long, &ctx()).unwrap_err(), TemplateError::TooLong(300));
    }

    #[test]
    fn knows_whether_runs_overwrite_each_other() {
        assert!(has_time_macro("%SEGMENT_ID%_%TIMESTAMP%"));
        assert!(!has_time_macro("%SEGMENT_ID%_latest"));
    }
}
