//! The promotional-language warning of UTILITY templates.

use std::sync::LazyLock;

use regex::Regex;

use super::Report;
use crate::template_files::LanguageContent;

/// Words Meta's review reads as promotional, in the markets wabridge serves first (English,
/// Spanish, Portuguese). A UTILITY template carrying one is likely recategorised as MARKETING.
static PROMOTIONAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(discount|sale|offer|promo\w*|coupon|buy now|shop now|limited time|free shipping|descuento|oferta|rebaja|cup[oó]n|compra (ya|ahora)|env[ií]o gratis|por tiempo limitado|aprovecha|desconto|promo[çc][ãa]o|cupom|compre agora|frete gr[áa]tis|por tempo limitado|aproveite|black friday)\b|\d+\s?%\s?(off|de descuento|de desconto)",
    )
    .expect("regex")
});

pub(super) fn check_promotional(r: &mut Report<'_>, c: &LanguageContent) {
    let mut texts: Vec<(String, &str)> = Vec::new();
    if let Some(t) = c.header.as_ref().and_then(|h| h.text.as_deref()) {
        texts.push(("header.text".into(), t));
    }
    if let Some(b) = &c.body {
        texts.push(("body.text".into(), &b.text));
    }
    if let Some(f) = &c.footer {
        texts.push(("footer".into(), f));
    }
    for (i, b) in c.buttons.iter().enumerate() {
        if let Some(t) = &b.text {
            texts.push((format!("buttons[{i}].text"), t));
        }
    }
    for (field, text) in texts {
        if let Some(m) = PROMOTIONAL.find(text) {
            r.warn(
                field,
                format!(
                    "`{}` reads as promotional: Meta recategorises a UTILITY template with offers, discounts or calls to buy as MARKETING (billed as marketing, sent only with marketing opt-in)",
                    m.as_str()
                ),
            );
        }
    }
}
