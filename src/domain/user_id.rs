//! `UserId`: the campaign frontend's identifier of the person claiming.
use std::fmt;

/// A user id: 1..=128 characters, none a control character, no leading or trailing white
/// space (so that `"bob"` and `"bob "` can never be told apart by the database's collation),
/// and not `.` or `..` (URL paths, where a claim is read back, normalise those away).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(format!(
                "user_id must be 1..={} characters, got {chars}",
                Self::MAX_CHARS
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err("user_id must not contain control characters".to_owned());
        }
        if raw.trim() != raw {
            return Err("user_id must not start or end with white space".to_owned());
        }
        if raw == "." || raw == ".." {
            return Err("user_id must not be `.` or `..`".to_owned());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_printable_text_with_inner_spaces_and_unicode() {
        assert!(UserId::parse("user-42").is_ok());
        assert!(UserId::parse("山田 太郎").is_ok());
        assert!(UserId::parse(&"é".repeat(128)).is_ok());
    }

    #[test]
    fn refuses_empty_long_control_and_padded_ids() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"a".repeat(129)).is_err());
        assert!(UserId::parse("a\u{0}b").is_err());
        assert!(UserId::parse(" bob").is_err());
        assert!(UserId::parse("bob ").is_err());
        assert!(UserId::parse(".").is_err());
        assert!(UserId::parse("..").is_err());
        assert!(UserId::parse("...").is_ok());
    }
}
