//! Kernel-command-line style boot arguments: whitespace-separated
//! `key=value` or bare `key` tokens, as found in `/chosen/bootargs`.
//!
//! Like Linux, a later occurrence of a key overrides an earlier one. No
//! quoting is supported (oxen's test arguments never need it). Numbers are
//! parsed strictly: no sign, no separators, overflow is an error.

use core::fmt;

/// The value of `key` in `cmdline`: `Some("v")` for `key=v`, `Some("")` for
/// a bare `key` or `key=`, `None` when absent. The last occurrence wins.
pub fn arg<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    if key.is_empty() {
        return None;
    }
    cmdline
        .split_ascii_whitespace()
        .filter_map(|tok| match tok.strip_prefix(key)? {
            "" => Some(""),
            rest => rest.strip_prefix('='),
        })
        .next_back()
}

/// Why a number did not parse.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NumError {
    /// No digits.
    Empty,
    /// A character that is not a digit of the base.
    InvalidDigit,
    /// The value does not fit in a `u64`.
    Overflow,
}

impl fmt::Display for NumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty number",
            Self::InvalidDigit => "invalid digit",
            Self::Overflow => "number too large",
        })
    }
}

fn parse_radix(s: &str, radix: u32) -> Result<u64, NumError> {
    if s.is_empty() {
        return Err(NumError::Empty);
    }
    s.chars().try_fold(0u64, |acc, c| {
        let d = c.to_digit(radix).ok_or(NumError::InvalidDigit)?;
        acc.checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or(NumError::Overflow)
    })
}

/// Parse a decimal number.
pub fn parse_dec(s: &str) -> Result<u64, NumError> {
    parse_radix(s, 10)
}

/// Parse a hexadecimal number, with or without a `0x`/`0X` prefix.
pub fn parse_hex(s: &str) -> Result<u64, NumError> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    parse_radix(digits, 16)
}

/// Parse `0x`-prefixed hexadecimal or plain decimal.
pub fn parse_u64(s: &str) -> Result<u64, NumError> {
    if s.starts_with("0x") || s.starts_with("0X") {
        parse_hex(s)
    } else {
        parse_dec(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values() {
        let c = "console=hvc0 oxen.test=count  oxen.count=3\toxen.addr=0x8000000 quiet";
        assert_eq!(arg(c, "oxen.test"), Some("count"));
        assert_eq!(arg(c, "oxen.count"), Some("3"));
        assert_eq!(arg(c, "oxen.addr"), Some("0x8000000"));
        assert_eq!(arg(c, "quiet"), Some(""));
        assert_eq!(arg(c, "console"), Some("hvc0"));
        assert_eq!(arg(c, "oxen"), None, "prefix of a key is not the key");
        assert_eq!(arg(c, "oxen.tes"), None);
        assert_eq!(arg(c, "missing"), None);
        assert_eq!(arg(c, ""), None);
        assert_eq!(arg("", "oxen.test"), None);
    }

    #[test]
    fn last_occurrence_wins_and_values_keep_equals() {
        assert_eq!(arg("a=1 a=2", "a"), Some("2"));
        assert_eq!(arg("a=x=y", "a"), Some("x=y"));
        assert_eq!(arg("a= b", "a"), Some(""));
        assert_eq!(arg("ab=1 a=2 abc=3", "a"), Some("2"));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_dec("0"), Ok(0));
        assert_eq!(parse_dec("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_dec("18446744073709551616"), Err(NumError::Overflow));
        assert_eq!(parse_dec(""), Err(NumError::Empty));
        assert_eq!(parse_dec("+1"), Err(NumError::InvalidDigit));
        assert_eq!(parse_dec("12a"), Err(NumError::InvalidDigit));
        assert_eq!(parse_hex("0x0800_0004"), Err(NumError::InvalidDigit));
        assert_eq!(parse_hex("0x08000004"), Ok(0x0800_0004));
        assert_eq!(parse_hex("DeadBeef"), Ok(0xdead_beef));
        assert_eq!(parse_hex("0X10"), Ok(16));
        assert_eq!(parse_hex("0x"), Err(NumError::Empty));
        assert_eq!(parse_hex("0xffffffffffffffff"), Ok(u64::MAX));
        assert_eq!(parse_hex("0x10000000000000000"), Err(NumError::Overflow));
        assert_eq!(parse_u64("0x40"), Ok(64));
        assert_eq!(parse_u64("40"), Ok(40));
        assert_eq!(parse_u64("4O"), Err(NumError::InvalidDigit));
        assert_eq!(NumError::Overflow.to_string(), "number too large");
    }
}
