//! `Code`: a gift-certificate serial as operators upload it.
use std::fmt;

/// Why a line is not a valid code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidCode {
    Empty,
    TooLong,
    /// A character outside printable ASCII, or a space.
    BadCharacter,
}

/// A code: 1..=128 printable ASCII characters, no spaces (`!`..=`~`). Compared byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Code(String);

impl Code {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, InvalidCode> {
        if raw.is_empty() {
            return Err(InvalidCode::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(InvalidCode::TooLong);
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidCode::BadCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_printable_ascii_up_to_128_characters() {
        assert!(Code::parse("GIFT-0001").is_ok());
        assert!(Code::parse("!~").is_ok());
        assert!(Code::parse(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn refuses_empty_long_spaced_and_non_ascii_codes() {
        assert_eq!(Code::parse(""), Err(InvalidCode::Empty));
        assert_eq!(Code::parse(&"x".repeat(129)), Err(InvalidCode::TooLong));
        assert_eq!(Code::parse("A B"), Err(InvalidCode::BadCharacter));
        assert_eq!(Code::parse("AB\t"), Err(InvalidCode::BadCharacter));
        assert_eq!(Code::parse("ÄB"), Err(InvalidCode::BadCharacter));
    }
}
