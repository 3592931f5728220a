//! Long text cut short for messages: an error quotes the input it refuses, and input from
//! outside can be a line of hundreds of megabytes that an answer or a target's last error
//! would otherwise carry whole.

use std::borrow::Cow;

/// Longest message about refused outside input kept (a scrape's parse error, a target's last
/// error): it quotes what it refuses.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// `text` cut to at most `max_bytes` (at a character boundary), saying how much was left out.
pub fn excerpt(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return text.into();
    }
    let cut = (0..=max_bytes).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}... ({} more bytes)", &text[..cut], text.len() - cut).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(excerpt("ééé", 3), "é... (4 more bytes)");
        assert_eq!(excerpt(&"x".repeat(100), 10), "xxxxxxxxxx... (90 more bytes)");
    }
}
