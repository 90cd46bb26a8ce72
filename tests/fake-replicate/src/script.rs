//! Scripted prediction timelines: what a prediction looks like `t` seconds
//! after it was created, on the fake's clock.

use serde_json::Value;

/// One change in a prediction's life, `at` seconds after creation.
#[derive(Debug, Clone)]
pub struct Step {
    pub at: u64,
    /// `starting`, `processing`, `succeeded`, `failed`, `canceled` or `aborted`.
    pub status: Option<String>,
    /// Appended to `logs`.
    pub logs: String,
    pub error: Option<String>,
    pub output: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct Script {
    pub steps: Vec<Step>,
}

pub fn is_terminal(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "canceled" | "aborted")
}

/// How a scripted training ends.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded { output: Value },
    Failed { error: String },
    Aborted,
}

impl Script {
    /// A prediction that stays `starting` forever.
    pub fn stuck() -> Self {
        Self::default()
    }

    /// starting at 0 s; processing at `boot`; one `step i/total ... loss=...`
    /// line every `step_secs`; then `outcome` after the last step.
    pub fn training(boot: u64, total_steps: u32, step_secs: u64, outcome: Outcome) -> Self {
        let mut steps = vec![Step {
            at: boot,
            status: Some("processing".into()),
            logs: "Loading model...\nPreprocessing dataset: 12 images\nWarming up\n".into(),
            error: None,
            output: None,
        }];
        let mut at = boot;
        for i in 1..=total_steps {
            at += step_secs;
            let loss = 0.5 / (1.0 + f64::from(i) / 10.0);
            steps.push(Step {
                at,
                status: None,
                logs: format!("epoch 1/1 step {i}/{total_steps} lr=1e-4 loss={loss:.4}\n"),
                error: None,
                output: None,
            });
        }
        at += step_secs.max(1);
        let (status, error, output, logs) = match outcome {
            Outcome::Succeeded { output } => (
                "succeeded",
                None,
                Some(output),
                "Saving checkpoint\nTraining complete\n",
            ),
            Outcome::Failed { error } => {
                ("failed", Some(error), None, "Traceback: training crashed\n")
            }
            Outcome::Aborted => ("aborted", None, None, ""),
        };
        steps.push(Step {
            at,
            status: Some(status.into()),
            logs: logs.into(),
            error,
            output,
        });
        Self { steps }
    }

    /// Seconds until the script ends (its last step).
    pub fn duration(&self) -> u64 {
        self.steps.last().map(|s| s.at).unwrap_or(0)
    }
}
