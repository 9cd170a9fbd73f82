//! An event's lifecycle status and its merge strategy, with their wire names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Lifecycle of an event, in the order it normally moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Draft,
    Startlist,
    Running,
    Finished,
    Official,
}

impl EventStatus {
    pub const ALL: [EventStatus; 5] = [
        EventStatus::Draft,
        EventStatus::Startlist,
        EventStatus::Running,
        EventStatus::Finished,
        EventStatus::Official,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Draft => "draft",
            EventStatus::Startlist => "startlist",
            EventStatus::Running => "running",
            EventStatus::Finished => "finished",
            EventStatus::Official => "official",
        }
    }

    /// The transitions the lifecycle allows from this state (live-mini's table, kept exactly).
    pub fn valid_transitions(self) -> &'static [EventStatus] {
        match self {
            EventStatus::Draft => &[EventStatus::Startlist],
            EventStatus::Startlist => &[EventStatus::Running, EventStatus::Draft],
            EventStatus::Running => &[EventStatus::Finished],
            EventStatus::Finished => &[EventStatus::Official, EventStatus::Running],
            EventStatus::Official => &[],
        }
    }

    pub fn can_transition_to(self, to: EventStatus) -> bool {
        self.valid_transitions().contains(&to)
    }

    /// Spectators see the event (REST and WebSocket) in every state but draft.
    pub fn is_public(self) -> bool {
        self != EventStatus::Draft
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event status '{0}' (expected draft, startlist, running, finished or official)")]
pub struct UnknownStatus(pub String);

impl FromStr for EventStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// How a conflict between a TCP-set result field and a later XML value is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MergeStrategy {
    /// A field last set by TCP keeps its TCP value until an XML export agrees with it.
    #[default]
    TcpWins,
    /// Every XML import overrides TCP values; TCP fills in between imports.
    XmlWins,
}

impl MergeStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeStrategy::TcpWins => "tcp-wins",
            MergeStrategy::XmlWins => "xml-wins",
        }
    }
}

impl FromStr for MergeStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp-wins" => Ok(MergeStrategy::TcpWins),
            "xml-wins" => Ok(MergeStrategy::XmlWins),
            other => Err(format!(
                "unknown merge strategy '{other}' (expected tcp-wins or xml-wins)"
            )),
        }
    }
}

impl fmt::Display for MergeStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_table_matches_reference() {
        use EventStatus::*;
        let allowed: Vec<(EventStatus, EventStatus)> = EventStatus::ALL
            .iter()
            .flat_map(|&a| EventStatus::ALL.iter().map(move |&b| (a, b)))
            .filter(|&(a, b)| a.can_transition_to(b))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Draft, Startlist),
                (Startlist, Draft),
                (Startlist, Running),
                (Running, Finished),
                (Finished, Running),
                (Finished, Official),
            ]
        );
    }
}
