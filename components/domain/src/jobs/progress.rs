//! Structured progress from trainer logs: stage, step/total, epoch, loss and an
//! ETA, plus a bounded loss history for the UI's chart.
//!
//! Lines look like `epoch 1/1 step 120/1000 lr=1e-4 loss=0.1234` (SimpleTuner
//! prints several variants; `step`, `steps`, `loss:`/`loss=` are all read).

use serde::{Deserialize, Serialize};

/// Loss points kept per job (newest kept when full).
pub const MAX_LOSS_POINTS: usize = 500;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub stage: Option<String>,
    pub step: Option<u64>,
    pub total_steps: Option<u64>,
    pub percent: Option<f64>,
    pub epoch: Option<u64>,
    pub total_epochs: Option<u64>,
    pub loss: Option<f64>,
    pub eta_seconds: Option<u64>,
    pub updated_ms: u64,
}

/// `(step, loss)` points.
pub type LossHistory = Vec<(u64, f64)>;

fn fraction_after(line: &str, word: &str) -> Option<(u64, u64)> {
    let lower = line.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(word) {
        let start = from + i + word.len();
        let rest = lower[start..].trim_start_matches([' ', ':', '=']);
        let num: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = &rest[num.len()..];
        let after = after.trim_start();
        if let (Ok(n), Some(tail)) = (
            num.parse::<u64>(),
            after
                .strip_prefix('/')
                .or_else(|| after.strip_prefix("of ")),
        ) {
            let total: String = tail
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(t) = total.parse::<u64>()
                && t > 0
            {
                return Some((n, t));
            }
        }
        from = start;
    }
    None
}

fn loss_in(line: &str) -> Option<f64> {
    let lower = line.to_ascii_lowercase();
    let i = lower.find("loss")?;
    let rest = lower[i + 4..].trim_start_matches([' ', ':', '=']);
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '-' | '+'))
        .collect();
    num.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn stage_of(line: &str) -> Option<&'static str> {
    let l = line.to_ascii_lowercase();
    if l.contains("saving checkpoint") || l.contains("checkpoint saved") {
        Some("saving checkpoint")
    } else if l.contains("validat") {
        Some("validation")
    } else if l.contains("warming up") || l.contains("warmup") {
        Some("warmup")
    } else if l.contains("preprocess") || l.contains("loading model") || l.contains("caching") {
        Some("preprocessing")
    } else if l.contains("step") || l.contains("epoch") {
        Some("training")
    } else {
        None
    }
}

/// Reads the whole log (newest line wins per field) and appends loss points
/// with steps beyond those already in `history`.
pub fn parse(
    logs: &str,
    history: &mut LossHistory,
    started_ms: Option<u64>,
    now_ms: u64,
) -> Progress {
    let mut p = Progress {
        updated_ms: now_ms,
        ..Default::default()
    };
    let last_step = history.last().map(|(s, _)| *s);
    for line in logs.lines() {
        if let Some(s) = stage_of(line) {
            p.stage = Some(s.to_string());
        }
        let step = fraction_after(line, "step");
        if let Some((n, t)) = step {
            p.step = Some(n);
            p.total_steps = Some(t);
        }
        if let Some((n, t)) = fraction_after(line, "epoch") {
            p.epoch = Some(n);
            p.total_epochs = Some(t);
        }
        if let Some(loss) = loss_in(line) {
            p.loss = Some(loss);
            if let Some((n, _)) = step
                && last_step.is_none_or(|l| n > l)
            {
                history.push((n, loss));
            }
        }
    }
    if history.len() > MAX_LOSS_POINTS {
        let excess = history.len() - MAX_LOSS_POINTS;
        history.drain(..excess);
    }
    if let (Some(n), Some(t)) = (p.step, p.total_steps) {
        p.percent = Some(((n as f64 / t as f64) * 1000.0).round() / 10.0);
        if let Some(start) = started_ms
            && n > 0
            && now_ms > start
        {
            let per_step = (now_ms - start) as f64 / n as f64;
            p.eta_seconds = Some((per_step * t.saturating_sub(n) as f64 / 1000.0).round() as u64);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_steps_epochs_loss_stage_and_eta() {
        let logs = "Loading model...\nPreprocessing dataset: 12 images\nWarming up\n\
                    epoch 1/2 step 10/100 lr=1e-4 loss=0.5000\nepoch 1/2 step 20/100 lr=1e-4 loss=0.2500\n";
        let mut h = Vec::new();
        let p = parse(logs, &mut h, Some(0), 20_000);
        assert_eq!(
            (p.step, p.total_steps, p.epoch, p.total_epochs),
            (Some(20), Some(100), Some(1), Some(2))
        );
        assert_eq!(p.loss, Some(0.25));
        assert_eq!(p.percent, Some(20.0));
        assert_eq!(p.stage.as_deref(), Some("training"));
        assert_eq!(p.eta_seconds, Some(80), "1 s per step, 80 steps left");
        assert_eq!(h, vec![(10, 0.5), (20, 0.25)]);
        // Re-reading the same log adds no duplicate points; new steps append.
        let p2 = parse(
            &format!("{logs}Step 30 of 100, loss: 0.125\nSaving checkpoint\n"),
            &mut h,
            Some(0),
            30_000,
        );
        assert_eq!(h, vec![(10, 0.5), (20, 0.25), (30, 0.125)]);
        assert_eq!(p2.stage.as_deref(), Some("saving checkpoint"));
        assert_eq!(parse("nothing here", &mut Vec::new(), None, 1).step, None);
    }

    #[test]
    fn history_is_bounded() {
        let logs: String = (1..=MAX_LOSS_POINTS + 50)
            .map(|i| format!("step {i}/9999 loss=0.1\n"))
            .collect();
        let mut h = Vec::new();
        parse(&logs, &mut h, None, 1);
        assert_eq!(h.len(), MAX_LOSS_POINTS);
        assert_eq!(h[0].0, 51);
    }
}
