//! Reference codes: short, unambiguous tokens that a tracked link puts in the prefilled text of
//! the customer's first message, so a message can be tied back to the link's UTMs.
//!
//! A code is [`CODE_LEN`] characters of [`ALPHABET`] (no `0/O`, `1/I/L`: people read codes off
//! posters and retype them). In the text it travels as `[ref:CODE]`; detection is
//! case-insensitive and tolerant of spaces, and the token is removed from the customer's text so
//! it is never taken for something the customer said.

use std::sync::LazyLock;

use regex::Regex;

/// Characters of a code: digits and upper-case letters that cannot be confused with each other.
pub const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Length of a new code: 31^6 ≈ 887 million codes.
pub const CODE_LEN: usize = 6;

/// `[ref:CODE]` (any case, spaces allowed inside the brackets). Lengths 4–12 are recognised so a
/// mistyped or foreign code is still found and recorded as unknown rather than left in the text.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\[\s*ref\s*[:#]\s*([a-z0-9]{4,12})\s*\]").expect("valid regex")
});

/// A new random code.
pub fn generate() -> String {
    (0..CODE_LEN)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Whether `code` could have been produced by [`generate`] (after upper-casing).
pub fn is_well_formed(code: &str) -> bool {
    code.len() == CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))
}

/// The token that carries `code` in a text.
pub fn token(code: &str) -> String {
    format!("[ref:{code}]")
}

/// A code found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Upper-cased code.
    pub code: String,
    /// The text without the token (whitespace around it tidied); `None` when nothing is left.
    pub text: Option<String>,
}

/// Finds the first reference token in `text`, and returns the code with the text stripped of
/// every token (a customer who pasted the link twice still says nothing about codes).
pub fn find(text: &str) -> Option<Found> {
    let first = TOKEN.captures(text)?;
    let code = first.get(1)?.as_str().to_ascii_uppercase();
    let stripped = TOKEN.replace_all(text, " ");
    // Collapse the runs of spaces the removal leaves, keep line breaks.
    let tidy: Vec<String> = stripped
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let tidy = tidy.join("\n").trim().to_string();
    Some(Found {
        code,
        text: (!tidy.is_empty()).then_some(tidy),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_well_formed_and_unambiguous() {
        for _ in 0..1000 {
            let c = generate();
            assert!(is_well_formed(&c), "{c}");
            assert!(!c.contains(['0', 'O', '1', 'I', 'L']), "{c}");
        }
        assert!(!is_well_formed("AB12CD"), "1 is not in the alphabet");
        assert!(!is_well_formed("ABCDE"));
    }

    #[test]
    fn finds_and_strips_the_token() {
        let f = find("Hola, quiero información [ref:AB23CD]").unwrap();
        assert_eq!(f.code, "AB23CD");
        assert_eq!(f.text.as_deref(), Some("Hola, quiero información"));

        let f = find("[REF: ab23cd ] ¿tienen envío a Monterrey?").unwrap();
        assert_eq!(f.code, "AB23CD");
        assert_eq!(f.text.as_deref(), Some("¿tienen envío a Monterrey?"));

        let f = find("Oi [ref:XY34ZW] quero saber mais\nobrigado [ref:XY34ZW]").unwrap();
        assert_eq!(f.code, "XY34ZW");
        assert_eq!(f.text.as_deref(), Some("Oi quero saber mais\nobrigado"));
    }

    #[test]
    fn a_message_that_is_only_the_token_has_no_text() {
        assert_eq!(find(" [ref:AB23CD] ").unwrap().text, None);
    }

    #[test]
    fn text_without_a_token_is_not_a_code() {
        assert_eq!(find("Hola, ref AB23CD"), None);
        assert_eq!(find("[ref:AB]"), None, "too short to be a code");
        assert_eq!(find(""), None);
    }

    #[test]
    fn malformed_codes_are_still_found_so_they_can_be_recorded_as_unknown() {
        let f = find("hola [ref:0000OOOO]").unwrap();
        assert_eq!(f.code, "0000OOOO");
        assert!(!is_well_formed(&f.code));
        assert_eq!(f.text.as_deref(), Some("hola"));
    }
}
