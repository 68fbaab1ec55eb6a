//! Tenant text cut to a readable length, for error messages and tail events: a tenant can pass
//! a 512 MiB URL or log a 50 MiB line.

use std::borrow::Cow;

/// `text` cut to at most `max_bytes` (at a character boundary), saying how long it was.
pub fn truncated(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return text.into();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &text[..end], text.len()).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_is_cut_at_a_character_boundary() {
        assert_eq!(super::truncated("short", 10), "short");
        assert_eq!(super::truncated("héllo", 2), "h... (6 bytes in all)");
    }
}
