//! Text that people read on a screen — names of people, organisations, applications — must
//! show what it holds: no control characters, and none of the invisible formatting characters
//! that reorder or hide text (bidirectional overrides and isolates, zero-width characters, the
//! byte order mark), with which "Alice" can be made to display as someone else.

/// Whether `c` would not show as itself: a control character, or an invisible character that
/// changes how the text around it displays.
pub fn hides_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// Whether every character of `s` shows as itself (see [`hides_text`]).
pub fn displays_as_written(s: &str) -> bool {
    !s.chars().any(hides_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_reordering_characters_are_caught() {
        assert!(displays_as_written("Zoë O'Brien-Smith"));
        assert!(displays_as_written("محمد"));
        for bad in [
            "Ali\u{202e}ecila",
            "A\u{200b}da",
            "\u{feff}Ada",
            "Ada\u{2066}",
            "A\nB",
        ] {
            assert!(!displays_as_written(bad), "{bad:?}");
        }
    }
}
