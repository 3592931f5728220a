//! One alerting rule's alerts and their states, as upstream moves them: a new match is
//! *pending*, *firing* once it has matched for `for`, *inactive* (resolved) when it stops
//! matching — kept firing for `keep_firing_for`, reported resolved for 15 minutes, then forgotten.

use std::collections::{BTreeMap, HashMap};

use crate::labels::Labels;

/// How long a resolved alert is still reported (and sent) as resolved.
const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// An alert's annotations by name, templates expanded. Unlike labels, an annotation that expands
/// to "" is kept, as upstream shows and sends it.
pub type Annotations = BTreeMap<String, String>;

/// One alert: a label set the rule's expression returned. Times are Unix ms.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: Annotations,
    pub state: AlertState,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub keep_firing_since: Option<i64>,
    /// Alertmanager treats a firing alert as resolved after this unless it is sent again.
    pub valid_until: i64,
}

impl Alert {
    /// Upstream's `needsSending`: pending never; resolved once; firing every `resend_delay`.
    fn needs_sending(&self, t: i64, resend_delay: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        let last = self.last_sent_at.unwrap_or(i64::MIN);
        if self.resolved_at.is_some_and(|r| r > last) {
            return true;
        }
        last.saturating_add(resend_delay) < t
    }
}

/// The alerts of one alerting rule, by label set.
#[derive(Debug, Default)]
pub struct ActiveAlerts {
    pub alerts: HashMap<Labels, Alert>,
}

/// One evaluation's match: the alert's labels and annotations (templates expanded) and value.
pub struct Match {
    pub labels: Labels,
    pub annotations: Annotations,
    pub value: f64,
}

impl ActiveAlerts {
    /// Applies one evaluation at `t`; returns how many alerts are pending or firing.
    pub fn update(&mut self, t: i64, matches: Vec<Match>, hold: i64, keep_firing_for: i64) -> usize {
        let mut seen = std::collections::HashSet::new();
        for m in matches {
            seen.insert(m.labels.clone());
            match self.alerts.get_mut(&m.labels) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = m.value;
                    a.annotations = m.annotations;
                }
                _ => {
                    let alert = Alert {
                        labels: m.labels.clone(),
                        annotations: m.annotations,
                        state: AlertState::Pending,
                        value: m.value,
                        active_at: t,
                        fired_at: None,
                        resolved_at: None,
                        last_sent_at: None,
                        keep_firing_since: None,
                        valid_until: 0,
                    };
                    self.alerts.insert(m.labels, alert);
                }
            }
        }
        let mut active = 0;
        self.alerts.retain(|labels, a| {
            if seen.contains(labels) {
                a.keep_firing_since = None;
            } else {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_firing_for > 0 {
                    let since = *a.keep_firing_since.get_or_insert(t);
                    keep_firing = t - since < keep_firing_for;
                }
                let stale_resolved = a.resolved_at.is_some_and(|r| t - r > RESOLVED_RETENTION_MS);
                if a.state == AlertState::Pending || stale_resolved {
                    return false;
                }
                if !keep_firing {
                    if a.state != AlertState::Inactive {
                        a.state = AlertState::Inactive;
                        a.resolved_at = Some(t);
                    }
                    return true;
                }
            }
            active += 1;
            if a.state == AlertState::Pending && t.saturating_sub(a.active_at) >= hold {
                a.state = AlertState::Firing;
                a.fired_at = Some(t);
            }
            true
        });
        active
    }

    /// The alerts to send at `t` (marked sent), valid for four resend periods.
    pub fn take_due(&mut self, t: i64, resend_delay: i64, interval: i64) -> Vec<Alert> {
        let valid_for = 4 * resend_delay.max(interval);
        let mut out: Vec<Alert> = self
            .alerts
            .values_mut()
            .filter(|a| a.needs_sending(t, resend_delay))
            .map(|a| {
                a.last_sent_at = Some(t);
                a.valid_until = t + valid_for;
                a.clone()
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Pending and firing alerts, sorted by labels.
    pub fn active(&self) -> Vec<&Alert> {
        let mut out: Vec<&Alert> = self.alerts.values().filter(|a| a.state != AlertState::Inactive).collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matching(v: f64) -> Vec<Match> {
        vec![Match { labels: Labels::from_pairs([("alertname", "A")]), annotations: Annotations::new(), value: v }]
    }

    fn state(alerts: &ActiveAlerts) -> Option<AlertState> {
        alerts.alerts.values().next().map(|a| a.state)
    }

    #[test]
    fn pending_then_firing_then_resolved_then_forgotten() {
        let mut alerts = ActiveAlerts::default();
        let min = 60_000;
        assert_eq!(alerts.update(0, matching(1.0), 2 * min, 0), 1);
        assert_eq!(state(&alerts), Some(AlertState::Pending));
        assert!(alerts.take_due(0, min, min).is_empty(), "pending alerts are not sent");
        alerts.update(min, matching(2.0), 2 * min, 0);
        assert_eq!(state(&alerts), Some(AlertState::Pending));
        alerts.update(2 * min, matching(3.0), 2 * min, 0);
        assert_eq!(state(&alerts), Some(AlertState::Firing));
        let sent = alerts.take_due(2 * min, min, min);
        assert_eq!((sent.len(), sent[0].value, sent[0].valid_until), (1, 3.0, 6 * min));
        assert!(alerts.take_due(2 * min + 30_000, min, min).is_empty(), "resent only after the resend delay");
        assert_eq!(alerts.take_due(3 * min + 1, min, min).len(), 1);
        assert_eq!(alerts.update(4 * min, vec![], 2 * min, 0), 0);
        assert_eq!(state(&alerts), Some(AlertState::Inactive));
        assert_eq!(alerts.take_due(4 * min, min, min)[0].resolved_at, Some(4 * min), "resolution is sent at once");
        alerts.update(20 * min, vec![], 2 * min, 0);
        assert_eq!(state(&alerts), None, "forgotten 15 minutes after resolution");
    }

    #[test]
    fn a_pending_alert_that_stops_matching_is_dropped_and_keep_firing_for_holds() {
        let mut alerts = ActiveAlerts::default();
        alerts.update(0, matching(1.0), 60_000, 0);
        alerts.update(30_000, vec![], 60_000, 0);
        assert_eq!(state(&alerts), None);
        alerts.update(0, matching(1.0), 0, 120_000);
        assert_eq!(state(&alerts), Some(AlertState::Firing), "for: 0 fires at once");
        alerts.update(60_000, vec![], 0, 120_000);
        assert_eq!(state(&alerts), Some(AlertState::Firing), "kept firing");
        alerts.update(120_000, vec![], 0, 120_000);
        assert_eq!(state(&alerts), Some(AlertState::Firing), "kept firing for 2m after the last match");
        alerts.update(180_000, vec![], 0, 120_000);
        assert_eq!(state(&alerts), Some(AlertState::Inactive));
    }
}
