//! The API-key stage: on routes with `auth: api_key`, finds the key in the configured sources,
//! checks it against the keys file and records its id and tier for rate limits, the backend
//! header and the log. Missing or unknown keys get 401, keys that are expired, disabled or out
//! of scope get 403.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use pingora::proxy::Session;

use super::{Stage, Verdict};
use crate::auth::ApiKeys;
use crate::problem::{AuthFailure, Refusal};
use crate::proxy::RequestCtx;

/// Checks API keys.
pub struct ApiKeyStage {
    keys: Arc<ApiKeys>,
}

impl ApiKeyStage {
    /// A stage for `keys`.
    pub fn new(keys: Arc<ApiKeys>) -> ApiKeyStage {
        ApiKeyStage { keys }
    }
}

#[async_trait]
impl Stage for ApiKeyStage {
    fn name(&self) -> &'static str {
        "api_key"
    }

    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Verdict {
        let Some(route) = ctx.route.clone() else {
            return Verdict::Continue;
        };
        if !route.auth {
            return Verdict::Continue;
        }
        let req = session.req_header();
        let Some((secret, source)) = self.keys.find(req) else {
            return Verdict::Respond(Refusal::Auth(AuthFailure::Missing));
        };
        let source = source.clone();
        match self.keys.store.verify(
            secret,
            &route.name,
            &ctx.match_path,
            &req.method,
            SystemTime::now(),
        ) {
            Ok(entry) => {
                ctx.key_id = Some(entry.id.clone());
                ctx.key_tier = entry.tier.clone();
                ctx.key_source = Some(source);
                Verdict::Continue
            }
            Err(f) => Verdict::Respond(Refusal::Auth(f)),
        }
    }
}
