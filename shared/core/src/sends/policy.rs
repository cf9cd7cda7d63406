//! Policy guards: WhatsApp's rules checked before anything leaves, at `POST /sends` and again
//! in the sender (consent or a template's status may change while a send waits in the queue).
//! Every refusal has a stable code and a sentence a person understands.

use crate::consent::{ConsentCategory, ConsentService, ConsentState};
use crate::error::StoreError;
use crate::media::MediaRefusal;
use crate::numbers::{Number, Numbers};
use crate::sends::request::{Category, SendKind, SendRequest};
use crate::templates::{TemplateRegistries, TemplateRegistry};
use crate::window::{is_open_at, WindowService};

/// Why a send is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Marketing template to a contact without a recorded marketing opt-in.
    MarketingWithoutOptIn,
    /// Marketing template to a contact whose latest marketing consent is an opt-out (API opt-out,
    /// STOP keyword, `user_preferences` stop, or Meta's 131050).
    MarketingOptedOut { source: String },
    /// Free-form message (text or media) outside the 24 h customer service window.
    OutsideWindow,
    /// The sending number's WABA was synced and has no such template (name and language);
    /// `number` is the sending number's label.
    TemplateNotFound {
        name: String,
        language: String,
        number: String,
    },
    /// The registry knows the template as PAUSED, REJECTED or DISABLED.
    TemplateNotSendable { status: String },
    /// The registry knows how many body parameters the template takes; the request differs.
    ParameterCount { expected: u32, given: usize },
    /// No `language` given, and none of the recipient's languages is approved for the template
    /// (`approved`: the ones that are).
    TemplateLanguageUnavailable {
        tried: Vec<String>,
        approved: Vec<String>,
    },
    /// The send names a file, and this gateway keeps none (no media store: on AWS today).
    MediaUnavailable,
    /// No stored file has this object (never uploaded, or erased or purged since).
    MediaObjectNotFound { object: String },
    /// The file was not received through `POST /media` and the send gives no `mime_type`.
    MediaTypeUnknown { object: String },
    /// The file is outside what Meta takes for the send's media type (type or size).
    Media(MediaRefusal),
    /// A template's document header must be a PDF (Meta's rule for media templates).
    HeaderNotPdf { mime: String },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::MarketingWithoutOptIn => "marketing_without_opt_in",
            Refusal::MarketingOptedOut { .. } => "marketing_opted_out",
            Refusal::OutsideWindow => "outside_customer_service_window",
            Refusal::TemplateNotFound { .. } => "template_not_found",
            Refusal::TemplateNotSendable { .. } => "template_not_sendable",
            Refusal::ParameterCount { .. } => "template_parameter_count",
            Refusal::TemplateLanguageUnavailable { .. } => "template_language_unavailable",
            Refusal::MediaUnavailable => "media_unavailable",
            Refusal::MediaObjectNotFound { .. } => "media_object_not_found",
            Refusal::MediaTypeUnknown { .. } => "media_type_unknown",
            Refusal::Media(refusal) => refusal.code(),
            Refusal::HeaderNotPdf { .. } => "media_type_not_allowed",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::MarketingWithoutOptIn => "This is a marketing template and the contact has no recorded opt-in to \
                 marketing messages; record one with POST /consents first."
                .into(),
            Refusal::MarketingOptedOut { source } => format!(
                "This is a marketing template and the contact opted out of marketing messages \
                 (latest consent: opt-out from {source}); WhatsApp forbids sending it."
            ),
            Refusal::OutsideWindow => "Free-form messages (text or media) can only be sent within 24 hours of the contact's last message; \
                 send an approved template instead."
                .into(),
            Refusal::TemplateNotFound { name, language, number } => format!(
                "The template {name} ({language}) is not among the templates of the WhatsApp Business \
                 Account of {number}; send it from a number whose account has it, or create it there \
                 (then `wabridge templates sync`)."
            ),
            Refusal::TemplateNotSendable { status } => {
                format!("The template is {status} at Meta and cannot be sent until it is approved again.")
            }
            Refusal::ParameterCount { expected, given } => {
                format!("The template takes {expected} body parameters but the request gives {given}.")
            }
            Refusal::TemplateLanguageUnavailable { tried, approved } => {
                let approved = if approved.is_empty() {
                    "none is known (run `wabridge templates sync`, or give `language`)".to_string()
                } else {
                    approved.join(", ")
                };
                format!(
                    "No `language` was given and the template is not approved in the recipient's languages ({}); approved: {approved}.",
                    tried.join(", ")
                )
            }
            Refusal::MediaUnavailable => "This gateway keeps no media files, so it cannot send one; \
                 send files through a gateway with a media store (wabridge serve, or an AWS stack \
                 with MEDIA_BUCKET)."
                .into(),
            Refusal::MediaObjectNotFound { object } => format!(
                "No stored file has the object {object}; upload it with POST /media first."
            ),
            Refusal::MediaTypeUnknown { object } => format!(
                "The file {object} was not uploaded through POST /media, so its type is unknown; \
                 give `mime_type`."
            ),
            Refusal::Media(refusal) => format!("{refusal}."),
            Refusal::HeaderNotPdf { mime } => format!(
                "A template's document header must be a PDF (Meta's rule), and the file is {mime}."
            ),
        }
    }
}

/// The guards and what they read.
#[derive(Clone)]
pub struct Policy {
    pub consent: ConsentService,
    /// One registry per WABA with a numbers registry; the implicit one without.
    pub templates: TemplateRegistries,
    pub window: WindowService,
    /// The numbers registry a send's `from` (a phone_number_id by then) is found in, for its
    /// WABA's templates; none: the one number and the implicit registry.
    pub numbers: Option<std::sync::Arc<Numbers>>,
}

impl Policy {
    /// With the numbers registry: template guards read the sending number's WABA's registry.
    pub fn with_numbers(mut self, numbers: std::sync::Arc<Numbers>) -> Policy {
        self.templates = self.templates.per_waba();
        self.numbers = Some(numbers);
        self
    }

    /// The registered number a resolved `from` names, if any.
    pub fn number_of(&self, from: Option<&str>) -> Option<&Number> {
        self.numbers.as_deref()?.find(from?)
    }

    /// The template registry a send from `from` (a resolved phone_number_id) reads: its
    /// number's WABA's; the implicit one without a registry.
    pub fn templates_for(&self, from: Option<&str>) -> TemplateRegistry {
        match self.number_of(from) {
            Some(n) => self.templates.of(&n.waba_id),
            None => self.templates.implicit(),
        }
    }

    /// `Ok(None)` when the send may go; the first refusal otherwise.
    pub async fn check(
        &self,
        request: &SendRequest,
        now_ms: i64,
    ) -> Result<Option<Refusal>, StoreError> {
        let contact = request.contact_ref();
        match &request.kind {
            // A media message is free-form: the same window as text.
            SendKind::Text { .. } | SendKind::Media { .. } => {
                let number = request.from.as_deref();
                if !is_open_at(self.window.last_inbound(&contact, number).await?, now_ms) {
                    return Ok(Some(Refusal::OutsideWindow));
                }
                Ok(None)
            }
            SendKind::Template {
                name,
                language,
                category,
                ..
            } => {
                let registry = self.templates_for(request.from.as_deref());
                let info = registry.get(name, language).await?;
                // Only a registered number's WABA, once synced, knows every template it has: a
                // fresh install (never synced) or the one implicit number refuses nothing here.
                if let (None, Some(number)) = (&info, self.number_of(request.from.as_deref())) {
                    if registry.synced_at().await?.is_some() {
                        return Ok(Some(Refusal::TemplateNotFound {
                            name: name.clone(),
                            language: language.clone(),
                            number: number.label.clone(),
                        }));
                    }
                }
                if let Some(status) = info.as_ref().and_then(|i| i.status.as_ref()) {
                    if status.refuses_sends() {
                        return Ok(Some(Refusal::TemplateNotSendable {
                            status: status.as_str().to_string(),
                        }));
                    }
                }
                if let Some(expected) = info.as_ref().and_then(|i| i.body_parameters) {
                    let given = request.body_parameter_count();
                    if given != expected as usize {
                        return Ok(Some(Refusal::ParameterCount { expected, given }));
                    }
                }
                // The registry's category (Meta's, which may recategorise) wins over the caller's.
                let registered = info
                    .as_ref()
                    .and_then(|i| i.category.as_deref())
                    .and_then(Category::parse);
                let marketing = registered.or(*category) == Some(Category::Marketing);
                if marketing {
                    let history = self.consent.history(&contact).await?;
                    let from = request.from.as_deref();
                    let (state, latest) =
                        self.consent
                            .scope()
                            .latest(&history, ConsentCategory::Marketing, from);
                    match state {
                        ConsentState::OptedIn => {}
                        ConsentState::Unknown => return Ok(Some(Refusal::MarketingWithoutOptIn)),
                        ConsentState::OptedOut => {
                            let source = latest.map_or("unknown", |e| e.source.as_str());
                            return Ok(Some(Refusal::MarketingOptedOut {
                                source: source.to_string(),
                            }));
                        }
                    }
                }
                Ok(None)
            }
        }
    }
}
