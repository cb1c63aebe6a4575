//! E-mail addresses for chat transcript orders, checked once where typed.
//!
//! The check is the practical subset of RFC 5321 a mail server accepts:
//! `local@domain`, an unquoted local part of at most 64 characters, a domain
//! of dot-separated labels with at least one dot, at most 254 characters in
//! all. Quoted local parts and address literals are refused.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailAddressError {
    #[error("e-mail address is empty")]
    Empty,
    #[error("e-mail address is longer than 254 characters")]
    TooLong,
    #[error("e-mail address needs exactly one '@' between a local part and a domain")]
    MissingAt,
    #[error("e-mail address's part before '@' is {0}")]
    InvalidLocalPart(&'static str),
    #[error("e-mail address's domain is {0}")]
    InvalidDomain(&'static str),
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, EmailAddressError> {
        use EmailAddressError::*;
        let s = input.trim();
        if s.is_empty() {
            return Err(Empty);
        }
        if s.len() > 254 {
            return Err(TooLong);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(MissingAt)?;
        if local.contains('@') {
            return Err(MissingAt);
        }
        if local.is_empty() {
            return Err(InvalidLocalPart("empty"));
        }
        if local.len() > 64 {
            return Err(InvalidLocalPart("longer than 64 characters"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(InvalidLocalPart("starting, ending or doubling a '.'"));
        }
        let local_ok = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c);
        if !local.chars().all(local_ok) {
            return Err(InvalidLocalPart(
                "holding a character outside a-z, 0-9 and !#$%&'*+/=?^_`{|}~.-",
            ));
        }
        if domain.is_empty() {
            return Err(InvalidDomain("empty"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(InvalidDomain("missing a '.' (as in example.fi)"));
        }
        for label in &labels {
            if label.is_empty() {
                return Err(InvalidDomain(
                    "holding an empty label (a '.' at an end or doubled)",
                ));
            }
            if label.len() > 63 {
                return Err(InvalidDomain("holding a label longer than 63 characters"));
            }
            if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(InvalidDomain(
                    "holding a character outside a-z, 0-9 and '-'",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(InvalidDomain(
                    "holding a label that starts or ends with '-'",
                ));
            }
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.0)
    }
}

impl FromStr for EmailAddress {
    type Err = EmailAddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = EmailAddressError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_are_accepted_and_the_domain_lower_cased() {
        assert_eq!(
            EmailAddress::parse(" Maija.Meikalainen@Example.FI ")
                .unwrap()
                .as_str(),
            "Maija.Meikalainen@example.fi"
        );
        assert!(EmailAddress::parse("a+tag@sub.example.com").is_ok());
    }

    #[test]
    fn malformed_addresses_say_what_is_wrong() {
        use EmailAddressError::*;
        assert_eq!(EmailAddress::parse(""), Err(Empty));
        assert_eq!(EmailAddress::parse("no-at.example.fi"), Err(MissingAt));
        assert_eq!(EmailAddress::parse("a@b@example.fi"), Err(MissingAt));
        assert!(matches!(
            EmailAddress::parse("@example.fi"),
            Err(InvalidLocalPart(_))
        ));
        assert!(matches!(
            EmailAddress::parse("a..b@example.fi"),
            Err(InvalidLocalPart(_))
        ));
        assert!(matches!(
            EmailAddress::parse("a b@example.fi"),
            Err(InvalidLocalPart(_))
        ));
        assert!(matches!(
            EmailAddress::parse("a@localhost"),
            Err(InvalidDomain(_))
        ));
        assert!(matches!(
            EmailAddress::parse("a@exa_mple.fi"),
            Err(InvalidDomain(_))
        ));
        assert!(matches!(
            EmailAddress::parse("a@example..fi"),
            Err(InvalidDomain(_))
        ));
    }
}
