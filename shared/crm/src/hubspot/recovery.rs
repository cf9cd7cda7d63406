//! Exactly once for creates: an in-doubt effect (an earlier attempt may have created its
//! object: a timeout, a 5xx, a crash before the ledger's confirm) searches by its effect id
//! before creating, trusting a miss only once HubSpot's search index caught up.

use std::time::Instant;

use super::api::CreateInput;
use super::api::CreateOp;
use super::batch::Batcher;
use super::{HubSpotCrm, DOUBTFUL_MAX};
use wabridge_core::crm::{CrmError, Effect};

impl HubSpotCrm {
    /// Whether an in-doubt effect already created its object (searched by effect id).
    ///
    /// HubSpot's search index lags behind creates by seconds, so a miss right after the
    /// uncertain attempt proves nothing. A miss is trusted only `search_lag` after the last
    /// uncertain attempt this process made; when the attempt was made elsewhere (another
    /// process, before a crash), its time is unknown and counts from this first miss. Until
    /// then the effect answers `RateLimited(wait)`: it stays in doubt, and the retry (in
    /// process when short, else through the queue's delay) searches again.
    pub(super) async fn already_created(
        &self,
        object: &str,
        effect: &Effect,
    ) -> Result<bool, CrmError> {
        let Some(prop) = &self.effect_property else {
            return Ok(false);
        };
        if !effect.in_doubt {
            return Ok(false);
        }
        if self
            .client
            .find_by(object, prop, &effect.id)
            .await?
            .is_some()
        {
            self.doubtful.lock().unwrap().remove(&effect.id);
            return Ok(true);
        }
        let now = Instant::now();
        let trusted_at = {
            let mut doubtful = self.doubtful.lock().unwrap();
            if doubtful.len() >= DOUBTFUL_MAX && !doubtful.contains_key(&effect.id) {
                doubtful.clear();
            }
            *doubtful.entry(effect.id.clone()).or_insert(now) + self.search_lag
        };
        if now >= trusted_at {
            self.doubtful.lock().unwrap().remove(&effect.id);
            return Ok(false);
        }
        tracing::info!(effect = %effect.id, "hubspot: in-doubt object not found yet; searching again once the index caught up");
        Err(CrmError::RateLimited(Some(trusted_at - now)))
    }

    /// Creates through `batcher`, remembering an uncertain failure for `already_created`.
    pub(super) async fn create(
        &self,
        batcher: &Batcher<CreateOp>,
        effect: &Effect,
        input: CreateInput,
    ) -> Result<String, CrmError> {
        match batcher.submit(input).await {
            Ok(id) => Ok(id),
            Err(e) => {
                self.note_doubt(effect, &e);
                Err(e)
            }
        }
    }

    /// Remembers a create that failed without saying whether it happened (for
    /// `already_created`).
    pub(super) fn note_doubt(&self, effect: &Effect, e: &CrmError) {
        if !e.definitely_not_applied() {
            let mut doubtful = self.doubtful.lock().unwrap();
            if doubtful.len() >= DOUBTFUL_MAX {
                doubtful.clear();
            }
            doubtful.insert(effect.id.clone(), Instant::now());
        }
    }
}
