//! Text helpers for messages that go into status and Events, which have size limits.

/// At most `max` bytes of `text`, cut on a character boundary, with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(super::truncate("héllo", 2), "h…");
        assert_eq!(super::truncate("hello", 10), "hello");
    }
}
