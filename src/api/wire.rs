//! Wire types whose schema says exactly what is sent: instants in UTC ending in `Z`, days as
//! `format: date`, and values that may be `null` marked `nullable`.
use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use poem::{Body, IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use serde_json::Value;
use uuid::Uuid;

use crate::error::AppError;

/// An instant: RFC 3339 with any offset when read, always UTC with `Z` when written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime(pub DateTime<Utc>);

impl Type for UtcTime {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string_date-time".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time")))
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

impl ParseFromJSON for UtcTime {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => DateTime::parse_from_rfc3339(&text)
                .map(|instant| Self(instant.with_timezone(&Utc)))
                .map_err(|err| ParseError::custom(format!("not an RFC 3339 instant: {err}"))),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for UtcTime {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(
            self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        ))
    }
}

/// A calendar day, `YYYY-MM-DD` (`format: date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day(pub NaiveDate);

impl Type for Day {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string_date".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date")))
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

impl ParseFromJSON for Day {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .map(Self)
                .map_err(|err| ParseError::custom(format!("not a YYYY-MM-DD day: {err}"))),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ParseFromParameter for Day {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map(Self)
            .map_err(|err| ParseError::custom(format!("not a YYYY-MM-DD day: {err}")))
    }
}

impl ToJSON for Day {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.format("%Y-%m-%d").to_string()))
    }
}

/// A value that is always present and may be `null` (`nullable: true`). As a request field,
/// wrap it in `Option` (may also be omitted) or `MaybeUndefined` (omitted differs from `null`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nullable<T>(pub Option<T>);

impl<T: Type> Type for Nullable<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("nullable_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let schema = match T::schema_ref() {
            MetaSchemaRef::Inline(schema) => MetaSchema {
                nullable: true,
                ..*schema
            },
            reference => MetaSchema {
                nullable: true,
                all_of: vec![reference],
                ..MetaSchema::ANY
            },
        };
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(value) => value.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Nullable<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None | Some(Value::Null) => Ok(Self(None)),
            value => T::parse_from_json(value)
                .map(|value| Self(Some(value)))
                .map_err(ParseError::propagate),
        }
    }
}

impl<T: ToJSON> ToJSON for Nullable<T> {
    fn to_json(&self) -> Option<Value> {
        Some(
            self.0
                .as_ref()
                .and_then(ToJSON::to_json)
                .unwrap_or(Value::Null),
        )
    }
}

impl<T> From<Option<T>> for Nullable<T> {
    fn from(value: Option<T>) -> Self {
        Self(value)
    }
}

/// A page size as asked (`limit`, validated 1..=500 by the operation), 100 when omitted.
#[derive(Debug, Clone, Copy)]
pub struct PageLimit(u64);

impl PageLimit {
    pub fn new(given: Option<u32>) -> Self {
        Self(u64::from(given.unwrap_or(100)))
    }

    /// Rows to read: one more than the page, to tell whether another page follows.
    pub fn fetch(self) -> u64 {
        self.0 + 1
    }

    /// Cuts `rows` (read with [`PageLimit::fetch`]) to the page; the cursor of its last row
    /// when more follow.
    pub fn next_cursor<T>(
        self,
        rows: &mut Vec<T>,
        cursor: impl Fn(&T) -> String,
    ) -> Option<String> {
        if rows.len() as u64 <= self.0 {
            return None;
        }
        rows.truncate(self.0 as usize);
        rows.last().map(cursor)
    }
}

/// A cursor that is the last id of the previous page.
pub fn parse_uuid_cursor(cursor: Option<&str>) -> Result<Option<Uuid>, AppError> {
    cursor
        .map(|text| {
            Uuid::parse_str(text)
                .map_err(|_| AppError::InvalidRequest("cursor is not one this service gave".into()))
        })
        .transpose()
}

/// A CSV body (`text/csv`), streamed as it is produced.
pub struct Csv(pub Body);

impl Payload for Csv {
    const CONTENT_TYPE: &'static str = "text/csv; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))
    }
}

impl IntoResponse for Csv {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.0)
    }
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
pub fn csv_field(out: &mut Vec<u8>, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_written_in_utc_with_z_and_read_with_any_offset() {
        let read = UtcTime::parse_from_json(Some(Value::from("2026-11-23T22:20:05+09:00")));
        let read = read.unwrap();
        assert_eq!(read.to_json(), Some(Value::from("2026-11-23T13:20:05Z")));
        assert!(UtcTime::parse_from_json(Some(Value::from("2026-11-23"))).is_err());
    }

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        let mut out = Vec::new();
        for field in ["plain", "a,b", "say \"hi\"", "two\nlines"] {
            csv_field(&mut out, field);
            out.push(b'|');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"|"
        );
    }

    #[test]
    fn a_page_keeps_its_limit_and_names_the_next_cursor() {
        let limit = PageLimit::new(Some(2));
        let mut rows = vec![1, 2, 3];
        assert_eq!(limit.fetch(), 3);
        assert_eq!(
            limit.next_cursor(&mut rows, i32::to_string),
            Some("2".into())
        );
        assert_eq!(rows, [1, 2]);
        assert_eq!(limit.next_cursor(&mut rows, i32::to_string), None);
    }

    #[test]
    fn nullable_values_are_null_or_the_value() {
        assert_eq!(Nullable::<i64>(None).to_json(), Some(Value::Null));
        assert_eq!(Nullable(Some(5_i64)).to_json(), Some(Value::from(5)));
        assert_eq!(
            Nullable::<i64>::parse_from_json(Some(Value::Null)).unwrap(),
            Nullable(None)
        );
        let schema = Nullable::<i64>::schema_ref();
        assert!(schema.unwrap_inline().nullable);
    }
}
