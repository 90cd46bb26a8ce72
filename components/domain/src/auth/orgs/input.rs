//! The bodies `/api/orgs` takes, validated with SimpleTuner's limits
//! (its pydantic models `CreateOrgRequest`, `UpdateOrgRequest`,
//! `TeamMembershipRequest`).

use serde_json::{Map, Value, json};

use super::Profile;
use super::teams::TEAM_ROLES;
use crate::kernel::error::{ApiError, object_with_fields};

/// `{"name", "slug", "description"?, "settings"?}` (SimpleTuner's
/// `CreateOrgRequest` / `CreateTeamRequest`, same limits).
pub(super) fn new_profile(body: &Value) -> Result<Profile, ApiError> {
    let obj = object_with_fields(
        body,
        &["name", "slug", "description", "settings"],
        "invalid_request",
    )?;
    let slug = text(obj, "slug", 50)?.ok_or_else(|| missing("slug"))?;
    if !slug
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(ApiError::new(
            400,
            "invalid_slug",
            "slug may hold only lower-case letters, digits and '-'",
        ));
    }
    Ok(Profile {
        name: text(obj, "name", 100)?.ok_or_else(|| missing("name"))?,
        slug,
        description: optional_text(obj, "description", 500)?.unwrap_or_default(),
        settings: settings(obj)?.unwrap_or_default(),
        is_active: true,
    })
}

/// The changes a `PATCH` asks for (SimpleTuner's `UpdateOrgRequest`).
pub(super) struct ProfilePatch {
    name: Option<String>,
    description: Option<String>,
    settings: Option<Map<String, Value>>,
    is_active: Option<bool>,
}

pub(super) fn profile_patch(body: &Value) -> Result<ProfilePatch, ApiError> {
    let obj = object_with_fields(
        body,
        &["name", "description", "settings", "is_active"],
        "invalid_request",
    )?;
    let is_active = match obj.get("is_active") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_bool()
                .ok_or_else(|| ApiError::bad_request("is_active must be true or false"))?,
        ),
    };
    Ok(ProfilePatch {
        name: text(obj, "name", 100)?,
        description: optional_text(obj, "description", 500)?,
        settings: settings(obj)?,
        is_active,
    })
}

pub(super) fn apply(profile: &mut Profile, patch: &ProfilePatch) {
    if let Some(v) = &patch.name {
        profile.name = v.clone();
    }
    if let Some(v) = &patch.description {
        profile.description = v.clone();
    }
    if let Some(v) = &patch.settings {
        profile.settings = v.clone();
    }
    if let Some(v) = patch.is_active {
        profile.is_active = v;
    }
}

/// What a patch changed, for the event log (names and the active flag only).
pub(super) fn fields(patch: &ProfilePatch) -> Value {
    let mut changed = Vec::new();
    for (name, set) in [
        ("name", patch.name.is_some()),
        ("description", patch.description.is_some()),
        ("settings", patch.settings.is_some()),
        ("is_active", patch.is_active.is_some()),
    ] {
        if set {
            changed.push(name);
        }
    }
    json!({"fields": changed, "is_active": patch.is_active})
}

fn missing(field: &str) -> ApiError {
    ApiError::bad_request(format!("{field} is required")).with_detail("field", field)
}

/// A non-empty string of at most `max` characters, if present.
fn text(obj: &Map<String, Value>, field: &str, max: usize) -> Result<Option<String>, ApiError> {
    let Some(s) = optional_text(obj, field, max)? else {
        return Ok(None);
    };
    if s.trim().is_empty() {
        return Err(
            ApiError::bad_request(format!("{field} must not be empty")).with_detail("field", field)
        );
    }
    Ok(Some(s))
}

fn optional_text(
    obj: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(ApiError::bad_request(format!(
            "{field} must be at most {max} characters"
        ))
        .with_detail("field", field)),
        Some(_) => {
            Err(ApiError::bad_request(format!("{field} must be a string"))
                .with_detail("field", field))
        }
    }
}

/// `settings`: an object of at most 4 KiB (it is stored as given).
fn settings(obj: &Map<String, Value>) -> Result<Option<Map<String, Value>>, ApiError> {
    match obj.get("settings") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) if Value::Object(m.clone()).to_string().len() <= 4096 => {
            Ok(Some(m.clone()))
        }
        Some(_) => Err(
            ApiError::bad_request("settings must be a JSON object of at most 4 KiB")
                .with_detail("field", "settings"),
        ),
    }
}

/// `{"user_id", "role"?}`: the user (an integer id, or an id or username)
/// and a team role (default `member`). `user_id` is optional on a `PATCH`,
/// whose path names the user.
pub(super) fn membership(body: &Value, need_user: bool) -> Result<(String, String), ApiError> {
    let obj = object_with_fields(body, &["user_id", "role"], "invalid_request")?;
    let user = match obj.get("user_id") {
        Some(Value::Number(n)) if n.as_u64().is_some() => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        None if !need_user => String::new(),
        None => return Err(missing("user_id")),
        Some(_) => {
            return Err(
                ApiError::bad_request("user_id must be a user's integer id or name")
                    .with_detail("field", "user_id"),
            );
        }
    };
    let role = match obj.get("role") {
        None | Some(Value::Null) => "member",
        Some(Value::String(r)) if TEAM_ROLES.contains(&r.as_str()) => r.as_str(),
        Some(_) => {
            return Err(ApiError::new(
                400,
                "invalid_role",
                "role must be member, lead or admin",
            ));
        }
    };
    Ok((user, role.to_string()))
}
