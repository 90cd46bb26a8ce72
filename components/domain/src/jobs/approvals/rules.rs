//! Approval rules: SimpleTuner's `ApprovalRule`, its request body, and the
//! evaluation of its conditions against a submit.
//!
//! Deliberate differences from SimpleTuner 4.10.1:
//! - `user_level` holds users *below* the level (it held anyone without
//!   exactly that level name, so a `lead` rule held admins);
//! - thresholds are checked when a rule is saved (a bad `cost_exceeds` was
//!   stored and silently never matched);
//! - `config_pattern` is a glob only (its regex form is refused, 400);
//! - `expires_hours` per rule (cloudtuner's; default 24, SimpleTuner's fixed
//!   expiry).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{DEFAULT_EXPIRES_HOURS, level_rank};
use crate::kernel::clock::rfc3339;
use crate::kernel::error::{ApiError, object_with_fields};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    CostExceeds,
    HardwareType,
    Provider,
    UserLevel,
    DailyJobsExceed,
    FirstJob,
    ConfigPattern,
}

pub const CONDITIONS: [Condition; 7] = [
    Condition::CostExceeds,
    Condition::HardwareType,
    Condition::Provider,
    Condition::UserLevel,
    Condition::DailyJobsExceed,
    Condition::FirstJob,
    Condition::ConfigPattern,
];

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::CostExceeds => "cost_exceeds",
            Condition::HardwareType => "hardware_type",
            Condition::Provider => "provider",
            Condition::UserLevel => "user_level",
            Condition::DailyJobsExceed => "daily_jobs_exceed",
            Condition::FirstJob => "first_job",
            Condition::ConfigPattern => "config_pattern",
        }
    }

    /// SimpleTuner's `_condition_description`.
    pub fn description(self) -> &'static str {
        match self {
            Condition::CostExceeds => "Estimated cost exceeds threshold (in USD)",
            Condition::HardwareType => "Specific hardware type is requested (glob, e.g. '*H100*')",
            Condition::Provider => "Specific cloud provider is used",
            Condition::UserLevel => "User's level is below specified level",
            Condition::DailyJobsExceed => "User's daily job count exceeds threshold",
            Condition::FirstJob => "This is the user's first job",
            Condition::ConfigPattern => "Config name matches pattern (glob)",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        CONDITIONS.into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub condition: Condition,
    pub threshold: String,
    pub is_active: bool,
    /// Higher first.
    pub priority: i64,
    pub applies_to_provider: Option<String>,
    pub applies_to_level: Option<String>,
    #[serde(default)]
    pub exempt_levels: Vec<String>,
    pub required_approver_level: String,
    pub expires_hours: u32,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// The creator's integer user id.
    pub created_by: Option<u64>,
}

impl Rule {
    /// SimpleTuner's `RuleResponse`, plus the fields its CLI's `rules`
    /// table reads (`type`, `enabled`).
    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "condition": self.condition.as_str(),
            "threshold": self.threshold,
            "is_active": self.is_active,
            "enabled": self.is_active,
            "type": format!("{} ({} {})", self.name, self.condition.as_str(), self.threshold),
            "priority": self.priority,
            "applies_to_provider": self.applies_to_provider,
            "applies_to_level": self.applies_to_level,
            "exempt_levels": self.exempt_levels,
            "required_approver_level": self.required_approver_level,
            "expires_hours": self.expires_hours,
            "created_at": rfc3339(self.created_ms),
            "updated_at": rfc3339(self.updated_ms),
            "created_by": self.created_by,
        })
    }
}

const FIELDS: [&str; 11] = [
    "name",
    "description",
    "condition",
    "threshold",
    "is_active",
    "priority",
    "applies_to_provider",
    "applies_to_level",
    "exempt_levels",
    "required_approver_level",
    "expires_hours",
];

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "invalid_rule", message)
}

fn text(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(invalid(format!("`{key}` must be a string"))),
    }
}

fn level(value: Option<String>, key: &str) -> Result<Option<String>, ApiError> {
    match value {
        Some(l) if level_rank(&l).is_none() => Err(invalid(format!(
            "`{key}` must be a level: viewer, researcher, lead or admin (not {l:?})"
        ))),
        other => Ok(other.map(|l| l.to_ascii_lowercase())),
    }
}

/// A rule from SimpleTuner's `RuleCreateRequest` (POST creates, PATCH sends
/// the whole rule again, as its UI does; fields left out keep `base`'s).
pub fn from_body(body: &Value, base: Option<&Rule>, now_ms: u64) -> Result<Rule, ApiError> {
    let body = object_with_fields(body, &FIELDS, "invalid_rule")?;
    let name = match (text(body, "name")?, base) {
        (Some(n), _) if n.chars().count() > 200 => {
            return Err(invalid("`name` is longer than 200 characters"));
        }
        (Some(n), _) => n,
        (None, Some(b)) => b.name.clone(),
        (None, None) => return Err(invalid("`name` is required")),
    };
    let condition = match (text(body, "condition")?, base) {
        (Some(c), _) => Condition::parse(&c).ok_or_else(|| {
            let valid: Vec<&str> = CONDITIONS.iter().map(|c| c.as_str()).collect();
            invalid(format!(
                "Invalid condition: {c}. Valid: {}",
                valid.join(", ")
            ))
        })?,
        (None, Some(b)) => b.condition,
        (None, None) => return Err(invalid("`condition` is required")),
    };
    let threshold = text(body, "threshold")?
        .or_else(|| base.map(|b| b.threshold.clone()))
        .unwrap_or_else(|| "true".into());
    check_threshold(condition, &threshold)?;
    let keep = |key: &str| base.is_some() && !body.contains_key(key);
    let exempt_levels = match body.get("exempt_levels") {
        None | Some(Value::Null) => base.map(|b| b.exempt_levels.clone()).unwrap_or_default(),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                let l = item.as_str().map(str::to_string);
                out.push(
                    level(l, "exempt_levels")?
                        .ok_or_else(|| invalid("`exempt_levels` must be a list of level names"))?,
                );
            }
            out
        }
        Some(_) => return Err(invalid("`exempt_levels` must be a list of level names")),
    };
    let approver = level(
        text(body, "required_approver_level")?,
        "required_approver_level",
    )?
    .or_else(|| base.map(|b| b.required_approver_level.clone()))
    .unwrap_or_else(|| "lead".into());
    if level_rank(&approver) < level_rank("lead") {
        return Err(invalid(
            "`required_approver_level` must be lead or admin: only they may approve",
        ));
    }
    Ok(Rule {
        id: base.map_or(0, |b| b.id),
        name,
        description: text(body, "description")?
            .or_else(|| base.map(|b| b.description.clone()))
            .unwrap_or_default(),
        condition,
        threshold,
        is_active: match body.get("is_active") {
            Some(Value::Bool(b)) => *b,
            None | Some(Value::Null) => base.is_none_or(|b| b.is_active),
            Some(_) => return Err(invalid("`is_active` must be true or false")),
        },
        priority: match body.get("priority") {
            None | Some(Value::Null) => base.map_or(0, |b| b.priority),
            Some(v) => v
                .as_i64()
                .ok_or_else(|| invalid("`priority` must be an integer"))?,
        },
        applies_to_provider: if keep("applies_to_provider") {
            base.and_then(|b| b.applies_to_provider.clone())
        } else {
            text(body, "applies_to_provider")?
        },
        applies_to_level: if keep("applies_to_level") {
            base.and_then(|b| b.applies_to_level.clone())
        } else {
            level(text(body, "applies_to_level")?, "applies_to_level")?
        },
        exempt_levels,
        required_approver_level: approver,
        expires_hours: match body.get("expires_hours") {
            None | Some(Value::Null) => base.map_or(DEFAULT_EXPIRES_HOURS, |b| b.expires_hours),
            Some(v) => v
                .as_u64()
                .filter(|h| (1..=24 * 30).contains(h))
                .map(|h| h as u32)
                .ok_or_else(|| invalid("`expires_hours` must be 1-720"))?,
        },
        created_ms: base.map_or(now_ms, |b| b.created_ms),
        updated_ms: now_ms,
        created_by: base.and_then(|b| b.created_by),
    })
}

fn check_threshold(condition: Condition, threshold: &str) -> Result<(), ApiError> {
    let ok = match condition {
        Condition::CostExceeds => threshold
            .parse::<f64>()
            .is_ok_and(|v| v.is_finite() && v >= 0.0),
        Condition::DailyJobsExceed => threshold.parse::<u64>().is_ok(),
        Condition::UserLevel => level_rank(threshold).is_some(),
        Condition::ConfigPattern => !(threshold.starts_with('^') || threshold.ends_with('$')),
        Condition::HardwareType | Condition::Provider | Condition::FirstJob => true,
    };
    if ok {
        return Ok(());
    }
    Err(invalid(match condition {
        Condition::CostExceeds => format!("cost_exceeds needs a dollar amount, not {threshold:?}"),
        Condition::DailyJobsExceed => {
            format!("daily_jobs_exceed needs a whole number of jobs, not {threshold:?}")
        }
        Condition::UserLevel => {
            format!("user_level needs a level (viewer, researcher, lead, admin), not {threshold:?}")
        }
        _ => format!(
            "config_pattern is a glob (* and ?); regular expressions such as {threshold:?} are not supported"
        ),
    }))
}

/// What a submit is judged on.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// The submitter's role (SimpleTuner's level).
    pub level: String,
    pub provider: String,
    pub config_name: Option<String>,
    pub estimated_cost: f64,
    pub hardware_type: Option<String>,
    /// Filled only when a rule needs them (they cost a job-list read).
    pub jobs_today: u64,
    pub jobs_total: u64,
}

/// Whether a rule needs the submitter's job counts.
pub fn needs_history(rule: &Rule) -> bool {
    matches!(
        rule.condition,
        Condition::DailyJobsExceed | Condition::FirstJob
    )
}

/// The first active rule (highest priority first) that holds `s`, with the
/// reason in words. `rules` must be sorted (as [`super::RuleStore::list`]).
pub fn first_match<'r>(rules: &'r [Rule], s: &Subject) -> Option<(&'r Rule, String)> {
    rules
        .iter()
        .filter(|r| r.is_active)
        .find(|r| applies(r, s) && holds(r, s))
        .map(|r| (r, reason(r, s)))
}

fn applies(rule: &Rule, s: &Subject) -> bool {
    rule.applies_to_provider
        .as_ref()
        .is_none_or(|p| p == &s.provider)
        && rule
            .applies_to_level
            .as_ref()
            .is_none_or(|l| l.eq_ignore_ascii_case(&s.level))
        && !rule
            .exempt_levels
            .iter()
            .any(|l| l.eq_ignore_ascii_case(&s.level))
}

fn holds(rule: &Rule, s: &Subject) -> bool {
    let t = rule.threshold.as_str();
    match rule.condition {
        Condition::CostExceeds => t.parse::<f64>().is_ok_and(|v| s.estimated_cost > v),
        Condition::HardwareType => s.hardware_type.as_deref().is_some_and(|h| glob(t, h)),
        Condition::Provider => s.provider == t,
        Condition::UserLevel => level_rank(&s.level) < level_rank(t),
        Condition::DailyJobsExceed => t.parse::<u64>().is_ok_and(|v| s.jobs_today > v),
        Condition::FirstJob => s.jobs_total == 0,
        Condition::ConfigPattern => s.config_name.as_deref().is_some_and(|c| glob(t, c)),
    }
}

/// SimpleTuner's `_format_reason`.
fn reason(rule: &Rule, s: &Subject) -> String {
    match rule.condition {
        Condition::CostExceeds => format!(
            "Estimated cost (${:.2}) exceeds threshold (${})",
            s.estimated_cost, rule.threshold
        ),
        Condition::HardwareType => format!(
            "Hardware type '{}' requires approval",
            s.hardware_type.as_deref().unwrap_or_default()
        ),
        Condition::Provider => format!("Provider '{}' requires approval", s.provider),
        Condition::UserLevel => format!("Users below {} need approval to run jobs", rule.threshold),
        Condition::DailyJobsExceed => format!(
            "Daily job limit exceeded ({} jobs today, threshold {})",
            s.jobs_today, rule.threshold
        ),
        Condition::FirstJob => "First job from this user requires approval".into(),
        Condition::ConfigPattern => format!(
            "Config '{}' matches approval-required pattern",
            s.config_name.as_deref().unwrap_or_default()
        ),
    }
}

/// fnmatch-style glob, case-insensitive: `*` any run, `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}
