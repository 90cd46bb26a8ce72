//! What a submit needs from Spin, shared by the routes that submit
//! (`/jobs/submit` and `/jobs/:id/retry`): settings, the Hugging Face token
//! and the read-only datasets mount.

use std::path::Path;

use cloudtuner_domain::auth::principal::Principal;
use cloudtuner_domain::jobs::datasets::GUEST_MOUNT;
use cloudtuner_domain::jobs::submit::SubmitContext;
use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_domain::kernel::outbound_budget::Purpose;
use cloudtuner_domain::providers::settings::{ProviderSettings, StoredSettings};

use crate::call::Call;
use crate::http::{BudgetedHttp, http};
use crate::settings::variable;

pub struct SubmitInputs {
    stored: StoredSettings,
    settings: ProviderSettings,
    hf_token: Option<String>,
    /// A submit is a user action: refused up front when the hour's outbound
    /// budget is spent, never half-way.
    http: BudgetedHttp,
}

impl SubmitInputs {
    pub fn load(call: &Call) -> Result<Self, ApiError> {
        let (stored, settings) = call.settings()?;
        Ok(SubmitInputs {
            stored,
            settings,
            hf_token: variable("hf_token"),
            http: http(Purpose::User)?,
        })
    }

    /// The domain's submit context for `principal`'s request.
    pub fn context<'a>(
        &'a self,
        call: &'a Call,
        principal: &'a Principal,
    ) -> SubmitContext<'a, BudgetedHttp> {
        SubmitContext {
            kv: &call.kv,
            http: &self.http,
            settings: &self.settings,
            principal,
            hf_token: self.hf_token.as_deref(),
            datasets_root: Path::new(GUEST_MOUNT),
            stored: &self.stored,
            now_ms: call.now_ms,
        }
    }
}
