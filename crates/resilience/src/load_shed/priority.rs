//! [`Priority`] of a request and the shedder's [`LoadLevel`].

use std::fmt;
use std::str::FromStr;

/// How important a request is: the less important, the earlier it is shed.
///
/// Parsed case-insensitively from `"critical"`, `"high"`, `"normal"` and `"low"` (surrounding
/// whitespace ignored); any other string is a [`ParsePriorityError`], never a silent default.
///
/// ```
/// use resilience::load_shed::Priority;
///
/// assert_eq!("HIGH".parse::<Priority>(), Ok(Priority::High));
/// assert_eq!(" low ".parse::<Priority>(), Ok(Priority::Low));
/// assert!("urgent".parse::<Priority>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Priority {
    /// Shed first: above `low_threshold` utilisation (60 % by default).
    Low,
    /// The default: shed above `normal_threshold` (75 %).
    #[default]
    Normal,
    /// Shed above `high_threshold` (90 %).
    High,
    /// Never shed below the hard cap (`max_requests`); at the cap it waits in the queue.
    Critical,
}

impl Priority {
    /// Every priority, least important first.
    pub const ALL: [Self; 4] = [Self::Low, Self::Normal, Self::High, Self::Critical];

    /// The priority's name in `snake_case`, as events and logs spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = ParsePriorityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        Self::ALL
            .into_iter()
            .find(|priority| priority.as_str().eq_ignore_ascii_case(trimmed))
            .ok_or_else(|| ParsePriorityError {
                input: text.to_owned(),
            })
    }
}

/// A string that names no [`Priority`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsePriorityError {
    input: String,
}

impl ParsePriorityError {
    /// The string that was rejected.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for ParsePriorityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown priority {:?}: expected critical, high, normal or low",
            self.input
        )
    }
}

impl std::error::Error for ParsePriorityError {}

/// How loaded the shedder is, from its utilisation (active / `max_requests`) as
/// aioresilience computes it: above 90 % critical, above 75 % high, above 60 % elevated. With the
/// `system` feature the CPU and memory levels count too, and the higher of the two is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum LoadLevel {
    /// Utilisation at most 60 %.
    #[default]
    Normal,
    /// Above 60 %.
    Elevated,
    /// Above 75 %.
    High,
    /// Above 90 %.
    Critical,
}

impl LoadLevel {
    /// The level of a utilisation ratio; the comparisons are strict.
    pub fn from_utilization(utilization: f64) -> Self {
        if utilization > 0.90 {
            Self::Critical
        } else if utilization > 0.75 {
            Self::High
        } else if utilization > 0.60 {
            Self::Elevated
        } else {
            Self::Normal
        }
    }

    /// The level's name in `snake_case`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Elevated => "elevated",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// The integer code, as in aioresilience (`NORMAL` 0 to `CRITICAL` 3).
    pub const fn code(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for LoadLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_parse_case_insensitively_and_typos_fail() {
        for priority in Priority::ALL {
            let upper = priority.as_str().to_uppercase();
            assert_eq!(upper.parse::<Priority>(), Ok(priority));
            assert_eq!(priority.to_string().parse::<Priority>(), Ok(priority));
        }
        assert_eq!("\tCrItIcAl\n".parse::<Priority>(), Ok(Priority::Critical));
        let error = "hihg".parse::<Priority>().unwrap_err();
        assert_eq!(error.input(), "hihg");
        assert!(error.to_string().contains("hihg"));
        assert!("".parse::<Priority>().is_err());
        assert!(Priority::Low < Priority::Critical);
    }

    #[test]
    fn load_levels_are_the_seeds_with_strict_bounds() {
        let level = LoadLevel::from_utilization;
        assert_eq!(level(0.50), LoadLevel::Normal);
        assert_eq!(level(0.60), LoadLevel::Normal);
        assert_eq!(level(0.65), LoadLevel::Elevated);
        assert_eq!(level(0.75), LoadLevel::Elevated);
        assert_eq!(level(0.80), LoadLevel::High);
        assert_eq!(level(0.90), LoadLevel::High);
        assert_eq!(level(0.95), LoadLevel::Critical);
        assert_eq!(LoadLevel::Critical.code(), 3);
    }
}
