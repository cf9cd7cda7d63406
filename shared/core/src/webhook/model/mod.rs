//! Typed model of what Meta sends on the WhatsApp webhook (Cloud API, v23.0 and the 2026 username
//! / BSUID fields).
//!
//! Parsing is deliberately forgiving, because the webhook is Meta's contract, not ours:
//! - every field is optional unless Meta has always sent it, and `from` / `wa_id` may be absent
//!   (users with a username are identified by `from_user_id` / `user_id` only);
//! - ids, phone numbers and timestamps accept a JSON string or a number (group examples carry a
//!   numeric `wa_id`), see [`lenient`];
//! - enums have an `Other` / `Unknown` fallback, so a new value Meta starts sending never fails a
//!   parse;
//! - unknown keys are ignored here; the splitter keeps every item's raw JSON, so nothing is lost.
//!
//! Consumers get the typed view of an event's item with [`parse_item`] and of its contact with
//! [`parse_contact`].

mod account;
mod call;
mod change;
mod content;
mod envelope;
pub mod lenient;
mod message;
mod status;

pub use account::*;
pub use call::*;
pub use change::*;
pub use content::*;
pub use envelope::*;
pub use message::*;
pub use status::*;

use crate::event::{Event, EventKind};

/// The typed item of an [`Event`].
#[derive(Debug, Clone)]
pub enum Item {
    Message(Box<Message>),
    /// A message the business sent from the WhatsApp Business app (`smb_message_echoes`).
    Echo(Box<Message>),
    /// One event of a WhatsApp call (`calls`).
    Call(Box<CallEvent>),
    Status(Box<Status>),
    TemplateStatus(Box<TemplateStatusUpdate>),
    QualityUpdate(QualityUpdate),
    UserPreference(UserPreference),
    AccountUpdate(AccountUpdate),
    /// wabridge's own report of a send's end (not from Meta).
    SendResult(Box<crate::event::SendResultItem>),
    /// A consent recorded through `POST /consents` (not from Meta).
    Consent(Box<crate::consent::ConsentEntry>),
    /// A person erased (not from Meta).
    Erasure(crate::erasure::ErasureItem),
    /// The media pipeline's result for one file (not from Meta).
    MediaResult(Box<crate::media::job::MediaResultItem>),
    /// A conversation changed through the API (not from Meta).
    Conversation(Box<crate::conversations::ConversationRecord>),
    /// A finding of the conversation sweep (not from Meta).
    Sweep(crate::conversations::sweep::SweepItem),
    /// Not modelled: read `event.item` (raw JSON) and `event.field`.
    Unknown,
}

/// Parses an event's item with the type its kind promises.
pub fn parse_item(event: &Event) -> Result<Item, serde_json::Error> {
    let raw = event.item.get();
    Ok(match event.kind {
        EventKind::Message => Item::Message(Box::new(serde_json::from_str(raw)?)),
        EventKind::Echo => Item::Echo(Box::new(serde_json::from_str(raw)?)),
        EventKind::Call => Item::Call(Box::new(serde_json::from_str(raw)?)),
        EventKind::Status => Item::Status(Box::new(serde_json::from_str(raw)?)),
        EventKind::TemplateStatus => Item::TemplateStatus(Box::new(serde_json::from_str(raw)?)),
        EventKind::QualityUpdate => Item::QualityUpdate(serde_json::from_str(raw)?),
        EventKind::UserPreference => Item::UserPreference(serde_json::from_str(raw)?),
        EventKind::AccountUpdate => Item::AccountUpdate(serde_json::from_str(raw)?),
        EventKind::SendResult => Item::SendResult(Box::new(serde_json::from_str(raw)?)),
        EventKind::Consent => Item::Consent(Box::new(serde_json::from_str(raw)?)),
        EventKind::Erasure => Item::Erasure(serde_json::from_str(raw)?),
        EventKind::MediaResult => Item::MediaResult(Box::new(serde_json::from_str(raw)?)),
        EventKind::Conversation => Item::Conversation(Box::new(serde_json::from_str(raw)?)),
        EventKind::Sweep => Item::Sweep(serde_json::from_str(raw)?),
        EventKind::Unknown => Item::Unknown,
    })
}

/// The sender (`value.contacts[]` item) attached to an event, typed.
pub fn parse_contact(event: &Event) -> Option<Result<Contact, serde_json::Error>> {
    event
        .contact
        .as_ref()
        .map(|raw| serde_json::from_str(raw.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_order_moves_only_forward() {
        use StatusKind::*;
        assert!(Sent.advances(None));
        assert!(Delivered.advances(Some(Sent)));
        assert!(Read.advances(Some(Sent)));
        assert!(Played.advances(Some(Read)));
        assert!(
            !Delivered.advances(Some(Read)),
            "late delivered must not downgrade read"
        );
        assert!(!Sent.advances(Some(Delivered)));
        assert!(!Read.advances(Some(Read)));
        assert!(Failed.advances(Some(Delivered)));
        assert!(!Read.advances(Some(Failed)), "failed is terminal");
        assert!(!Unknown.advances(None));
        assert!(!Unknown.advances(Some(Sent)));
        assert!(Failed.is_terminal() && !Read.is_terminal());
        for kind in [Sent, Delivered, Read, Played, Failed] {
            assert_eq!(StatusKind::parse(kind.as_str()), kind);
        }
        assert_eq!(StatusKind::parse("deleted"), Unknown);
    }

    #[test]
    fn unknown_enum_values_do_not_fail() {
        let s: Status = serde_json::from_str(r#"{"id":"w","status":"deleted"}"#).unwrap();
        assert_eq!(s.status, Some(StatusKind::Unknown));
        let m: Message =
            serde_json::from_str(r#"{"id":"w","type":"hologram","hologram":{}}"#).unwrap();
        assert_eq!(m.kind(), MessageType::Unknown);
        let sys: System = serde_json::from_str(r#"{"type":"user_did_a_new_thing"}"#).unwrap();
        assert_eq!(sys.system_type, Some(SystemType::Other));
        let t: TemplateStatusUpdate =
            serde_json::from_str(r#"{"event":"SOMETHING_NEW","message_template_id":1}"#).unwrap();
        assert_eq!(t.event_kind(), Some(TemplateEvent::Other));
        assert_eq!(t.event.as_deref(), Some("SOMETHING_NEW"), "kept by name");
        assert_eq!(t.message_template_id.as_deref(), Some("1"));
        let t: TemplateStatusUpdate = serde_json::from_str(r#"{"event":"PAUSED"}"#).unwrap();
        assert_eq!(t.event_kind(), Some(TemplateEvent::Paused));
    }

    #[test]
    fn new_preference_values_and_group_statuses_are_kept() {
        let p: UserPreference =
            serde_json::from_str(r#"{"wa_id":"1","value":"signup","signup_id":"2"}"#).unwrap();
        assert_eq!(p.value.as_deref(), Some("signup"));
        assert_eq!(p.value_kind(), Some(PreferenceValue::Other));
        let p: UserPreference = serde_json::from_str(r#"{"value":"stop"}"#).unwrap();
        assert_eq!(p.value_kind(), Some(PreferenceValue::Stop));
        let s: Status = serde_json::from_str(
            r#"{"id":"w","status":"read","recipient_id":"120363","recipient_type":"group","recipient_participant_id":5213312345678}"#,
        )
        .unwrap();
        assert!(s.is_group());
        assert_eq!(s.recipient_participant_id.as_deref(), Some("5213312345678"));
        let s: Status =
            serde_json::from_str(r#"{"id":"w","recipient_type":"individual"}"#).unwrap();
        assert!(!s.is_group());
    }

    #[test]
    fn location_without_type_is_inferred() {
        let m: Message = serde_json::from_str(
            r#"{"from":"5215512345678","id":"w","timestamp":"1","location":{"latitude":19.43,"longitude":-99.13}}"#,
        )
        .unwrap();
        assert_eq!(m.kind(), MessageType::Location);
        match m.content() {
            MessageContent::Location(l) => assert_eq!(l.latitude, Some(19.43)),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(m.timestamp, Some(1));
    }

    #[test]
    fn numbers_and_strings_are_both_accepted() {
        let c: Contact = serde_json::from_str(r#"{"wa_id":16505551234}"#).unwrap();
        assert_eq!(c.wa_id.as_deref(), Some("16505551234"));
        let c: Contact = serde_json::from_str(r#"{"wa_id":null,"user_id":"MX.abc"}"#).unwrap();
        assert_eq!(c.wa_id, None);
        let p: ProductItem =
            serde_json::from_str(r#"{"quantity":"2","item_price":"30.5"}"#).unwrap();
        assert_eq!((p.quantity, p.item_price), (Some(2), Some(30.5)));
    }

    #[test]
    fn bsuid_only_sender() {
        let m: Message = serde_json::from_str(
            r#"{"from_user_id":"BR.13491208655302741918","id":"w","timestamp":"1","type":"text","text":{"body":"Oi"}}"#,
        )
        .unwrap();
        assert_eq!(m.from, None);
        assert_eq!(m.from_user_id.as_deref(), Some("BR.13491208655302741918"));
        let c: Contact = serde_json::from_str(
            r#"{"user_id":"BR.13491208655302741918","profile":{"name":"Ana","username":"ana.souza"}}"#,
        )
        .unwrap();
        assert_eq!(c.profile.unwrap().username.as_deref(), Some("ana.souza"));
    }

    #[test]
    fn edits_name_their_original_and_hand_their_new_media_to_the_pipeline() {
        let m: Message = serde_json::from_str(
            r#"{"from":"1","id":"wamid.E","type":"edit","edit":{"original_message_id":"wamid.O",
            "message":{"type":"image","image":{"id":"9","caption":"nueva"}}}}"#,
        )
        .unwrap();
        assert_eq!(m.kind(), MessageType::Edit);
        assert_eq!(m.original_message_id(), Some("wamid.O"));
        let source = m.media_source().unwrap();
        assert_eq!(source.id.as_deref(), Some("wamid.O"), "the original's id");
        match source.content() {
            MessageContent::Image(i) => assert_eq!(i.id.as_deref(), Some("9")),
            other => panic!("{other:?}"),
        }
        let r: Message =
            serde_json::from_str(r#"{"id":"wamid.R","revoke":{"original_message_id":"wamid.O"}}"#)
                .unwrap();
        assert_eq!(r.kind(), MessageType::Revoke, "inferred from the member");
        assert_eq!(r.original_message_id(), Some("wamid.O"));
        assert!(r.media_source().is_none());
        let t: Message =
            serde_json::from_str(r#"{"id":"w","type":"text","text":{"body":"x"}}"#).unwrap();
        assert_eq!(t.original_message_id(), None);
        assert_eq!(t.media_source().unwrap().id.as_deref(), Some("w"));
        // A malformed inner message fails the item instead of landing empty.
        assert!(serde_json::from_str::<Message>(
            r#"{"id":"w","type":"edit","edit":{"original_message_id":"o","message":[1]}}"#
        )
        .is_err());
        let u: Message = serde_json::from_str(
            r#"{"id":"w","type":"unsupported","unsupported":{"type":"edit"},"errors":[{"code":131051}]}"#,
        )
        .unwrap();
        assert_eq!(
            u.unsupported.unwrap().unsupported_type.as_deref(),
            Some("edit")
        );
    }

    #[test]
    fn reaction_removal() {
        let r: Reaction = serde_json::from_str(r#"{"message_id":"w","emoji":""}"#).unwrap();
        assert!(r.is_removal());
        let r: Reaction = serde_json::from_str(r#"{"message_id":"w","emoji":"👍"}"#).unwrap();
        assert!(!r.is_removal());
    }
}
