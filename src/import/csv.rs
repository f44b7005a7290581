//! CSV as RFC 4180 writes it: fields separated by commas, quoted with `"` when they hold a comma,
//! a quote or a line break (a quote inside doubled), records ended by CRLF or LF.

/// Why a CSV text cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("record {record}: a quoted field is not closed")]
    Unterminated { record: usize },
    #[error("record {record}: a quoted field is followed by text")]
    TextAfterQuote { record: usize },
}

/// Appends one record.
pub fn write_record<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let field = field.as_ref();
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
}

/// Every record of `text`; empty lines are no records.
pub fn records(text: &str) -> Result<Vec<Vec<String>>, CsvError> {
    let mut out = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    // Whether the current record has begun (a line with only a comma is a record of two fields).
    let mut started = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if field.is_empty() => {
                started = true;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => field.push(c),
                        None => {
                            return Err(CsvError::Unterminated {
                                record: out.len() + 1,
                            })
                        }
                    }
                }
                match chars.peek() {
                    None | Some(',') | Some('\n') | Some('\r') => {}
                    Some(_) => {
                        return Err(CsvError::TextAfterQuote {
                            record: out.len() + 1,
                        })
                    }
                }
                // An empty quoted field is a field: keep it even though `field` is empty.
                if field.is_empty() {
                    field.push('\0');
                }
            }
            ',' => {
                started = true;
                record.push(take_field(&mut field));
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                if started || !field.is_empty() {
                    record.push(take_field(&mut field));
                    out.push(std::mem::take(&mut record));
                }
                started = false;
            }
            c => {
                started = true;
                field.push(c);
            }
        }
    }
    if started || !field.is_empty() {
        record.push(take_field(&mut field));
        out.push(record);
    }
    Ok(out)
}

/// The field read so far (an empty quoted field is marked by a lone NUL, which no field keeps:
/// NUL cannot be stored, so it is never written either).
fn take_field(field: &mut String) -> String {
    let f = std::mem::take(field);
    if f == "\0" {
        String::new()
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quoted_fields_hold_commas_quotes_and_line_breaks() {
        let text =
            "date,page\r\n2026-01-01,\"/a,b\"\n2026-01-02,\"say \"\"hi\"\"\nthere\"\n\n,\n\"\",x";
        assert_eq!(
            records(text).unwrap(),
            vec![
                vec!["date", "page"],
                vec!["2026-01-01", "/a,b"],
                vec!["2026-01-02", "say \"hi\"\nthere"],
                vec!["", ""],
                vec!["", "x"],
            ]
        );
        assert_eq!(
            records("a,\"b").unwrap_err(),
            CsvError::Unterminated { record: 1 }
        );
        assert_eq!(
            records("a\n\"b\"c").unwrap_err(),
            CsvError::TextAfterQuote { record: 2 }
        );
    }

    proptest! {
        #[test]
        fn written_records_read_back(rows in prop::collection::vec(
            prop::collection::vec("[^\u{0}]{0,12}", 1..6), 0..8)) {
            let mut text = String::new();
            for r in &rows {
                write_record(&mut text, r);
            }
            // A record of one empty field is an empty line, which reads as no record.
            let expected: Vec<Vec<String>> = rows
                .into_iter()
                .filter(|r| !(r.len() == 1 && r[0].is_empty()))
                .collect();
            prop_assert_eq!(records(&text).unwrap(), expected);
        }
    }
}
