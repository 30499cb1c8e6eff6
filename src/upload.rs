//! Loading a batch of codes: read lines as they stream in, validate each, insert in chunks
//! inside one transaction, and reject the whole batch naming the offending lines.
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::code_batches;
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use uuid::Uuid;

use crate::domain::Code;
use crate::error::{AppError, LineProblem};
use crate::store;

/// Codes per `INSERT` statement.
const CHUNK: usize = 1000;
/// How many offending lines an error names.
const REPORTED_PROBLEMS: usize = 100;

/// Offending lines: the first [`REPORTED_PROBLEMS`] in full, and how many in all.
#[derive(Default)]
struct Problems {
    listed: Vec<LineProblem>,
    count: u64,
}

impl Problems {
    fn record(&mut self, line: u64, code: &str, reason: &str) {
        self.count += 1;
        if self.listed.len() < REPORTED_PROBLEMS {
            self.listed.push(LineProblem {
                line,
                code: code.chars().take(Code::MAX_LEN).collect(),
                reason: reason.to_owned(),
            });
        }
    }
}

/// A batch being loaded: all of it is written at `finish`, or none of it.
pub struct BatchLoader {
    txn: DatabaseTransaction,
    now: DateTime<Utc>,
    batch: code_batches::Model,
    chunk: Vec<(u64, Code)>,
    inserted: u64,
    invalid: Problems,
    duplicates: Problems,
}

impl BatchLoader {
    /// Opens the transaction and creates the batch row in it.
    pub async fn begin(
        db: &DatabaseConnection,
        campaign_id: Uuid,
        label: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Self, AppError> {
        let txn = db.begin().await?;
        let batch = store::batches::insert(&txn, campaign_id, label, now).await?;
        Ok(Self {
            txn,
            now,
            batch,
            chunk: Vec::with_capacity(CHUNK),
            inserted: 0,
            invalid: Problems::default(),
            duplicates: Problems::default(),
        })
    }

    /// Adds the code at line `line` (1-based).
    pub async fn push(&mut self, line: u64, raw: &str) -> Result<(), AppError> {
        match Code::parse(raw) {
            Ok(code) if self.invalid.count == 0 => {
                self.chunk.push((line, code));
                if self.chunk.len() == CHUNK {
                    self.flush().await?;
                }
            }
            // Once a line is invalid the batch fails: later lines are only checked.
            Ok(_) => {}
            Err(_) => self.refuse_invalid(line, raw),
        }
        Ok(())
    }

    /// Records a line that is not even text (or far too long to be a code).
    pub fn refuse_invalid(&mut self, line: u64, raw: &str) {
        self.invalid.record(line, raw, "invalid");
        self.chunk.clear();
    }

    /// Commits the batch, with its entry in the audit trail naming `actor`, if every line was
    /// valid and new; otherwise rolls it all back and says which lines were refused.
    pub async fn finish(mut self, actor: &str) -> Result<(code_batches::Model, u64), AppError> {
        self.flush().await?;
        if self.invalid.count > 0 {
            self.txn.rollback().await?;
            return Err(AppError::InvalidCodes {
                problems: self.invalid.listed,
                count: self.invalid.count,
            });
        }
        if self.duplicates.count > 0 {
            self.txn.rollback().await?;
            return Err(AppError::DuplicateCodes {
                problems: self.duplicates.listed,
                count: self.duplicates.count,
            });
        }
        if self.inserted == 0 {
            self.txn.rollback().await?;
            return Err(AppError::InvalidRequest(
                "the batch holds no codes".to_owned(),
            ));
        }
        let batch = store::batches::set_size(&self.txn, self.batch, self.inserted as i64).await?;
        let entry = store::audit::NewEntry {
            actor,
            action: "load_batch",
            campaign_id: batch.campaign_id,
            batch_id: Some(batch.id),
            changes: serde_json::json!({ "label": batch.label, "inserted": self.inserted }),
        };
        store::audit::record(&self.txn, entry, self.now).await?;
        self.txn.commit().await?;
        Ok((batch, self.inserted))
    }

    /// Inserts the chunk. When some of it clashes, the insert is undone to its savepoint, the
    /// clashing codes are looked up and reported, and the chunk is inserted again skipping
    /// them, so later repeats of its codes are caught too.
    async fn flush(&mut self) -> Result<(), AppError> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.chunk);
        let mut seen = HashSet::with_capacity(chunk.len());
        let mut distinct = Vec::with_capacity(chunk.len());
        // This chunk's clashes, recorded in line order once all are known.
        let mut clashes: Vec<(u64, &str, &str)> = Vec::new();
        for (line, code) in &chunk {
            if seen.insert(code.as_str()) {
                distinct.push(code.as_str());
            } else {
                clashes.push((*line, code.as_str(), "duplicate_in_batch"));
            }
        }
        let (campaign_id, batch_id) = (self.batch.campaign_id, self.batch.id);
        let savepoint = self.txn.begin().await?;
        let inserted =
            store::codes::insert_skipping_clashes(&savepoint, campaign_id, batch_id, &distinct)
                .await?;
        if inserted == distinct.len() as u64 {
            savepoint.commit().await?;
            self.inserted += inserted;
        } else {
            savepoint.rollback().await?;
            let existing = store::codes::existing(&self.txn, &distinct).await?;
            for found in &existing {
                let reason = if found.batch_id == batch_id {
                    "duplicate_in_batch"
                } else if found.campaign_id == campaign_id {
                    "already_in_campaign"
                } else {
                    "already_in_other_campaign"
                };
                if let Some((line, code)) = chunk.iter().find(|(_, c)| c.as_str() == found.code) {
                    clashes.push((*line, code.as_str(), reason));
                }
            }
            self.inserted +=
                store::codes::insert_skipping_clashes(&self.txn, campaign_id, batch_id, &distinct)
                    .await?;
        }
        clashes.sort_unstable_by_key(|(line, _, _)| *line);
        for (line, code, reason) in clashes {
            self.duplicates.record(line, code, reason);
        }
        self.chunk = chunk;
        self.chunk.clear();
        Ok(())
    }
}

/// Reads a body line by line without holding more than one line, counting bytes against
/// `limit`. Lines end at `\n`; a trailing `\r` is dropped.
pub struct LineReader<R> {
    reader: BufReader<R>,
    limit: u64,
    read: u64,
    line_no: u64,
    line: Vec<u8>,
}

/// One line of an upload.
pub enum Line<'a> {
    Text(&'a str),
    /// Not UTF-8, or longer than any code can be.
    Unreadable(String),
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(reader: R, limit: u64) -> Self {
        Self {
            reader: BufReader::with_capacity(64 * 1024, reader),
            limit,
            read: 0,
            line_no: 0,
            line: Vec::with_capacity(Code::MAX_LEN + 2),
        }
    }

    /// The next line with its 1-based number, `None` at the end.
    pub async fn next_line(&mut self) -> Result<Option<(u64, Line<'_>)>, AppError> {
        self.line.clear();
        let mut too_long = false;
        let mut saw_any = false;
        loop {
            let buffer = self.reader.fill_buf().await.map_err(|e| {
                AppError::InvalidRequest(format!("could not read the request body: {e}"))
            })?;
            if buffer.is_empty() {
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            let (taken, done) = match buffer.iter().position(|b| *b == b'\n') {
                Some(end) => (end + 1, true),
                None => (buffer.len(), false),
            };
            let content = &buffer[..if done { taken - 1 } else { taken }];
            let room = (Code::MAX_LEN + 2).saturating_sub(self.line.len());
            if content.len() > room {
                too_long = true;
            }
            self.line
                .extend_from_slice(&content[..content.len().min(room)]);
            self.reader.consume(taken);
            self.read += taken as u64;
            if self.read > self.limit {
                return Err(AppError::PayloadTooLarge { limit: self.limit });
            }
            if done {
                break;
            }
        }
        self.line_no += 1;
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        let line = match std::str::from_utf8(&self.line) {
            Ok(text) if !too_long => Line::Text(text),
            _ => Line::Unreadable(String::from_utf8_lossy(&self.line).into_owned()),
        };
        Ok(Some((self.line_no, line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], limit: u64) -> Result<Vec<(u64, String, bool)>, AppError> {
        let mut reader = LineReader::new(input, limit);
        let mut out = Vec::new();
        while let Some((n, line)) = reader.next_line().await? {
            out.push(match line {
                Line::Text(t) => (n, t.to_owned(), true),
                Line::Unreadable(t) => (n, t, false),
            });
        }
        Ok(out)
    }

    #[tokio::test]
    async fn splits_lines_and_drops_carriage_returns() {
        let got = lines(b"A1\r\nB2\n\nC3", 1000).await.unwrap();
        assert_eq!(
            got,
            vec![
                (1, "A1".into(), true),
                (2, "B2".into(), true),
                (3, "".into(), true),
                (4, "C3".into(), true)
            ]
        );
    }

    #[tokio::test]
    async fn marks_overlong_and_non_utf8_lines_unreadable() {
        let long = format!("{}\nOK\n", "x".repeat(10_000));
        let got = lines(long.as_bytes(), 100_000).await.unwrap();
        assert!(!got[0].2);
        assert_eq!(got[1], (2, "OK".into(), true));
        let got = lines(b"\xff\xfe\n", 100).await.unwrap();
        assert!(!got[0].2);
    }

    #[tokio::test]
    async fn refuses_bodies_over_the_limit() {
        let err = lines(&[b'a'; 200], 100).await.unwrap_err();
        assert!(matches!(err, AppError::PayloadTooLarge { limit: 100 }));
    }
}
