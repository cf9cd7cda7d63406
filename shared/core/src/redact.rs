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

/// An event key or effect id for a log line or a dead-letter reason: keys carry the sender's
/// number in some families (`p:{wa_id}:…` of user preferences), so their digit runs are masked.
pub fn key(key: &str) -> String {
    mask_digit_runs(key)
}

/// Where and what kind of problem a JSON document that holds secrets has, without serde's own
/// words: "invalid type: integer `…`" would quote a secret given as a number.
pub fn json_problem(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "malformed JSON",
        serde_json::error::Category::Data => "a field of the wrong type, missing or unknown",
        serde_json::error::Category::Io => "unreadable",
    };
    format!("<{what} at line {} column {}>", e.line(), e.column())
}

/// `text` with every run of 7 or more digits (phone numbers, wa_ids, the digits of BSUIDs)
/// masked by [`mask`] and control characters turned into spaces: for text we did not write
/// (a CRM's error body, a queued message) before it reaches a log line or a dead-letter reason.
pub fn mask_digit_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 7 {
            out.push_str(&mask(digits));
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        flush(&mut digits, &mut out);
        out.push(if c.is_control() { ' ' } else { c });
    }
    flush(&mut digits, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::{mask, mask_digit_runs};

    #[test]
    fn digit_runs_in_free_text_are_masked() {
        assert_eq!(
            mask_digit_runs("Property values were not valid: phone=+5215512345678\nid 42"),
            "Property values were not valid: phone=+521********78 id 42"
        );
    }

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
