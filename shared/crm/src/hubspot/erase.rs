//! Erasure in HubSpot: the person's contact GDPR-deleted, with its associated content (notes,
//! their attachments, communications).

use wabridge_core::crm::CrmError;

use super::HubSpotCrm;

impl HubSpotCrm {
    /// GDPR-deletes the contact of each of the person's identities: read by the id property
    /// (`GET …/contacts/{value}?idProperty=`, consistent, unlike search), then
    /// `POST /crm/v3/objects/contacts/gdpr-delete` by its record id (permanent, with its
    /// associated content). Nothing found, or a contact already gone (404), is done.
    pub(super) async fn erase(
        &self,
        e: &wabridge_core::erasure::ErasureItem,
    ) -> Result<(), CrmError> {
        let encode =
            |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        for value in e.phones.iter().chain(&e.bsuids) {
            self.contact_ids.lock().unwrap().remove(value);
            let path = format!(
                "/crm/v3/objects/contacts/{}?idProperty={}",
                encode(value),
                encode(&self.id_property)
            );
            let Some(found) = self.client.get(&path).await? else {
                continue;
            };
            let Some(id) = found["id"].as_str() else {
                return Err(CrmError::Transient(
                    "contact read without an id".to_string(),
                ));
            };
            match self
                .client
                .post(
                    "/crm/v3/objects/contacts/gdpr-delete",
                    &serde_json::json!({ "objectId": id }),
                )
                .await
            {
                Err(CrmError::Rejected(m)) if m.starts_with("HTTP 404") => {}
                other => other.map(drop)?,
            }
        }
        Ok(())
    }
}
