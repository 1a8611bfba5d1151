//! What a console line is matched against: a plain substring or a regular expression.
//!
//! A `&str` converts to a substring pattern (the common case: no escaping of `(oxen)`);
//! [`re`] builds a regex pattern. Regexes are unanchored unless written with `^`/`$`.

use regex::Regex;
use std::fmt;

/// A substring or a regular expression matched against one console line.
#[derive(Clone, Debug)]
pub enum Pattern {
    /// Matches lines containing this text.
    Substring(String),
    /// Matches lines in which this regex finds a match.
    Regex(Regex),
}

/// A regex pattern.
///
/// # Panics
/// If `re` is not a valid regular expression (a bug in the test, not in the system under test).
pub fn re(re: &str) -> Pattern {
    match Regex::new(re) {
        Ok(r) => Pattern::Regex(r),
        Err(e) => panic!("invalid regex {re:?}: {e}"),
    }
}

impl Pattern {
    /// Whether `line` matches.
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Pattern::Substring(s) => line.contains(s.as_str()),
            Pattern::Regex(r) => r.is_match(line),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Substring(s) => write!(f, "{s:?}"),
            Pattern::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

impl From<&str> for Pattern {
    fn from(s: &str) -> Self {
        Pattern::Substring(s.to_owned())
    }
}

impl From<String> for Pattern {
    fn from(s: String) -> Self {
        Pattern::Substring(s)
    }
}

impl From<&String> for Pattern {
    fn from(s: &String) -> Self {
        Pattern::Substring(s.clone())
    }
}

impl From<Regex> for Pattern {
    fn from(r: Regex) -> Self {
        Pattern::Regex(r)
    }
}

impl From<&Pattern> for Pattern {
    fn from(p: &Pattern) -> Self {
        p.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substring_is_literal() {
        let p = Pattern::from("(oxen) ERROR");
        assert!(p.matches("(oxen) ERROR: boom"));
        assert!(!p.matches("oxen ERROR"));
        assert_eq!(p.to_string(), "\"(oxen) ERROR\"");
    }

    #[test]
    fn regex_matches_and_displays() {
        let p = re(r"^\(d1\) tick 5$");
        assert!(p.matches("(d1) tick 5"));
        assert!(!p.matches("(d1) tick 50"));
        assert_eq!(p.to_string(), r"/^\(d1\) tick 5$/");
    }

    #[test]
    #[should_panic(expected = "invalid regex")]
    fn invalid_regex_panics_with_message() {
        re("(unclosed");
    }
}
