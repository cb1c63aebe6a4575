//! Phone numbers as people type them, parsed once into E.164.
//!
//! Accepts national Finnish forms (`0295 50 2000`, `029-5502000`), the
//! international forms (`+358 29 550 2000`, `00358 29 550 2000`,
//! `+358 (0)29 550 2000`) with spaces, hyphens, dots, slashes and brackets as
//! separators. A number without `+`, `00` or the national trunk prefix `0`
//! is refused rather than guessed at.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// The country code assumed for national numbers (Finland).
pub const DEFAULT_COUNTRY_CODE: &str = "358";

/// Fewest digits (country code included) of a number we accept.
pub const MIN_DIGITS: usize = 7;
/// Most digits E.164 allows (country code included).
pub const MAX_DIGITS: usize = 15;

/// A phone number in E.164 form (`+358295502000`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

/// Why a typed phone number was refused. Positions are 1-based characters
/// of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberError {
    #[error("phone number is empty")]
    Empty,
    #[error(
        "phone number has {found:?} at position {position}; only digits, a leading '+', spaces, '-', '.', '/' and brackets are allowed"
    )]
    InvalidCharacter { found: char, position: usize },
    #[error("phone number has '+' at position {position}; '+' may only start the number")]
    MisplacedPlus { position: usize },
    #[error(
        "phone number has {digits} digits with its country code; at least {MIN_DIGITS} are needed"
    )]
    TooShort { digits: usize },
    #[error(
        "phone number has {digits} digits with its country code; E.164 allows at most {MAX_DIGITS}"
    )]
    TooLong { digits: usize },
    #[error("phone number must start with '+' and a country code, '00', or the trunk prefix '0'")]
    MissingPrefix,
    #[error("phone number's country code can't start with 0")]
    InvalidCountryCode,
}

impl PhoneNumber {
    /// Parses what a person typed.
    pub fn parse(input: &str) -> Result<Self, PhoneNumberError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneNumberError::Empty);
        }
        let mut digits = String::with_capacity(16);
        let mut plus = false;
        let mut chars = trimmed.char_indices().peekable();
        let mut position = 0usize;
        while let Some((byte_index, c)) = chars.next() {
            position += 1;
            match c {
                '0'..='9' => digits.push(c),
                '+' if digits.is_empty() && !plus && position == 1 => plus = true,
                '+' => return Err(PhoneNumberError::MisplacedPlus { position }),
                // `+358 (0)29…`: the bracketed trunk zero of an international
                // number is dropped, as a person dialling from abroad would.
                '(' if trimmed[byte_index..].starts_with("(0)")
                    && (plus || digits.starts_with("00")) =>
                {
                    chars.next();
                    chars.next();
                    position += 2;
                }
                ' ' | '-' | '.' | '/' | '(' | ')' | '\u{a0}' => {}
                found => return Err(PhoneNumberError::InvalidCharacter { found, position }),
            }
        }
        let international = if plus {
            digits
        } else if let Some(rest) = digits.strip_prefix("00") {
            rest.to_owned()
        } else if let Some(rest) = digits.strip_prefix('0') {
            format!("{DEFAULT_COUNTRY_CODE}{rest}")
        } else if digits.is_empty() {
            return Err(PhoneNumberError::Empty);
        } else {
            return Err(PhoneNumberError::MissingPrefix);
        };
        if international.starts_with('0') {
            return Err(PhoneNumberError::InvalidCountryCode);
        }
        // `+358 040…` / `00358 09…`: the Finnish trunk zero typed after the
        // country code is not part of the number (else one number would
        // have two forms, and a data subject's calls be missed).
        let international = match international.strip_prefix(DEFAULT_COUNTRY_CODE) {
            Some(rest) if rest.starts_with('0') => {
                format!("{DEFAULT_COUNTRY_CODE}{}", rest.trim_start_matches('0'))
            }
            _ => international,
        };
        match international.len() {
            n if n < MIN_DIGITS => Err(PhoneNumberError::TooShort { digits: n }),
            n if n > MAX_DIGITS => Err(PhoneNumberError::TooLong { digits: n }),
            _ => Ok(Self(format!("+{international}"))),
        }
    }

    /// The E.164 form, `+` and digits.
    pub fn as_e164(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.0)
    }
}

impl FromStr for PhoneNumber {
    type Err = PhoneNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = PhoneNumberError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PhoneNumber> for String {
    fn from(value: PhoneNumber) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_ways_people_type_one_number_all_parse_to_the_same_e164() {
        for typed in [
            "0295 50 2000",
            "+358 29 550 2000",
            "029-5502000",
            "00358 29 550 2000",
            "+358 (0)29 550 2000",
            "(029) 550 2000",
            "029.550.2000",
            " 0295502000 ",
            "+358 0295 50 2000",
            "00358 029 550 2000",
            "+358 (029) 550 2000",
        ] {
            assert_eq!(
                PhoneNumber::parse(typed).map(|p| p.to_string()),
                Ok("+358295502000".to_owned()),
                "{typed}"
            );
        }
    }

    #[test]
    fn foreign_numbers_keep_their_country_code() {
        assert_eq!(
            PhoneNumber::parse("+46 8 123 456 78").unwrap().as_e164(),
            "+46812345678"
        );
    }

    #[test]
    fn garbage_is_refused_with_the_place_of_the_fault() {
        use PhoneNumberError::*;
        assert_eq!(PhoneNumber::parse(""), Err(Empty));
        assert_eq!(PhoneNumber::parse("  - "), Err(Empty));
        assert_eq!(
            PhoneNumber::parse("029x5502000"),
            Err(InvalidCharacter {
                found: 'x',
                position: 4
            })
        );
        assert_eq!(
            PhoneNumber::parse("029+5502000"),
            Err(MisplacedPlus { position: 4 })
        );
        assert_eq!(PhoneNumber::parse("295502000"), Err(MissingPrefix));
        assert_eq!(PhoneNumber::parse("0123"), Err(TooShort { digits: 6 }));
        assert_eq!(
            PhoneNumber::parse("+3581234567890123"),
            Err(TooLong { digits: 16 })
        );
        assert_eq!(PhoneNumber::parse("+0123456789"), Err(InvalidCountryCode));
    }

    #[test]
    fn errors_read_well() {
        let err = PhoneNumber::parse("029x5502000").unwrap_err();
        assert_eq!(
            err.to_string(),
            "phone number has 'x' at position 4; only digits, a leading '+', spaces, '-', '.', '/' and brackets are allowed"
        );
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let p = PhoneNumber::parse("0295502000").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"+358295502000\"");
        assert_eq!(serde_json::from_str::<PhoneNumber>(&json).unwrap(), p);
        assert!(serde_json::from_str::<PhoneNumber>("\"abc\"").is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_output_is_e164(s in "\\PC{0,40}") {
            if let Ok(p) = PhoneNumber::parse(&s) {
                let e = p.as_e164();
                prop_assert!(e.starts_with('+'));
                prop_assert!(e[1..].chars().all(|c| c.is_ascii_digit()));
                prop_assert!((MIN_DIGITS..=MAX_DIGITS).contains(&(e.len() - 1)));
                // E.164 output parses to itself.
                prop_assert_eq!(PhoneNumber::parse(e).unwrap(), p);
            }
        }

        #[test]
        fn separators_do_not_change_the_number(n in "0[1-9][0-9]{6,10}", seps in proptest::collection::vec(prop_oneof![Just(" "), Just("-"), Just(".")], 0..4)) {
            let mut typed = n.clone();
            for (i, sep) in seps.iter().enumerate() {
                let at = (i * 2 + 2).min(typed.len());
                typed.insert_str(at, sep);
            }
            prop_assert_eq!(PhoneNumber::parse(&typed), PhoneNumber::parse(&n));
        }
    }
}
