//! `JsonString`: a JSON string field that refuses numbers and booleans (poem-openapi's `String`
//! would quietly turn `42` into `"42"`; a wrong type here is a 400), with the rule its schema
//! states. The schema only describes: the domain types (`CampaignName`, `UserId`, `Code`, ...)
//! enforce the same rule and answer the error the API documents for it.
use std::borrow::Cow;
use std::marker::PhantomData;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use serde_json::Value;

/// What a string's schema says about it (lengths in characters, a pattern).
pub trait StringRule: Send + Sync + 'static {
    /// Adds the rule to the string schema.
    fn describe(_schema: &mut MetaSchema) {}
}

/// Any string.
pub struct AnyText;

impl StringRule for AnyText {}

// White space in these patterns is `\s`: Python's (schemathesis) is Rust's `char::is_whitespace`
// plus U+001C..U+001F, ECMAScript's is it minus U+0085 plus U+FEFF. Spelled out with `\u2028`,
// @hey-api/openapi-ts writes a raw line separator into a regex literal and breaks the client.

/// A campaign name: 1..=200 characters, not all white space.
pub struct NameText;

impl StringRule for NameText {
    fn describe(schema: &mut MetaSchema) {
        schema.min_length = Some(1);
        schema.max_length = Some(200);
        // Some character that is not white space (U+001C..U+001F are not, to Rust).
        schema.pattern = Some(r"[\x1c-\x1f]|\S".to_owned());
    }
}

/// A batch label: at most 200 characters.
pub struct LabelText;

impl StringRule for LabelText {
    fn describe(schema: &mut MetaSchema) {
        schema.max_length = Some(200);
    }
}

/// A gift-certificate code: 1..=128 printable ASCII characters, no space.
pub struct CodeText;

impl StringRule for CodeText {
    fn describe(schema: &mut MetaSchema) {
        schema.min_length = Some(1);
        schema.max_length = Some(128);
        schema.pattern = Some("^[!-~]+$".to_owned());
    }
}

/// A user id: 1..=128 characters, no control characters, no white space at either end, and
/// not `.` or `..` (URLs normalise those away, so the claim could never be read back).
pub struct UserIdText;

impl StringRule for UserIdText {
    fn describe(schema: &mut MetaSchema) {
        // `edge`: a first or last character; `inner`: any other one. Written without
        // look-ahead so every regex dialect (ECMA, Python, Rust) reads it the same way.
        let control = r"\x00-\x1f\x7f-\x9f";
        let edge = format!(r"[^{control}\s]");
        let edge_not_dot = format!(r"[^{control}\s.]");
        let inner = format!("[^{control}]");
        let inner_not_dot = format!("[^{control}.]");
        schema.min_length = Some(1);
        schema.max_length = Some(128);
        schema.pattern = Some(format!(
            "^(?:{edge_not_dot}(?:{inner}*{edge})?|\\.(?:{edge_not_dot}|{inner_not_dot}{inner}*{edge})|\\.\\.{inner}*{edge})$"
        ));
    }
}

pub struct JsonString<R: StringRule = AnyText>(String, PhantomData<fn() -> R>);

impl<R: StringRule> JsonString<R> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl<R: StringRule> std::fmt::Debug for JsonString<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<R: StringRule> Clone for JsonString<R> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), PhantomData)
    }
}

impl<R: StringRule> Type for JsonString<R> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        String::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        R::describe(&mut schema);
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl<R: StringRule> ParseFromJSON for JsonString<R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Ok(Self(text, PhantomData)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<R: StringRule> ParseFromParameter for JsonString<R> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(Self(value.to_owned(), PhantomData))
    }
}

impl<R: StringRule> ToJSON for JsonString<R> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_strings_parse() {
        let parsed = JsonString::<AnyText>::parse_from_json(Some(Value::from("abc"))).unwrap();
        assert_eq!(parsed.as_str(), "abc");
        assert!(JsonString::<AnyText>::parse_from_json(Some(Value::from(42))).is_err());
        assert!(JsonString::<AnyText>::parse_from_json(Some(Value::from(true))).is_err());
        assert!(JsonString::<AnyText>::parse_from_json(None).is_err());
    }
}
