//! Bulk issuance (`POST /api/v1/ra/bulk-issue`, the console's `/ra/bulk`, `vsc ra bulk-issue`):
//! the CSV the RA uploads, the per-row report, and the results CSV. The CSV reader and writer
//! are here, without I/O, so the server and the CLI read a file the same way.
//!
//! The CSV has a header row naming its columns (any order, case and `-`/space/`_` ignored):
//! [`COLUMNS`], all required except `role_name`. `activities` and `evidence` hold several
//! values separated by spaces or semicolons. At most [`MAX_ROWS`] rows and [`MAX_BYTES`] bytes.

use serde::{Deserialize, Serialize};

use crate::OneTimeCode;

/// Largest CSV accepted, in bytes.
pub const MAX_BYTES: usize = 1024 * 1024;
/// Most data rows accepted (the header not counted).
pub const MAX_ROWS: usize = 1000;

/// The columns of the bulk CSV, in the order the examples use.
pub const COLUMNS: [&str; 10] = [
    "given_name",
    "family_name",
    "email",
    "organisation",
    "role_code",
    "role_name",
    "activities",
    "evidence",
    "level",
    "checker_uid",
];

/// The one optional column: the role's name (defaults to the role code).
pub const OPTIONAL_COLUMNS: [&str; 1] = ["role_name"];

/// A row's outcome.
pub mod outcome {
    /// Dry run: the row passed every check that can be made without writing.
    pub const VALID: &str = "valid";
    /// The row has errors; nothing was written for it.
    pub const INVALID: &str = "invalid";
    /// Run: person, identity check, position and card were all done.
    pub const ISSUED: &str = "issued";
    /// Run: a step was refused; `done` says which steps happened before it.
    pub const FAILED: &str = "failed";
}

/// The steps of a row, in order (a row's `done`).
pub mod step {
    /// The person's profile was created.
    pub const PERSON_CREATED: &str = "person_created";
    /// The identity check was recorded.
    pub const IDENTITY_CHECKED: &str = "identity_checked";
    /// The position was assigned.
    pub const POSITION_ASSIGNED: &str = "position_assigned";
    /// The card was issued with an activation code.
    pub const CARD_ISSUED: &str = "card_issued";
}

/// `POST /api/v1/ra/bulk-issue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkIssueRequest {
    /// The CSV text.
    pub csv: String,
    /// Only check the rows; write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer: one report per data row, in file order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkIssueReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The rows.
    pub rows: Vec<BulkRow>,
}

impl BulkIssueReport {
    /// Rows that passed (valid in a dry run, issued in a run).
    pub fn ok_rows(&self) -> usize {
        self.rows.iter().filter(|r| r.is_ok()).count()
    }
    /// Rows that did not.
    pub fn failed_rows(&self) -> usize {
        self.rows.len() - self.ok_rows()
    }
}

/// What happened to one row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkRow {
    /// The row's number in the file as a spreadsheet counts it (the header is row 1).
    pub row: usize,
    /// Given name, as in the file.
    pub given_name: String,
    /// Family name, as in the file.
    pub family_name: String,
    /// Email, as in the file.
    pub email: String,
    /// ODS code, as in the file.
    pub organisation: String,
    /// One of [`outcome`].
    pub outcome: String,
    /// Every error found (validation), or the refusal that stopped the row (run).
    #[serde(default)]
    pub errors: Vec<BulkRowError>,
    /// The steps done, in order (see [`step`]); a failed row may have done some.
    #[serde(default)]
    pub done: Vec<String>,
    /// The new person's UID, once created.
    #[serde(default)]
    pub uid: Option<String>,
    /// The card id, once issued.
    #[serde(default)]
    pub card_id: Option<String>,
    /// The activation to hand to the person (shown once).
    #[serde(default)]
    pub activation: Option<OneTimeCode>,
}

impl BulkRow {
    /// Whether the row passed.
    pub fn is_ok(&self) -> bool {
        self.outcome == outcome::VALID || self.outcome == outcome::ISSUED
    }
}

/// One error of a row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BulkRowError {
    /// The column at fault, or the step that was refused.
    pub field: String,
    /// The error code (`vsc_proto::errors`), the API's own for a refused step.
    pub code: String,
    /// For a person.
    pub message: String,
}

/// Why a CSV file could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// Larger than [`MAX_BYTES`].
    #[error("the file is {0} bytes; at most 1 MiB (1,048,576 bytes) is accepted: split it")]
    TooLarge(usize),
    /// More than [`MAX_ROWS`] data rows.
    #[error("the file has more than 1,000 rows; split it")]
    TooManyRows,
    /// A quoted field that never ends.
    #[error("line {0}: a quoted field starts here and never ends (a missing closing \")")]
    UnterminatedQuote(usize),
    /// A quote inside an unquoted field, or text after a closing quote.
    #[error(
        "line {0}: a stray \" (a field with quotes must be quoted as a whole, quotes doubled: \"a \"\"b\"\"\")"
    )]
    StrayQuote(usize),
    /// No header row, or one without the required columns.
    #[error("{0}")]
    Header(String),
    /// No data rows.
    #[error("the file has a header but no rows")]
    Empty,
}

/// A parsed record: the line it starts on and its fields.
pub type Record = (usize, Vec<String>);

/// Reads RFC 4180 CSV: fields separated by commas, records by CRLF or LF; a field in double
/// quotes may hold commas, line breaks and doubled quotes (`""`). A leading UTF-8 byte-order
/// mark is skipped and blank lines are ignored. Stops with [`CsvError::TooManyRows`] as soon as
/// more than `max_records` records are seen.
pub fn parse_csv(text: &str, max_records: usize) -> Result<Vec<Record>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records: Vec<Record> = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut record_line = 1usize;
    let mut quoted_from: Option<usize> = None; // inside quotes since this line
    let mut after_quote = false; // just closed a quoted field
    let mut chars = text.chars().peekable();
    let mut end_record = |record: &mut Vec<String>, field: &mut String, at: usize| {
        record.push(std::mem::take(field));
        let rec = std::mem::take(record);
        if !(rec.len() == 1 && rec[0].is_empty()) {
            records.push((at, rec));
        }
        records.len() <= max_records
    };
    while let Some(c) = chars.next() {
        if quoted_from.is_some() {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    quoted_from = None;
                    after_quote = true;
                }
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            ',' => {
                record.push(std::mem::take(&mut field));
                after_quote = false;
            }
            '\r' | '\n' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                if !end_record(&mut record, &mut field, record_line) {
                    return Err(CsvError::TooManyRows);
                }
                line += 1;
                record_line = line;
                after_quote = false;
            }
            '"' if field.is_empty() && !after_quote => quoted_from = Some(line),
            '"' => return Err(CsvError::StrayQuote(line)),
            _ if after_quote => return Err(CsvError::StrayQuote(line)),
            _ => field.push(c),
        }
    }
    if let Some(start) = quoted_from {
        return Err(CsvError::UnterminatedQuote(start));
    }
    if (!field.is_empty() || !record.is_empty() || after_quote)
        && !end_record(&mut record, &mut field, record_line)
    {
        return Err(CsvError::TooManyRows);
    }
    Ok(records)
}

/// Reads the bulk CSV: size and row limits, the header (which columns where). Returns the
/// column index of each of [`COLUMNS`] (`None` for an absent optional column) and the data
/// records.
#[allow(clippy::type_complexity)]
pub fn read_bulk_csv(text: &str) -> Result<([Option<usize>; 10], Vec<Record>), CsvError> {
    if text.len() > MAX_BYTES {
        return Err(CsvError::TooLarge(text.len()));
    }
    let mut records = parse_csv(text, MAX_ROWS + 1)?;
    if records.is_empty() {
        return Err(CsvError::Header(format!(
            "the file is empty; the first row names the columns: {}",
            COLUMNS.join(",")
        )));
    }
    let (_, header) = records.remove(0);
    let names: Vec<String> = header
        .iter()
        .map(|h| h.trim().to_ascii_lowercase().replace(['-', ' '], "_"))
        .collect();
    let mut index = [None; 10];
    for (i, name) in names.iter().enumerate() {
        let Some(col) = COLUMNS.iter().position(|c| c == name) else {
            return Err(CsvError::Header(format!(
                "the first row names the columns, and '{}' is not one: use {}",
                header[i].trim(),
                COLUMNS.join(",")
            )));
        };
        if index[col].replace(i).is_some() {
            return Err(CsvError::Header(format!("column {name} appears twice")));
        }
    }
    let missing: Vec<&str> = COLUMNS
        .iter()
        .zip(index)
        .filter(|(c, i)| i.is_none() && !OPTIONAL_COLUMNS.contains(c))
        .map(|(c, _)| *c)
        .collect();
    if !missing.is_empty() {
        return Err(CsvError::Header(format!(
            "the first row must name the columns; missing: {} (expected {})",
            missing.join(", "),
            COLUMNS.join(",")
        )));
    }
    if records.is_empty() {
        return Err(CsvError::Empty);
    }
    Ok((index, records))
}

/// One CSV field, quoted when needed; a value a spreadsheet would run as a formula (starting
/// with `=`, `+`, `-`, `@`, tab or CR) is prefixed with `'` so it stays text.
pub fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\r', '\n']) || value.starts_with(' ') || value.ends_with(' ') {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// The columns of the results CSV.
pub const RESULT_COLUMNS: [&str; 13] = [
    "row",
    "outcome",
    "given_name",
    "family_name",
    "email",
    "organisation",
    "uid",
    "card_id",
    "activation_code",
    "activation_url",
    "expires_at",
    "done",
    "errors",
];

/// The results CSV (CRLF line ends, as RFC 4180): one line per row, with the activation codes.
/// It holds secrets: keep it like the letters.
pub fn results_csv(rows: &[BulkRow]) -> String {
    let mut out = RESULT_COLUMNS.join(",");
    out.push_str("\r\n");
    for r in rows {
        let expires = r
            .activation
            .as_ref()
            .and_then(|a| {
                a.expires_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        let errors: Vec<String> = r
            .errors
            .iter()
            .map(|e| format!("{}: {} ({})", e.field, e.message, e.code))
            .collect();
        let fields = [
            r.row.to_string(),
            r.outcome.clone(),
            r.given_name.clone(),
            r.family_name.clone(),
            r.email.clone(),
            r.organisation.clone(),
            r.uid.clone().unwrap_or_default(),
            r.card_id.clone().unwrap_or_default(),
            r.activation
                .as_ref()
                .map(|a| a.code.clone())
                .unwrap_or_default(),
            r.activation
                .as_ref()
                .map(|a| a.url.clone())
                .unwrap_or_default(),
            expires,
            r.done.join(" "),
            errors.join("; "),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A short example file, for help texts and the console's form.
pub const EXAMPLE: &str = "given_name,family_name,email,organisation,role_code,role_name,activities,evidence,level,checker_uid\n\
Mary,Seacole,mary.seacole@example.nhs.uk,RX1,S8000:G8000:R8000,Clinical Practitioner Access Role,B0570 B0278,passport proof-of-address,3,545737588804\n";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        parse_csv(text, 100)
            .unwrap()
            .into_iter()
            .map(|(_, f)| f)
            .collect()
    }

    #[test]
    fn rfc4180_quoting_line_ends_and_bom() {
        assert_eq!(
            fields("\u{feff}a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\r\n"),
            vec![vec!["a", "b"], vec!["x, y", "say \"hi\""]]
        );
        assert_eq!(
            fields("a,\"two\nlines\"\nc,d"),
            vec![vec!["a", "two\nlines"], vec!["c", "d"]]
        );
        assert_eq!(fields("a,,\n\n,\n"), vec![vec!["a", "", ""], vec!["", ""]]);
        assert_eq!(fields("\"\",x"), vec![vec!["", "x"]]);
        assert_eq!(fields("a\rb\r\n"), vec![vec!["a"], vec!["b"]]);
        let lines: Vec<usize> = parse_csv("h\n\"a\nb\"\nc\n", 10)
            .unwrap()
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(lines, vec![1, 2, 4]);
    }

    #[test]
    fn malformed_csv_is_named() {
        assert_eq!(
            parse_csv("a,\"open\nb,c\n", 10),
            Err(CsvError::UnterminatedQuote(1))
        );
        assert_eq!(parse_csv("a,b\"c\n", 10), Err(CsvError::StrayQuote(1)));
        assert_eq!(parse_csv("a,\"b\"c\n", 10), Err(CsvError::StrayQuote(1)));
        assert_eq!(parse_csv("a\nb\nc\n", 2), Err(CsvError::TooManyRows));
        assert!(parse_csv("a\nb\n", 2).is_ok());
    }

    #[test]
    fn header_and_limits() {
        let (index, rows) = read_bulk_csv(EXAMPLE).unwrap();
        assert_eq!(index[0], Some(0));
        assert_eq!(rows.len(), 1);
        let no_role_name = "Given Name,family-name,EMAIL,organisation,role_code,activities,evidence,level,checker_uid\nA,B,a@b.c,RX1,S1:G1:R1,,passport,1,1\n";
        let (index, _) = read_bulk_csv(no_role_name).unwrap();
        assert_eq!(index[5], None);
        assert!(
            matches!(read_bulk_csv("given_name\nx\n"), Err(CsvError::Header(m)) if m.contains("missing"))
        );
        assert!(
            matches!(read_bulk_csv("nonsense,given_name\n"), Err(CsvError::Header(m)) if m.contains("nonsense"))
        );
        assert_eq!(
            read_bulk_csv(&EXAMPLE[..EXAMPLE.find('\n').unwrap()]),
            Err(CsvError::Empty)
        );
        let big = "x".repeat(MAX_BYTES + 1);
        assert_eq!(read_bulk_csv(&big), Err(CsvError::TooLarge(MAX_BYTES + 1)));
        let mut many = COLUMNS.join(",");
        many.push('\n');
        for _ in 0..=MAX_ROWS {
            many.push_str("a,b,c,d,e,f,g,h,i,j\n");
        }
        assert_eq!(read_bulk_csv(&many), Err(CsvError::TooManyRows));
    }

    #[test]
    fn written_fields_stay_text() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-1,2"), "\"'-1,2\"");
        let row = BulkRow {
            row: 2,
            given_name: "Mary".into(),
            family_name: "O'Neil, Jr".into(),
            email: "m@x.uk".into(),
            organisation: "RX1".into(),
            outcome: outcome::FAILED.into(),
            errors: vec![BulkRowError {
                field: "organisation".into(),
                code: "unknown_organisation".into(),
                message: "no organisation has ODS code RX1".into(),
            }],
            done: vec![],
            uid: None,
            card_id: None,
            activation: None,
        };
        let csv = results_csv(&[row]);
        let parsed = fields(&csv);
        assert_eq!(parsed[0], RESULT_COLUMNS.to_vec());
        assert_eq!(parsed[1][3], "O'Neil, Jr");
        assert!(parsed[1][12].contains("unknown_organisation"));
    }
}
