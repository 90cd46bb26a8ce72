//! The bodies the quota routes take (SimpleTuner's `QuotaRequest` and the
//! orgs' `SetOrgQuotaRequest`), validated.

use serde_json::{Map, Value};

use super::{QUOTA_ACTIONS, QUOTA_TYPES, QuotaAction, QuotaType};
use crate::kernel::error::{ApiError, object_with_fields};

/// The most a limit may be (jobs or USD): far inside every counter.
pub(super) const MAX_LIMIT: f64 = 1e9;

/// `{"quota_type", "limit_value", "action"?}` and the scope fields the caller
/// allows (`user_id`, `team_id`, `org_id`, `level_id` on `/api/quotas`).
pub(super) struct QuotaBody<'a> {
    pub quota_type: QuotaType,
    pub limit_value: f64,
    pub action: QuotaAction,
    pub fields: &'a Map<String, Value>,
}

pub(super) fn quota_body<'a>(
    body: &'a Value,
    scope_fields: &[&str],
) -> Result<QuotaBody<'a>, ApiError> {
    let mut allowed = vec!["quota_type", "limit_value", "action"];
    allowed.extend_from_slice(scope_fields);
    let obj = object_with_fields(body, &allowed, "invalid_request")?;
    let name = obj
        .get("quota_type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("quota_type is required"))?;
    let quota_type = QuotaType::parse(name).ok_or_else(|| {
        let valid: Vec<&str> = QUOTA_TYPES.iter().map(|t| t.as_str()).collect();
        invalid(&format!(
            "Invalid quota_type: {name}. Valid types: {}",
            valid.join(", ")
        ))
    })?;
    let limit_value = obj
        .get("limit_value")
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite() && *v > 0.0 && *v <= MAX_LIMIT)
        .ok_or_else(|| {
            invalid(&format!(
                "limit_value must be a number above 0 and at most {MAX_LIMIT:e}"
            ))
        })?;
    let action = match obj.get("action") {
        None | Some(Value::Null) => QuotaAction::Block,
        Some(v) => v.as_str().and_then(QuotaAction::parse).ok_or_else(|| {
            let valid: Vec<&str> = QUOTA_ACTIONS.iter().map(|a| a.as_str()).collect();
            invalid(&format!(
                "Invalid action: {v}. Valid actions: {}",
                valid.join(", ")
            ))
        })?,
    };
    Ok(QuotaBody {
        quota_type,
        limit_value,
        action,
        fields: obj,
    })
}

/// An optional integer id field (`user_id`, `team_id`, `org_id`).
pub(super) fn id_field(obj: &Map<String, Value>, key: &str) -> Result<Option<u64>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid(&format!("{key} must be an integer id"))),
    }
}

fn invalid(message: &str) -> ApiError {
    ApiError::new(400, "invalid_quota", message.to_string())
}

/// `estimated_cost` from the query (SimpleTuner's modal) or a JSON body.
pub(super) fn estimated_cost(query: Option<&str>, body: &Value) -> Result<f64, ApiError> {
    let v = match query {
        Some(q) => q.trim().parse::<f64>().ok(),
        None => body.get("estimated_cost").and_then(Value::as_f64),
    };
    v.filter(|v| v.is_finite() && (0.0..=crate::billing::estimate::MAX_ESTIMATE_USD).contains(v))
        .ok_or_else(|| {
            ApiError::new(
                400,
                "invalid_estimated_cost",
                "estimated_cost (USD, a number from 0 to 1000000) is required, in the query or \
                 the JSON body",
            )
        })
}
