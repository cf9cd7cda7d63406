//! Identities of WhatsApp users and the store that maps every one of them to ONE contact.
//!
//! A person reaches us as a phone number (Meta's `wa_id`, or any spelling a CRM holds), as a
//! business-scoped user id (BSUID, `CC.…`), or both. The same phone has several spellings:
//!
//! - Mexico: Meta's `wa_id` keeps the old mobile `1` (`521 55 1234 5678`), people type
//!   `+52 1 55…`, `+52 55…` or local `044 55…` / `045 55…`; since 2019 the E.164 number is
//!   `+52` + 10 digits, without the `1`.
//! - Argentina: mobiles are `+54 9 <area> <number>` internationally (`wa_id` `549…`), but
//!   `0<area> 15 <number>` locally and often stored as `+54 <area> <number>` without the `9`.
//! - Brazil: mobiles gained a 9th digit (`+55 11 9xxxx xxxx`); old records and some `wa_id`s
//!   still have 8-digit subscriber numbers (`+55 11 xxxx xxxx`).
//!
//! [`Phone`] parses any of these into a canonical [`E164`] (what we show and send to CRMs) and a
//! [`Phone::key`] that is equal for every spelling of the same line, so identity lookups collide.
//!
//! Validity comes from libphonenumber's metadata as the `phonenumber` crate carries it (the
//! release is the crate version's build suffix in `Cargo.lock`, `0.3.10+9.0.33` → 9.0.33; see
//! docs/architecture.md, "Identity and phone metadata"). Numbers people type must be valid by
//! it ([`Phone::parse`]); Meta's `wa_id` names an account that exists, so one in a range the
//! metadata does not know yet is kept, marked unverified ([`Phone::verified`]).

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::StoreError;

/// Why an identity was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityError {
    #[error("not a phone number: {0}")]
    NotAPhone(String),
    #[error("not a valid phone number for its country: {0}")]
    InvalidPhone(String),
    #[error("not a BSUID (expected CC.<1-128 alphanumerics>): {0}")]
    NotABsuid(String),
}

/// A phone number in canonical E.164 form (`+` and 8 to 15 digits), after the country quirks
/// above were applied (Mexico without the `1`, Argentine mobiles with the `9`, Brazilian mobiles
/// with the 9th digit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

/// What the phone metadata says of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneValidity {
    /// In a range the metadata knows for its country.
    Valid,
    /// A length its country uses, in a range the metadata does not know (new ranges reach the
    /// metadata weeks after they reach people).
    Possible,
    /// An unknown country code, or a length its country does not use.
    Impossible,
}

impl E164 {
    /// Parses and validates a number people typed (international, or national with
    /// `default_region`, an ISO 3166 alpha-2 code such as `MX`). Strict: the number must be
    /// valid for its country according to libphonenumber's metadata.
    pub fn parse(input: &str, default_region: Option<&str>) -> Result<E164, IdentityError> {
        let phone = Phone::parse_with(input, default_region, true)?;
        Ok(phone.e164)
    }

    /// The canonical form of a number, valid by the phone metadata or not (the country quirks
    /// applied, no validity check): what a rule compares a value with.
    pub fn canonical(input: &str) -> Result<E164, IdentityError> {
        Ok(Phone::parse_with(input, None, false)?.e164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits without the `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// The country the number belongs to (ISO 3166 alpha-2, `MX`), when the phone metadata
    /// tells (a shared country code such as +1 is told apart by its area code).
    pub fn region(&self) -> Option<String> {
        let number = phonenumber::parse(None, self.as_str()).ok()?;
        number.country().id().map(|id| id.as_ref().to_string())
    }

    /// What the phone metadata says of this number, as written (no country quirk applied).
    pub fn validity(&self) -> PhoneValidity {
        match phonenumber::parse(None, self.as_str()) {
            Ok(number) => metadata_validity(&number),
            Err(_) => PhoneValidity::Impossible,
        }
    }
}

/// What the phone metadata says of a parsed number.
fn metadata_validity(number: &phonenumber::PhoneNumber) -> PhoneValidity {
    if number.is_valid() {
        return PhoneValidity::Valid;
    }
    // libphonenumber's "possible" test (`IS_POSSIBLE`), which the crate does not export:
    // the national length is one the main region of the country code uses for some type
    // of number. (libphonenumber's build step stores that union as the general lengths;
    // the crate reads the raw metadata, whose general lengths are empty.)
    let code = number.code().value();
    let length = national_digits(number).len() as u16;
    let regions = phonenumber::metadata::DATABASE
        .by_code(&code)
        .unwrap_or_default();
    let main = regions
        .iter()
        .find(|m| m.is_main_country_for_code())
        .or(regions.first());
    let Some(d) = main.map(|m| m.descriptors()) else {
        return PhoneValidity::Impossible;
    };
    let types = [
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ];
    let possible = types
        .into_iter()
        .flatten()
        .any(|t| t.possible_length().contains(&length));
    if possible {
        PhoneValidity::Possible
    } else {
        PhoneValidity::Impossible
    }
}

impl TryFrom<String> for E164 {
    type Error = IdentityError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let ok = value.starts_with('+')
            && (9..=16).contains(&value.len())
            && value[1..].bytes().all(|b| b.is_ascii_digit())
            && !value[1..].starts_with('0');
        if ok {
            Ok(E164(value))
        } else {
            Err(IdentityError::NotAPhone(value))
        }
    }
}

impl From<E164> for String {
    fn from(value: E164) -> String {
        value.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone identity: the canonical E.164 number, the lookup key shared by all its spellings, and
/// Meta's raw `wa_id` when it came from a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    pub e164: E164,
    /// Equal for every spelling of the same line (see [`Phone::key`]).
    key: String,
    /// Meta's `wa_id` exactly as received, when this phone came from Meta.
    pub wa_id: Option<String>,
    /// Whether the phone metadata knows the number ([`PhoneValidity::Valid`]). Always true for
    /// numbers people typed (they are refused otherwise); false for a `wa_id` the metadata does
    /// not know yet.
    pub verified: bool,
}

impl Phone {
    /// A `wa_id` (or `from`, `recipient_id`) from a webhook: digits with the country code, no
    /// `+`. Lenient: Meta's ids are accepted even where libphonenumber's metadata lags behind
    /// (new ranges, test numbers), as long as they are 8 to 15 digits; [`Phone::verified`] says
    /// whether the metadata knows the number.
    pub fn from_wa_id(wa_id: &str) -> Result<Phone, IdentityError> {
        let digits = wa_id.trim().trim_start_matches('+');
        if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentityError::NotAPhone(wa_id.to_string()));
        }
        let international = format!("+{digits}");
        // The crate strips what it takes for a national prefix even where libphonenumber keeps
        // it (`+1 1…`): Meta's digits are the account's, so a parse that changed them is not
        // used (the country quirks apply to the parsed digits only).
        let kept = phonenumber::parse(None, &international)
            .is_ok_and(|n| format!("{}{}", n.code().value(), national_digits(&n)) == digits);
        let parsed = Phone::parse_with(&international, None, false)
            .ok()
            .filter(|_| kept);
        let mut phone = match parsed {
            Some(p) => p,
            None => Phone {
                // Through `try_from`, so the E.164 form holds here too: no country code starts
                // with 0 (found by fuzzing: `0123456789` became the unreadable `+0123456789`).
                e164: E164::try_from(format!("+{digits}"))
                    .map_err(|_| IdentityError::NotAPhone(wa_id.to_string()))?,
                key: digits.to_string(),
                wa_id: None,
                verified: false,
            },
        };
        phone.verified = phone.e164.validity() == PhoneValidity::Valid;
        phone.wa_id = Some(wa_id.to_string());
        Ok(phone)
    }

    /// Any spelling people type; `default_region` (ISO alpha-2) for national formats. Strict
    /// validation (see [`E164::parse`]).
    pub fn parse(input: &str, default_region: Option<&str>) -> Result<Phone, IdentityError> {
        Phone::parse_with(input, default_region, true)
    }

    fn parse_with(
        input: &str,
        default_region: Option<&str>,
        strict: bool,
    ) -> Result<Phone, IdentityError> {
        let not_a_phone = || IdentityError::NotAPhone(input.to_string());
        let trimmed = input.trim();
        if trimmed.is_empty() || trimmed.len() > 40 {
            return Err(not_a_phone());
        }
        let region = default_region
            .map(|r| {
                r.trim()
                    .to_ascii_uppercase()
                    .parse::<phonenumber::country::Id>()
            })
            .transpose()
            .map_err(|_| not_a_phone())?;
        let mut text: String = trimmed.to_string();
        // Mexican local mobile prefixes 044 (local) and 045 (long distance) were dialled before the
        // 10-digit number; `01` was the long-distance prefix of landlines.
        if region == Some(phonenumber::country::Id::MX) && !text.starts_with('+') {
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            for prefix in ["044", "045", "01"] {
                if digits.len() == 10 + prefix.len() && digits.starts_with(prefix) {
                    text = digits[prefix.len()..].to_string();
                    break;
                }
            }
        }
        let parsed = phonenumber::parse(region, &text).map_err(|_| not_a_phone())?;
        let mut code = parsed.code().value();
        let mut national = national_digits(&parsed);
        // The canonical form must read back as itself, or two spellings of one line get two
        // keys: read it again, without the region, until it settles. Found by fuzzing:
        // `+61 0345…` read with region MX kept the trunk 0 (`+610345645678`), read again it
        // lost it (`+61345645678`).
        let mut settled = false;
        for _ in 0..4 {
            let (e164_national, _) = canonical(code, &national);
            let again = phonenumber::parse(None, format!("+{code}{e164_national}"))
                .map_err(|_| not_a_phone())?;
            let (code_again, national_again) = (again.code().value(), national_digits(&again));
            if code_again == code
                && canonical(code_again, &national_again) == canonical(code, &national)
            {
                settled = true;
                break;
            }
            (code, national) = (code_again, national_again);
        }
        if !settled {
            return Err(not_a_phone());
        }
        let (e164_national, key_national) = canonical(code, &national);
        let e164 = E164::try_from(format!("+{code}{e164_national}")).map_err(|_| not_a_phone())?;
        if strict {
            let check = phonenumber::parse(None, e164.as_str()).map_err(|_| not_a_phone())?;
            if !check.is_valid() {
                return Err(IdentityError::InvalidPhone(input.to_string()));
            }
        }
        Ok(Phone {
            e164,
            key: format!("{code}{key_national}"),
            wa_id: None,
            // Strict parses refused anything else; lenient ones are checked by the caller.
            verified: strict,
        })
    }

    /// The lookup key: country code + national number with the quirky digits removed (Mexico's
    /// mobile `1`, Argentina's mobile `9`, Brazil's 9th digit), so all spellings collide.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn identity_key(&self) -> IdentityKey {
        IdentityKey::Phone(self.key.clone())
    }
}

/// National significant number as digits, with the leading zeros Italy and a few others keep.
fn national_digits(number: &phonenumber::PhoneNumber) -> String {
    let n = number.national();
    format!("{}{}", "0".repeat(n.zeros() as usize), n.value())
}

/// (national part of the canonical E.164, national part of the lookup key).
fn canonical(code: u16, national: &str) -> (String, String) {
    match code {
        // Mexico: drop the legacy mobile `1` (`1` + 10 digits).
        52 if national.len() == 11 && national.starts_with('1') => {
            (national[1..].to_string(), national[1..].to_string())
        }
        // Argentina: mobiles are `9` + 10 digits; the key drops the `9`. A local number written
        // with the `15` mobile prefix (`<area> 15 <number>`) that libphonenumber did not rewrite
        // is recognised by its 12-digit length.
        54 if national.len() == 11 && national.starts_with('9') => {
            (national.to_string(), national[1..].to_string())
        }
        54 if national.len() == 12 => {
            for area in 2..=4 {
                if &national[area..area + 2] == "15" {
                    let base = format!("{}{}", &national[..area], &national[area + 2..]);
                    return (format!("9{base}"), base);
                }
            }
            (national.to_string(), national.to_string())
        }
        // Argentina without the `9`: mobiles and landlines share one numbering plan, so the digits
        // cannot tell them apart; the key already joins both spellings, and the E.164 number
        // renders the WhatsApp line as the mobile it almost always is.
        54 if national.len() == 10 => (format!("9{national}"), national.to_string()),
        // Brazil: DDD (2 digits) + subscriber. Mobiles have 9 digits starting with 9 today; old
        // 8-digit mobiles start with 6-9. The key keeps the last 8 digits of mobiles; the E.164
        // number always carries the 9th digit.
        55 if national.len() == 11 && national.as_bytes()[2] == b'9' => (
            national.to_string(),
            format!("{}{}", &national[..2], &national[3..]),
        ),
        55 if national.len() == 10 && matches!(national.as_bytes()[2], b'6'..=b'9') => (
            format!("{}9{}", &national[..2], &national[2..]),
            national.to_string(),
        ),
        _ => (national.to_string(), national.to_string()),
    }
}

/// A business-scoped user id: `CC.` + 1 to 128 alphanumerics, or the parent form `CC.ENT.…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Bsuid(String);

impl Bsuid {
    pub fn parse(input: &str) -> Result<Bsuid, IdentityError> {
        let err = || IdentityError::NotABsuid(input.to_string());
        let (cc, rest) = input.split_once('.').ok_or_else(err)?;
        if cc.len() != 2 || !cc.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(err());
        }
        let id = rest.strip_prefix("ENT.").unwrap_or(rest);
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err());
        }
        Ok(Bsuid(input.to_string()))
    }

    /// Whether `input` is written as a BSUID (`CC.` then more), not whether it is a valid one:
    /// what tells a BSUID in a field that usually holds a phone (`from`, `wa_id`) apart from
    /// digits.
    pub fn has_form(input: &str) -> bool {
        let b = input.as_bytes();
        b.len() > 3 && b[..2].iter().all(u8::is_ascii_uppercase) && b[2] == b'.'
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the parent (enterprise-wide) form `CC.ENT.…`.
    pub fn is_parent(&self) -> bool {
        self.0[3..].starts_with("ENT.")
    }

    pub fn identity_key(&self) -> IdentityKey {
        IdentityKey::Bsuid(self.0.clone())
    }
}

impl TryFrom<String> for Bsuid {
    type Error = IdentityError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Bsuid::parse(&value)
    }
}

impl From<Bsuid> for String {
    fn from(value: Bsuid) -> String {
        value.0
    }
}

impl fmt::Display for Bsuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key of the identity store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentityKey {
    /// [`Phone::key`].
    Phone(String),
    /// A BSUID as received.
    Bsuid(String),
}

impl IdentityKey {
    /// Storage form: `phone:<key>` or `bsuid:<id>`.
    pub fn as_string(&self) -> String {
        match self {
            IdentityKey::Phone(k) => format!("phone:{k}"),
            IdentityKey::Bsuid(k) => format!("bsuid:{k}"),
        }
    }

    pub fn from_stored(s: &str) -> Option<IdentityKey> {
        if let Some(k) = s.strip_prefix("phone:") {
            Some(IdentityKey::Phone(k.to_string()))
        } else {
            s.strip_prefix("bsuid:")
                .map(|k| IdentityKey::Bsuid(k.to_string()))
        }
    }
}

/// Result of [`IdentityStore::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub contact_id: String,
    /// Whether this call created the contact (no key was known).
    pub created: bool,
}

/// Maps every identity key to one contact id.
///
/// Rules every adapter keeps:
/// - `resolve` returns the contact of the first known key (keys are given in priority order:
///   phone, then BSUID), links the unknown keys to it, and never steals a key linked to another
///   contact; when no key is known it creates ONE contact even if two callers race (conditional
///   writes: the loser reads the winner's contact);
/// - `move_key` relinks a key to the contact of another one (number change), and unlinks the old
///   key so a future owner of the old number becomes a new contact.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// The contact of a key, if linked.
    async fn lookup(&self, key: &IdentityKey) -> Result<Option<String>, StoreError>;
    /// Finds or creates the contact of these keys (at least one). `new_id` is used when a contact
    /// is created.
    async fn resolve(&self, keys: &[IdentityKey], new_id: &str) -> Result<Resolved, StoreError>;
    /// Links `to` to the contact currently holding `from` and unlinks `from`. When `from` is
    /// unknown, `to` is resolved as usual (creating a contact with `new_id` if needed). Returns
    /// the contact id. Idempotent: moving again after a completed move is a no-op.
    async fn move_key(
        &self,
        from: &IdentityKey,
        to: &IdentityKey,
        new_id: &str,
    ) -> Result<String, StoreError>;
    /// When the person of `key` was erased (their opt-out tombstone, [`crate::erasure`]).
    async fn erased_at(&self, key: &IdentityKey) -> Result<Option<i64>, StoreError>;
    /// Unlinks `keys` from `contact_id` (only where they still point to it): an event about an
    /// erased person must not bring their identity back.
    async fn forget(&self, keys: &[IdentityKey], contact_id: &str) -> Result<(), StoreError>;
}

/// A fresh contact id (UUID v7: sortable by creation).
pub fn new_contact_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod metadata_tests;
#[cfg(test)]
mod tests;
