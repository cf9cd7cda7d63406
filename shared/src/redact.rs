//! Masking for logs: phone numbers and ids of people never appear whole in a log line.

/// Keeps the first 3 and last 2 characters of an identifier (`+5215512345678` →
/// `+52*********78`); shorter values are fully masked.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 5))
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn masks_middle_of_phone_numbers() {
        assert_eq!(mask("+5215512345678"), "+52*********78");
        assert_eq!(mask("5491123"), "549**23");
    }

    #[test]
    fn short_values_are_fully_masked() {
        assert_eq!(mask("12345"), "*****");
        assert_eq!(mask(""), "");
    }
}
