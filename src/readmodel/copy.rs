//! A batch's plain inserts (its `hits`, the rollups' appended rows, the visits it begins) in
//! PostgreSQL's binary `COPY` format: the rows go to the server as one stream that it reads field
//! by field, instead of an `INSERT … SELECT FROM UNNEST(…)` whose arrays it must unpack, plan and
//! project first. A value the server refuses (a NUL in a text, a time beyond its range) fails the
//! `COPY` with a data error, as it failed the `INSERT`, and its event is parked.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// The binary format's signature, flags and header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The trailer: a field count of -1.
const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// The rows of one `COPY`, encoded as they are added.
pub(super) struct CopyRows {
    buf: Vec<u8>,
    rows: usize,
}

impl CopyRows {
    pub(super) fn new() -> Self {
        Self {
            buf: HEADER.to_vec(),
            rows: 0,
        }
    }

    /// Starts a row of `fields` fields; the calls that follow add them in the table's order.
    pub(super) fn row(&mut self, fields: usize) -> &mut Self {
        self.rows += 1;
        self.buf.extend_from_slice(&(fields as i16).to_be_bytes());
        self
    }

    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf
            .extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
        self
    }

    pub(super) fn null(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    pub(super) fn uuid(&mut self, u: Uuid) -> &mut Self {
        self.field(u.as_bytes())
    }

    pub(super) fn int4(&mut self, v: i32) -> &mut Self {
        self.field(&v.to_be_bytes())
    }

    pub(super) fn int8(&mut self, v: i64) -> &mut Self {
        self.field(&v.to_be_bytes())
    }

    /// A type whose binary form is its bytes (`bytea`, `hll`).
    pub(super) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.field(v)
    }

    pub(super) fn text(&mut self, v: &str) -> &mut Self {
        self.field(v.as_bytes())
    }

    pub(super) fn opt_text(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    /// `date`: days since 2000-01-01.
    pub(super) fn date(&mut self, d: NaiveDate) -> &mut Self {
        let days = (d - epoch().date()).num_days() as i32;
        self.field(&days.to_be_bytes())
    }

    /// `timestamp`: microseconds since 2000-01-01 00:00.
    pub(super) fn timestamp(&mut self, t: NaiveDateTime) -> &mut Self {
        let micros = (t - epoch())
            .num_microseconds()
            .expect("chrono's ±262,143 years fit in 64 bits of microseconds");
        self.int8(micros)
    }

    /// `timestamptz`: microseconds since 2000-01-01 00:00 UTC.
    pub(super) fn timestamptz(&mut self, t: DateTime<Utc>) -> &mut Self {
        self.timestamp(t.naive_utc())
    }

    /// `jsonb`: a format version (1), then the JSON text.
    pub(super) fn opt_jsonb(&mut self, json: Option<&str>) -> &mut Self {
        let Some(json) = json else {
            return self.null();
        };
        self.buf
            .extend_from_slice(&(json.len() as i32 + 1).to_be_bytes());
        self.buf.push(1);
        self.buf.extend_from_slice(json.as_bytes());
        self
    }

    /// `numeric` from a decimal (`-12.50`, `3`, `1.5e3`); one the server's `numeric` would
    /// refuse is an error.
    pub(super) fn opt_numeric(&mut self, decimal: Option<&str>) -> Result<&mut Self, sqlx::Error> {
        match decimal {
            None => Ok(self.null()),
            Some(d) => {
                let bytes = numeric(d).ok_or_else(|| {
                    sqlx::Error::Encode(format!("not a decimal number: {d:?}").into())
                })?;
                Ok(self.field(&bytes))
            }
        }
    }

    /// Sends the rows to `table (columns)` (a no-op without rows).
    pub(super) async fn copy(
        mut self,
        tx: &mut PgConnection,
        table: &str,
        columns: &str,
    ) -> Result<(), sqlx::Error> {
        if self.rows == 0 {
            return Ok(());
        }
        self.buf.extend_from_slice(&TRAILER);
        let mut copy = tx
            .copy_in_raw(&format!(
                "COPY {table} ({columns}) FROM STDIN (FORMAT binary)"
            ))
            .await?;
        copy.send(self.buf).await?;
        copy.finish().await?;
        Ok(())
    }
}

fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .expect("a valid date")
        .and_hms_opt(0, 0, 0)
        .expect("a valid time")
}

/// The binary form of a decimal: the digit count, the weight of the first base-10,000 digit,
/// the sign, the display scale (the digits after the point), then the base-10,000 digits without
/// leading or trailing zero ones.
fn numeric(decimal: &str) -> Option<Vec<u8>> {
    let (negative, unsigned) = match decimal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, decimal.strip_prefix('+').unwrap_or(decimal)),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    if exponent.unsigned_abs() > 1000 {
        return None;
    }
    // The digits, and how many of them come before the point once the exponent has moved it.
    let mut all: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    let mut point = int.len() as i32 + exponent;
    let scale = (frac.len() as i32 - exponent).max(0) as u16;
    if point < 0 {
        all.splice(0..0, std::iter::repeat_n(0, (-point) as usize));
        point = 0;
    }
    all.resize(all.len().max(point as usize), 0);
    // Align on base-10,000 digits: the point falls on a group boundary, the end completes one.
    let front = (4 - point % 4) % 4;
    all.splice(0..0, std::iter::repeat_n(0, front as usize));
    point += front;
    all.resize(all.len().div_ceil(4) * 4, 0);
    let mut groups: Vec<i16> = all
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |n, d| n * 10 + *d as i16))
        .collect();
    let mut weight = point / 4 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let (weight, sign) = if groups.is_empty() {
        (0, 0u16)
    } else {
        (weight, if negative { 0x4000 } else { 0 })
    };
    let mut out = Vec::with_capacity(8 + 2 * groups.len());
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&scale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(d: &str) -> (i16, i16, u16, u16, Vec<i16>) {
        let b = numeric(d).unwrap();
        let i = |at: usize| i16::from_be_bytes([b[at], b[at + 1]]);
        let n = i(0);
        let groups = (0..n as usize).map(|k| i(8 + 2 * k)).collect();
        (n, i(2), i(4) as u16, i(6) as u16, groups)
    }

    #[test]
    fn decimals_encode_as_the_server_stores_them() {
        assert_eq!(parts("0"), (0, 0, 0, 0, vec![]));
        assert_eq!(parts("12.50"), (2, 0, 0, 2, vec![12, 5000]));
        assert_eq!(parts("-12.50"), (2, 0, 0x4000, 2, vec![12, 5000]));
        assert_eq!(parts("123456789"), (3, 2, 0, 0, vec![1, 2345, 6789]));
        assert_eq!(parts("10000"), (1, 1, 0, 0, vec![1]));
        assert_eq!(parts("0.000001"), (1, -2, 0, 6, vec![100]));
        assert_eq!(parts("1.5e3"), (1, 0, 0, 0, vec![1500]));
        assert_eq!(parts("15e-4"), (1, -1, 0, 4, vec![15]));
        assert_eq!(parts(".5"), (1, -1, 0, 1, vec![5000]));
        assert_eq!(
            parts("999999999999999.999999"),
            (6, 3, 0, 6, vec![999, 9999, 9999, 9999, 9999, 9900])
        );
        for bad in ["", ".", "-", "1.2.3", "abc", "1e", "NaN", "1e99999"] {
            assert!(numeric(bad).is_none(), "{bad}");
        }
    }
}
