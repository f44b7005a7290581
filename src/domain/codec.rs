//! A compact, versioned binary encoding of [`HitRecorded`], for the payloads of the event log's
//! record batches.
//!
//! This is a storage format: bytes written today must decode the same way forever. The layout
//! below is version 1 and must never change; a change adds a new version (a new first byte), and
//! [`decode_hit`] keeps decoding every old one.
//!
//! # Primitives
//!
//! - *varint*: unsigned LEB128, least significant 7 bits first, at most 10 bytes. Only the
//!   shortest form is accepted (no trailing `0x00` group), so every value has exactly one encoding.
//! - *zigzag*: a signed integer `n` as the varint of `(n << 1) ^ (n >> 63)` (0, -1, 1, -2, … map
//!   to 0, 1, 2, 3, …).
//! - *str*: a varint byte length, then that many bytes of UTF-8.
//! - *tagged str* over a list of known values `K`: one varint `v`. `v < K.len()` means `K[v]`;
//!   otherwise a string of `v - K.len()` UTF-8 bytes follows. A known value is always written as
//!   its tag, never as text.
//!
//! # Layout, version 1
//!
//! | #  | field                                  | encoding                                             |
//! |----|----------------------------------------|------------------------------------------------------|
//! | 1  | format version                         | 1 byte, `1`                                          |
//! | 2  | `protocol`                             | 1 byte: 0 plausible, 1 ga4, 2 umami, 3 footfall      |
//! | 3  | `property_id`                          | 16 bytes, the UUID's bytes in RFC 4122 order         |
//! | 4  | `visitor_key`                          | 8 bytes, the `u64` big-endian                        |
//! | 5  | `occurred_at` seconds                  | zigzag: Unix seconds (`timestamp()`)                 |
//! | 6  | `occurred_at` nanoseconds              | varint: `timestamp_subsec_nanos()`, < 2·10⁹ (≥ 10⁹ only in a leap second) |
//! | 7  | `received_at` − `occurred_at`, seconds | zigzag: difference of the Unix seconds               |
//! | 8  | `received_at` − `occurred_at`, nanos   | zigzag: difference of the subsecond nanoseconds      |
//! | 9  | flags                                  | varint bitmask, below; other bits are invalid        |
//! | 10 | `name`                                 | tagged str, `K` = [`pageview`, `engagement`]         |
//! | 11 | `url`                                  | str                                                  |
//! | 12 | `referrer`                             | str, if flag `REFERRER`                              |
//! | 13 | `title`                                | str, if flag `TITLE`                                 |
//! | 14 | `user_agent`                           | str, if flag `USER_AGENT`                            |
//! | 15 | `screen`                               | str, if flag `SCREEN`                                |
//! | 16 | `language`                             | str, if flag `LANGUAGE`                              |
//! | 17 | `client_id`                            | str, if flag `CLIENT_ID`                             |
//! | 18 | `session_id`                           | str, if flag `SESSION_ID`                            |
//! | 19 | `user_id`                              | str, if flag `USER_ID`                               |
//! | 20 | `props`                                | if flag `PROPS`: varint count ≥ 1, then per prop, in order: key str, value str |
//! | 21 | `revenue`                              | if flag `REVENUE`: currency str, amount str          |
//! | 22 | `engagement_ms`                        | varint, if flag `ENGAGEMENT_MS`                      |
//! | 23 | `geo`                                  | if flag `GEO`: 1 byte geo mask ≠ 0, then each present field, as str, in mask-bit order |
//! | 24 | `device`                               | if flag `DEVICE`: 1 byte device mask, then each present field in mask-bit order; `category` is a tagged str with `K` = [`desktop`, `mobile`, `tablet`], the others are str |
//!
//! Flags (bit: meaning): 0 `interactive`, 1 `REFERRER`, 2 `TITLE`, 3 `USER_AGENT`, 4 `SCREEN`,
//! 5 `LANGUAGE`, 6 `GEO` (the geo is not `Geo::default()`), 7 `hash_mode`, 8 `CLIENT_ID`,
//! 9 `SESSION_ID`, 10 `USER_ID`, 11 `PROPS` (props not empty), 12 `REVENUE`, 13 `ENGAGEMENT_MS`,
//! 14 `DEVICE` (the device is `Some`, possibly with no field set). A browser pageview's usual set
//! fits in bits 0–6, so its flags take one byte.
//!
//! Geo mask (bit: field): 0 `country`, 1 `country_name`, 2 `region`, 3 `region_name`, 4 `city`,
//! 5 `city_name`. Device mask: 0 `category`, 1 `os`, 2 `os_version`, 3 `browser`,
//! 4 `browser_version`, 5 `model`, 6 `brand`. Optional strings that are `Some("")` are present
//! (bit set, length 0): `None` and `Some("")` stay distinct.
//!
//! Decoding accepts exactly the bytes [`encode_hit`] produces: whatever decodes re-encodes to the
//! same bytes. It never panics, checks every length against the remaining input before
//! allocating, validates UTF-8, and rejects trailing bytes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::hit::{ENGAGEMENT, PAGEVIEW};
use super::{Geo, HitRecorded, PropertyId, Protocol, ReportedDevice, Revenue, VisitorKey};

/// The format version [`encode_hit`] writes.
pub const VERSION: u8 = 1;

/// Why bytes are not a [`HitRecorded`] of this encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The first byte names a format version this code does not know (or the input is empty:
    /// that is [`CodecError::Truncated`]).
    #[error("unknown hit encoding version {0}")]
    UnknownVersion(u8),
    /// The input ends inside a field, or a length prefix or count exceeds the remaining input.
    #[error("hit encoding is truncated")]
    Truncated,
    /// A string's bytes are not valid UTF-8.
    #[error("a string of the hit encoding is not valid UTF-8")]
    InvalidUtf8,
    /// A one-byte tag (such as the protocol) has no meaning.
    #[error("unknown tag {0} in the hit encoding")]
    InvalidTag(u8),
    /// A complete hit is followed by this many more bytes.
    #[error("{0} trailing bytes after the encoded hit")]
    TrailingBytes(usize),
    /// The bytes are well-formed but not a value [`encode_hit`] writes: a varint that overflows
    /// or is not in its shortest form, reserved flag bits, an out-of-range timestamp, a
    /// non-canonical tag, …
    #[error("invalid hit encoding: {0}")]
    Invalid(&'static str),
}

const NAMES: [&str; 2] = [PAGEVIEW, ENGAGEMENT];
const DEVICE_CATEGORIES: [&str; 3] = ["desktop", "mobile", "tablet"];

const F_INTERACTIVE: u64 = 1 << 0;
const F_REFERRER: u64 = 1 << 1;
const F_TITLE: u64 = 1 << 2;
const F_USER_AGENT: u64 = 1 << 3;
const F_SCREEN: u64 = 1 << 4;
const F_LANGUAGE: u64 = 1 << 5;
const F_GEO: u64 = 1 << 6;
const F_HASH_MODE: u64 = 1 << 7;
const F_CLIENT_ID: u64 = 1 << 8;
const F_SESSION_ID: u64 = 1 << 9;
const F_USER_ID: u64 = 1 << 10;
const F_PROPS: u64 = 1 << 11;
const F_REVENUE: u64 = 1 << 12;
const F_ENGAGEMENT_MS: u64 = 1 << 13;
const F_DEVICE: u64 = 1 << 14;
const F_ALL: u64 = (1 << 15) - 1;

const GEO_ALL: u8 = (1 << 6) - 1;
const DEVICE_ALL: u8 = (1 << 7) - 1;

/// Leap seconds put `timestamp_subsec_nanos` in `1e9..2e9`.
const MAX_NANOS: i64 = 2_000_000_000;

/// Encodes a hit as version [`VERSION`] of the layout in the module documentation.
pub fn encode_hit(hit: &HitRecorded) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(64 + hit.url.len() + hit.user_agent.as_ref().map_or(0, String::len));
    encode_hit_into(hit, &mut out);
    out
}

/// Appends the encoding of `hit` ([`encode_hit`]) to `out`, for batch encoders.
pub fn encode_hit_into(hit: &HitRecorded, out: &mut Vec<u8>) {
    out.push(VERSION);
    out.push(protocol_tag(hit.protocol));
    out.extend_from_slice(hit.property_id.as_uuid().as_bytes());
    out.extend_from_slice(&hit.visitor_key.as_u64().to_be_bytes());

    let (occ_secs, occ_nanos) = (
        hit.occurred_at.timestamp(),
        hit.occurred_at.timestamp_subsec_nanos(),
    );
    let (rec_secs, rec_nanos) = (
        hit.received_at.timestamp(),
        hit.received_at.timestamp_subsec_nanos(),
    );
    put_zigzag(out, occ_secs);
    put_varint(out, u64::from(occ_nanos));
    // Both are within chrono's range (about ±8.3·10¹² s), so the difference cannot overflow.
    put_zigzag(out, rec_secs.wrapping_sub(occ_secs));
    put_zigzag(out, i64::from(rec_nanos) - i64::from(occ_nanos));

    let geo_mask = geo_mask(&hit.geo);
    let flag = |on: bool, bit: u64| if on { bit } else { 0 };
    let flags = flag(hit.interactive, F_INTERACTIVE)
        | flag(hit.referrer.is_some(), F_REFERRER)
        | flag(hit.title.is_some(), F_TITLE)
        | flag(hit.user_agent.is_some(), F_USER_AGENT)
        | flag(hit.screen.is_some(), F_SCREEN)
        | flag(hit.language.is_some(), F_LANGUAGE)
        | flag(geo_mask != 0, F_GEO)
        | flag(hit.hash_mode, F_HASH_MODE)
        | flag(hit.client_id.is_some(), F_CLIENT_ID)
        | flag(hit.session_id.is_some(), F_SESSION_ID)
        | flag(hit.user_id.is_some(), F_USER_ID)
        | flag(!hit.props.is_empty(), F_PROPS)
        | flag(hit.revenue.is_some(), F_REVENUE)
        | flag(hit.engagement_ms.is_some(), F_ENGAGEMENT_MS)
        | flag(hit.device.is_some(), F_DEVICE);
    put_varint(out, flags);

    put_tagged(out, &hit.name, &NAMES);
    put_str(out, &hit.url);
    for s in [
        &hit.referrer,
        &hit.title,
        &hit.user_agent,
        &hit.screen,
        &hit.language,
        &hit.client_id,
        &hit.session_id,
        &hit.user_id,
    ]
    .into_iter()
    .flatten()
    {
        put_str(out, s);
    }
    if !hit.props.is_empty() {
        put_varint(out, hit.props.len() as u64);
        for (key, value) in &hit.props {
            put_str(out, key);
            put_str(out, value);
        }
    }
    if let Some(revenue) = &hit.revenue {
        put_str(out, &revenue.currency);
        put_str(out, &revenue.amount);
    }
    if let Some(ms) = hit.engagement_ms {
        put_varint(out, ms);
    }
    if geo_mask != 0 {
        out.push(geo_mask);
        for s in geo_fields(&hit.geo).into_iter().flatten() {
            put_str(out, s);
        }
    }
    if let Some(device) = &hit.device {
        let fields = device_fields(device);
        let [category, rest @ ..] = fields;
        let mut mask = 0u8;
        for (bit, field) in fields.iter().enumerate() {
            if field.is_some() {
                mask |= 1 << bit;
            }
        }
        out.push(mask);
        if let Some(category) = category {
            put_tagged(out, category, &DEVICE_CATEGORIES);
        }
        for s in rest.into_iter().flatten() {
            put_str(out, s);
        }
    }
}

/// Decodes bytes that [`encode_hit`] wrote (any known version) back into the hit.
pub fn decode_hit(bytes: &[u8]) -> Result<HitRecorded, CodecError> {
    let mut r = Reader { rest: bytes };
    match r.byte()? {
        1 => {}
        v => return Err(CodecError::UnknownVersion(v)),
    }
    let protocol = match r.byte()? {
        0 => Protocol::Plausible,
        1 => Protocol::Ga4,
        2 => Protocol::Umami,
        3 => Protocol::Footfall,
        t => return Err(CodecError::InvalidTag(t)),
    };
    let property_id = PropertyId::new(Uuid::from_bytes(r.array()?));
    let key = u64::from_be_bytes(r.array()?);
    let visitor_key = VisitorKey::from_u64(key);

    let occ_secs = r.zigzag()?;
    let occ_nanos = i64::try_from(r.varint()?).map_err(|_| CodecError::Invalid("nanoseconds"))?;
    let occurred_at = timestamp(occ_secs, occ_nanos)?;
    let rec_secs = occ_secs
        .checked_add(r.zigzag()?)
        .ok_or(CodecError::Invalid("timestamp"))?;
    let rec_nanos = occ_nanos
        .checked_add(r.zigzag()?)
        .ok_or(CodecError::Invalid("nanoseconds"))?;
    let received_at = timestamp(rec_secs, rec_nanos)?;

    let flags = r.varint()?;
    if flags & !F_ALL != 0 {
        return Err(CodecError::Invalid("reserved flag bits"));
    }
    let has = |bit: u64| flags & bit != 0;
    // Read in layout order: each call consumes its field.
    let name = r.tagged(&NAMES)?;
    let url = r.str()?;
    let opt = |r: &mut Reader<'_>, bit: u64| -> Result<Option<String>, CodecError> {
        if has(bit) {
            r.str().map(Some)
        } else {
            Ok(None)
        }
    };
    let referrer = opt(&mut r, F_REFERRER)?;
    let title = opt(&mut r, F_TITLE)?;
    let user_agent = opt(&mut r, F_USER_AGENT)?;
    let screen = opt(&mut r, F_SCREEN)?;
    let language = opt(&mut r, F_LANGUAGE)?;
    let client_id = opt(&mut r, F_CLIENT_ID)?;
    let session_id = opt(&mut r, F_SESSION_ID)?;
    let user_id = opt(&mut r, F_USER_ID)?;

    let mut props = Vec::new();
    if has(F_PROPS) {
        let count = r.varint()?;
        if count == 0 {
            return Err(CodecError::Invalid("empty props written as present"));
        }
        // Each prop takes at least two bytes (two empty strings): a count beyond that cannot be
        // satisfied, and must not size an allocation.
        let count = usize::try_from(count)
            .ok()
            .filter(|&c| c <= r.rest.len() / 2)
            .ok_or(CodecError::Truncated)?;
        props.reserve_exact(count);
        for _ in 0..count {
            let key = r.str()?;
            let value = r.str()?;
            props.push((key, value));
        }
    }
    let revenue = if has(F_REVENUE) {
        let currency = r.str()?;
        let amount = r.str()?;
        Some(Revenue { currency, amount })
    } else {
        None
    };
    let engagement_ms = if has(F_ENGAGEMENT_MS) {
        Some(r.varint()?)
    } else {
        None
    };
    let geo = if has(F_GEO) {
        let mask = r.byte()?;
        if mask == 0 || mask & !GEO_ALL != 0 {
            return Err(CodecError::Invalid("geo mask"));
        }
        let mut field = |bit: u8| -> Result<Option<String>, CodecError> {
            if mask & (1 << bit) != 0 {
                r.str().map(Some)
            } else {
                Ok(None)
            }
        };
        Geo {
            country: field(0)?,
            country_name: field(1)?,
            region: field(2)?,
            region_name: field(3)?,
            city: field(4)?,
            city_name: field(5)?,
        }
    } else {
        Geo::default()
    };
    let device = if has(F_DEVICE) {
        let mask = r.byte()?;
        if mask & !DEVICE_ALL != 0 {
            return Err(CodecError::Invalid("device mask"));
        }
        let category = if mask & 1 != 0 {
            Some(r.tagged(&DEVICE_CATEGORIES)?)
        } else {
            None
        };
        let mut field = |bit: u8| -> Result<Option<String>, CodecError> {
            if mask & (1 << bit) != 0 {
                r.str().map(Some)
            } else {
                Ok(None)
            }
        };
        Some(ReportedDevice {
            category,
            os: field(1)?,
            os_version: field(2)?,
            browser: field(3)?,
            browser_version: field(4)?,
            model: field(5)?,
            brand: field(6)?,
        })
    } else {
        None
    };
    if !r.rest.is_empty() {
        return Err(CodecError::TrailingBytes(r.rest.len()));
    }
    Ok(HitRecorded {
        property_id,
        occurred_at,
        received_at,
        name,
        url,
        referrer,
        title,
        user_agent,
        screen,
        language,
        visitor_key,
        client_id,
        session_id,
        user_id,
        props,
        revenue,
        interactive: has(F_INTERACTIVE),
        hash_mode: has(F_HASH_MODE),
        engagement_ms,
        geo,
        device,
        protocol,
    })
}

fn protocol_tag(p: Protocol) -> u8 {
    match p {
        Protocol::Plausible => 0,
        Protocol::Ga4 => 1,
        Protocol::Umami => 2,
        Protocol::Footfall => 3,
    }
}

fn geo_fields(g: &Geo) -> [&Option<String>; 6] {
    [
        &g.country,
        &g.country_name,
        &g.region,
        &g.region_name,
        &g.city,
        &g.city_name,
    ]
}

fn geo_mask(g: &Geo) -> u8 {
    let mut mask = 0;
    for (bit, field) in geo_fields(g).iter().enumerate() {
        if field.is_some() {
            mask |= 1 << bit;
        }
    }
    mask
}

fn device_fields(d: &ReportedDevice) -> [&Option<String>; 7] {
    [
        &d.category,
        &d.os,
        &d.os_version,
        &d.browser,
        &d.browser_version,
        &d.model,
        &d.brand,
    ]
}

fn timestamp(secs: i64, nanos: i64) -> Result<DateTime<Utc>, CodecError> {
    if !(0..MAX_NANOS).contains(&nanos) {
        return Err(CodecError::Invalid("nanoseconds"));
    }
    let nanos = u32::try_from(nanos).map_err(|_| CodecError::Invalid("nanoseconds"))?;
    DateTime::from_timestamp(secs, nanos).ok_or(CodecError::Invalid("timestamp"))
}

/// Appends `v` as an unsigned LEB128 varint (also the framing of the log's record batches).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Appends a varint length and the string's bytes.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_tagged(out: &mut Vec<u8>, s: &str, known: &[&str]) {
    match known.iter().position(|k| *k == s) {
        Some(tag) => put_varint(out, tag as u64),
        None => {
            put_varint(out, (s.len() + known.len()) as u64);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// The unread rest of the input. Every read checks the remaining length first. The log's record
/// batches share it.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// How many bytes are left.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or(CodecError::Truncated)?;
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn byte(&mut self) -> Result<u8, CodecError> {
        let (&b, tail) = self.rest.split_first().ok_or(CodecError::Truncated)?;
        self.rest = tail;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| CodecError::Truncated)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            let group = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(CodecError::Invalid("varint overflows 64 bits"));
            }
            v |= group << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(CodecError::Invalid("varint not in its shortest form"));
                }
                return Ok(v);
            }
        }
        Err(CodecError::Invalid("varint overflows 64 bits"))
    }

    fn zigzag(&mut self) -> Result<i64, CodecError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A length prefix, checked against the remaining input.
    pub(crate) fn len(&mut self) -> Result<usize, CodecError> {
        usize::try_from(self.varint()?)
            .ok()
            .filter(|&n| n <= self.rest.len())
            .ok_or(CodecError::Truncated)
    }

    fn utf8(&mut self, n: usize) -> Result<String, CodecError> {
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| CodecError::InvalidUtf8)
    }

    pub(crate) fn str(&mut self) -> Result<String, CodecError> {
        let n = self.len()?;
        self.utf8(n)
    }

    fn tagged(&mut self, known: &[&str]) -> Result<String, CodecError> {
        let v = usize::try_from(self.varint()?).map_err(|_| CodecError::Truncated)?;
        if let Some(known) = known.get(v) {
            return Ok((*known).to_owned());
        }
        // `v ≥ known.len()` here; `utf8` checks the length against the input before allocating.
        let text_len = v - known.len();
        let s = self.utf8(text_len)?;
        if known.contains(&s.as_str()) {
            return Err(CodecError::Invalid("known value written as text"));
        }
        Ok(s)
    }
}

/// Proptest strategies for hits, for any unit test that needs arbitrary `HitRecorded` values.
#[cfg(test)]
pub(crate) mod strategies {
    use chrono::{DateTime, Duration, Utc};
    use proptest::prelude::*;
    use uuid::Uuid;

    use crate::domain::{
        Geo, HitRecorded, PropertyId, Protocol, ReportedDevice, Revenue, VisitorKey,
    };

    /// Any Unicode text (control characters, NUL, astral planes, empty), with short ASCII now and
    /// then so that equal strings (duplicate prop keys) come up.
    pub(crate) fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => proptest::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
            1 => "[a-c]{0,2}",
        ]
    }

    /// `None`, `Some("")` and `Some(text)`.
    pub(crate) fn opt_text() -> impl Strategy<Value = Option<String>> {
        prop_oneof![Just(None), Just(Some(String::new())), text().prop_map(Some)]
    }

    /// A text that is one of `known` half of the time.
    fn known_or_text(known: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(known).prop_map(str::to_owned),
            text()
        ]
    }

    /// Any instant chrono can represent, at nanosecond precision, leap seconds included, with
    /// today's instants and the ends of the range weighted in.
    pub(crate) fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
        let (min, max) = (
            DateTime::<Utc>::MIN_UTC.timestamp(),
            DateTime::<Utc>::MAX_UTC.timestamp(),
        );
        let secs = prop_oneof![
            min..=max,
            1_600_000_000i64..1_900_000_000,
            -2i64..=2,
            Just(min),
            Just(max),
        ];
        let nanos = prop_oneof![
            4 => 0u32..1_000_000_000,
            1 => Just(0u32),
            1 => Just(999_999_999u32),
            1 => 1_000_000_000u32..2_000_000_000,
        ];
        (secs, nanos).prop_filter_map("in chrono's range", |(s, n)| {
            // A leap second (nanos ≥ 10⁹) is the 59th second of a minute; `min` starts a minute
            // and `max` ends one, so this stays in range.
            let s = if n >= 1_000_000_000 {
                s - s.rem_euclid(60) + 59
            } else {
                s
            };
            DateTime::from_timestamp(s, n)
        })
    }

    /// `(occurred_at, received_at)`: equal, a realistic distance apart, or unrelated.
    pub(crate) fn times() -> impl Strategy<Value = (DateTime<Utc>, DateTime<Utc>)> {
        timestamp().prop_flat_map(|occ| {
            let near = (-300_000_000_000i64..259_200_000_000_000).prop_map(move |ns| {
                let rec = occ
                    .checked_add_signed(Duration::nanoseconds(ns))
                    .unwrap_or(occ);
                (occ, rec)
            });
            prop_oneof![
                Just((occ, occ)),
                near,
                timestamp().prop_map(move |rec| (occ, rec)),
            ]
        })
    }

    pub(crate) fn protocol() -> impl Strategy<Value = Protocol> {
        prop_oneof![
            Just(Protocol::Plausible),
            Just(Protocol::Ga4),
            Just(Protocol::Umami),
            Just(Protocol::Footfall),
        ]
    }

    pub(crate) fn visitor_key() -> impl Strategy<Value = VisitorKey> {
        any::<u64>().prop_map(|k| VisitorKey::try_from(format!("{k:016x}")).unwrap())
    }

    /// Props in order, with duplicate keys and duplicate pairs.
    pub(crate) fn props() -> impl Strategy<Value = Vec<(String, String)>> {
        (
            proptest::collection::vec((text(), text()), 0..6),
            any::<bool>(),
        )
            .prop_map(|(mut props, dup)| {
                if let (true, Some(first)) = (dup, props.first().cloned()) {
                    props.push(first);
                }
                props
            })
    }

    pub(crate) fn geo() -> impl Strategy<Value = Geo> {
        prop_oneof![
            Just(Geo::default()),
            (
                opt_text(),
                opt_text(),
                opt_text(),
                opt_text(),
                opt_text(),
                opt_text()
            )
                .prop_map(|(a, b, c, d, e, f)| Geo {
                    country: a,
                    country_name: b,
                    region: c,
                    region_name: d,
                    city: e,
                    city_name: f,
                }),
        ]
    }

    pub(crate) fn device() -> impl Strategy<Value = Option<ReportedDevice>> {
        let category = prop_oneof![
            Just(None),
            known_or_text(&["desktop", "mobile", "tablet"]).prop_map(Some)
        ];
        proptest::option::of(
            (
                category,
                opt_text(),
                opt_text(),
                opt_text(),
                opt_text(),
                opt_text(),
                opt_text(),
            )
                .prop_map(
                    |(category, os, os_version, browser, browser_version, model, brand)| {
                        ReportedDevice {
                            category,
                            os,
                            os_version,
                            browser,
                            browser_version,
                            model,
                            brand,
                        }
                    },
                ),
        )
    }

    /// Any `HitRecorded` the type can hold, valid for the domain or not.
    pub(crate) fn hit_recorded() -> impl Strategy<Value = HitRecorded> {
        let ids = (any::<[u8; 16]>(), visitor_key(), protocol(), times());
        let texts = (
            known_or_text(&["pageview", "engagement"]),
            text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
        );
        let rest = (
            props(),
            proptest::option::of((text(), text())),
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(prop_oneof![any::<u64>(), 0u64..100_000, Just(u64::MAX)]),
            geo(),
            device(),
        );
        (ids, texts, rest).prop_map(
            |(
                (id, visitor_key, protocol, (occurred_at, received_at)),
                (
                    name,
                    url,
                    referrer,
                    title,
                    user_agent,
                    screen,
                    language,
                    client_id,
                    session_id,
                    user_id,
                ),
                (props, revenue, interactive, hash_mode, engagement_ms, geo, device),
            )| HitRecorded {
                property_id: PropertyId::new(Uuid::from_bytes(id)),
                occurred_at,
                received_at,
                name,
                url,
                referrer,
                title,
                user_agent,
                screen,
                language,
                visitor_key,
                client_id,
                session_id,
                user_id,
                props,
                revenue: revenue.map(|(currency, amount)| Revenue { currency, amount }),
                interactive,
                hash_mode,
                engagement_ms,
                geo,
                device,
                protocol,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::strategies;
    use super::*;
    use proptest::prelude::*;

    fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, nanos).unwrap()
    }

    fn key(k: u64) -> VisitorKey {
        VisitorKey::try_from(format!("{k:016x}")).unwrap()
    }

    fn minimal() -> HitRecorded {
        HitRecorded {
            property_id: PropertyId::parse("0190c7e6-5b8f-7000-8000-000000000001").unwrap(),
            occurred_at: at(0, 0),
            received_at: at(0, 0),
            name: String::new(),
            url: String::new(),
            referrer: None,
            title: None,
            user_agent: None,
            screen: None,
            language: None,
            visitor_key: key(0),
            client_id: None,
            session_id: None,
            user_id: None,
            props: vec![],
            revenue: None,
            interactive: false,
            hash_mode: false,
            engagement_ms: None,
            geo: Geo::default(),
            device: None,
            protocol: Protocol::Plausible,
        }
    }

    /// A browser pageview as the tracker sends it, with GeoIP configured.
    fn typical() -> HitRecorded {
        let t = at(1_747_214_467, 123_456_789);
        HitRecorded {
            property_id: PropertyId::parse("0190c7e6-5b8f-7000-8000-00000000002a").unwrap(),
            occurred_at: t,
            received_at: t,
            name: "pageview".into(),
            url: "https://shop.example/products/trail-running-shoes?color=blue".into(),
            referrer: Some("https://www.google.com/".into()),
            title: Some("Trail running shoes – Shop Example".into()),
            user_agent: Some(
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
                 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
                    .into(),
            ),
            screen: Some("1920x1080".into()),
            language: Some("de-DE".into()),
            visitor_key: key(0x9f86_d081_884c_7d65),
            client_id: None,
            session_id: None,
            user_id: None,
            props: vec![],
            revenue: None,
            interactive: true,
            hash_mode: false,
            engagement_ms: None,
            geo: Geo {
                country: Some("DE".into()),
                country_name: Some("Germany".into()),
                region: Some("DE-BE".into()),
                region_name: Some("Berlin".into()),
                city: Some("2950159".into()),
                city_name: Some("Berlin".into()),
            },
            device: None,
            protocol: Protocol::Plausible,
        }
    }

    fn round_trips(hit: &HitRecorded) {
        let bytes = encode_hit(hit);
        assert_eq!(decode_hit(&bytes).as_ref(), Ok(hit), "{bytes:02x?}");
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The bytes of `minimal()` up to its flags: version, protocol, property, key, 4 × zero time.
    fn header() -> Vec<u8> {
        let mut b = vec![1, 0];
        b.extend_from_slice(minimal().property_id.as_uuid().as_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&[0, 0, 0, 0]);
        b
    }

    #[test]
    fn edge_cases_round_trip_exactly() {
        round_trips(&minimal());
        round_trips(&typical());
        let s = |v: &str| Some(v.to_owned());
        let empty = Some(String::new());
        let everything_empty = HitRecorded {
            referrer: empty.clone(),
            title: empty.clone(),
            user_agent: empty.clone(),
            screen: empty.clone(),
            language: empty.clone(),
            client_id: empty.clone(),
            session_id: empty.clone(),
            user_id: empty.clone(),
            props: vec![(String::new(), String::new())],
            revenue: Some(Revenue {
                currency: String::new(),
                amount: String::new(),
            }),
            engagement_ms: Some(0),
            geo: Geo {
                country: empty.clone(),
                ..Geo::default()
            },
            device: Some(ReportedDevice::default()),
            ..minimal()
        };
        round_trips(&everything_empty);
        let unicode = HitRecorded {
            name: "engagement".into(),
            url: "https://bücher.example/🙂?q=日本語\u{0}\u{7f}\u{10ffff}".into(),
            title: s("a\nb\tc\r\u{9c}"),
            props: vec![
                ("k".into(), "v".into()),
                ("k".into(), "v".into()),
                ("k".into(), "w".into()),
                ("🙂".into(), "é".repeat(600)),
            ],
            revenue: Some(Revenue {
                currency: "EUR".into(),
                amount: "-1322.220000".into(),
            }),
            interactive: true,
            hash_mode: true,
            engagement_ms: Some(u64::MAX),
            device: Some(ReportedDevice {
                category: s("mobile"),
                brand: s("Ünïcode"),
                ..ReportedDevice::default()
            }),
            protocol: Protocol::Ga4,
            ..typical()
        };
        round_trips(&unicode);
        // Text that is close to a tag is text; a long string needs a multi-byte length.
        for (name, category) in [
            ("Pageview", "Mobile"),
            ("pageview ", ""),
            ("", "desktop"),
            ("x", "tablet"),
        ] {
            round_trips(&HitRecorded {
                name: name.into(),
                url: "u".repeat(20_000),
                device: Some(ReportedDevice {
                    category: s(category),
                    ..ReportedDevice::default()
                }),
                protocol: Protocol::Umami,
                ..minimal()
            });
        }
        // Time: both ends of chrono's range, a leap second, nanoseconds, received before occurred.
        let leap = at(1_483_228_799, 1_500_000_000);
        assert_eq!(leap.timestamp_subsec_nanos(), 1_500_000_000);
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        for (occurred_at, received_at) in [
            (min, max),
            (max, min),
            (min, min),
            (leap, leap),
            (leap, at(1_483_228_800, 0)),
            (at(-1, 999_999_999), at(0, 1)),
            (at(1_700_000_000, 1), at(1_699_999_000, 999_999_999)),
        ] {
            round_trips(&HitRecorded {
                occurred_at,
                received_at,
                visitor_key: key(u64::MAX),
                protocol: Protocol::Footfall,
                ..minimal()
            });
        }
    }

    #[test]
    fn the_format_is_stable() {
        // Version 1 of `minimal()` with a few fields set. If this changes, old logs no longer
        // decode: add a version instead.
        let hit = HitRecorded {
            occurred_at: at(1, 2),
            received_at: at(0, 3),
            name: "pageview".into(),
            url: "u".into(),
            referrer: Some("r".into()),
            visitor_key: key(0x0102_0304_0506_0708),
            props: vec![("k".into(), "v".into())],
            interactive: true,
            geo: Geo {
                city_name: Some("c".into()),
                ..Geo::default()
            },
            device: Some(ReportedDevice {
                category: Some("tablet".into()),
                ..ReportedDevice::default()
            }),
            protocol: Protocol::Ga4,
            ..minimal()
        };
        let bytes = encode_hit(&hit);
        assert_eq!(
            hex(&bytes),
            concat!(
                "01",                               // version
                "01",                               // protocol: ga4
                "0190c7e65b8f70008000000000000001", // property id
                "0102030405060708",                 // visitor key
                "02",                               // occurred_at: 1 s (zigzag)
                "02",                               // occurred_at: 2 ns
                "01",                               // received_at: -1 s (zigzag)
                "02",                               // received_at: +1 ns (zigzag)
                "c39001",                           // flags: bits 0,1,6,11,14
                "00",                               // name: pageview
                "0175",                             // url: "u"
                "0172",                             // referrer: "r"
                "01016b0176",                       // props: 1, "k", "v"
                "200163",                           // geo: city_name "c"
                "0102",                             // device: category tablet
            )
        );
        assert_eq!(decode_hit(&bytes), Ok(hit));
    }

    #[test]
    fn a_typical_pageview_is_under_half_its_json() {
        // A browser pageview: a 60-character https URL, a referrer, a 117-character Chrome user
        // agent, a title with one non-ASCII character, screen, language, no props, received at
        // the instant it occurred (nanoseconds set), with and without a GeoIP location.
        //
        //                      JSON (serde_json, today's log)   binary v1   ratio
        //   with location       711 bytes                        335 bytes   47 %
        //   without location    594 bytes                        295 bytes   50 %
        //
        // Size comparison only, no timing. The strings' own bytes are 283 (250 without the
        // location) of both forms: binary framing is 52 (45) bytes, JSON's 428 (344): field
        // names, quotes, the 36-character UUID, the 16-digit visitor key, two 30-character RFC
        // 3339 timestamps, `"protocol":"plausible"`. What remains is text that only the batch
        // compressor can shrink. Both encoders are one pass over the fields; decoding allocates
        // once per string, like serde_json, and once for the visitor key.
        let hit = typical();
        let json = serde_json::to_vec(&hit).unwrap().len();
        let binary = encode_hit(&hit).len();
        assert_eq!((json, binary), (711, 335));
        assert!(binary * 2 < json);
        let no_geo = HitRecorded {
            geo: Geo::default(),
            ..hit
        };
        let (json, binary) = (
            serde_json::to_vec(&no_geo).unwrap().len(),
            encode_hit(&no_geo).len(),
        );
        assert_eq!((json, binary), (594, 295));
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        assert_eq!(decode_hit(&[]), Err(CodecError::Truncated));
        assert_eq!(decode_hit(&[0]), Err(CodecError::UnknownVersion(0)));
        assert_eq!(decode_hit(&[2, 0]), Err(CodecError::UnknownVersion(2)));
        assert_eq!(decode_hit(&[1, 4]), Err(CodecError::InvalidTag(4)));
        assert_eq!(decode_hit(&[1, 0, 1, 2]), Err(CodecError::Truncated));

        let valid = |tail: &[u8]| [header(), tail.to_vec()].concat();
        // flags 0, name "" (tag 2 + 0 bytes), url "".
        assert_eq!(decode_hit(&valid(&[0, 2, 0])), Ok(minimal()));
        assert_eq!(
            decode_hit(&valid(&[0, 2, 0, 0])),
            Err(CodecError::TrailingBytes(1))
        );
        assert_eq!(decode_hit(&valid(&[0, 2])), Err(CodecError::Truncated));
        assert_eq!(
            decode_hit(&valid(&[0, 2, 2, 0xc3, 0x28])),
            Err(CodecError::InvalidUtf8)
        );
        assert_eq!(
            decode_hit(&valid(&[0, 3, 0xff, 0])),
            Err(CodecError::InvalidUtf8)
        );
        // A length far beyond the input is refused before any allocation.
        let huge = [0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(decode_hit(&valid(&huge)), Err(CodecError::Truncated));
        let many_props = [0x80, 0x10, 2, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0];
        assert_eq!(decode_hit(&valid(&many_props)), Err(CodecError::Truncated));
        // Non-canonical forms: overlong varint, reserved flag, known name as text, empty props,
        // empty geo, unknown device bit, varint overflow.
        for tail in [
            &[0x80, 0x00, 2, 0][..],
            &[0x80, 0x80, 0x02, 2, 0],
            &[0, 10, b'p', b'a', b'g', b'e', b'v', b'i', b'e', b'w', 0],
            &[0x80, 0x10, 2, 0, 0],
            &[0x40, 2, 0, 0],
            &[0x80, 0x80, 0x01, 2, 0, 0x80],
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 2, 0,
            ],
        ] {
            assert!(
                matches!(decode_hit(&valid(tail)), Err(CodecError::Invalid(_))),
                "{tail:02x?}"
            );
        }
        // Timestamps outside chrono's range, nanoseconds past a leap second, a leap second that
        // does not end a minute.
        let mut b = header();
        b.truncate(26);
        for time in [
            &[
                0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0,
            ][..],
            &[0, 0x80, 0xa8, 0xd6, 0xb9, 0x07, 0, 0],
            &[0, 0x80, 0x94, 0xeb, 0xdc, 0x03, 0, 0],
            &[0, 0, 0, 1],
            &[
                0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0,
            ],
        ] {
            let bytes = [&b[..], time, &[0, 2, 0]].concat();
            assert!(
                matches!(decode_hit(&bytes), Err(CodecError::Invalid(_))),
                "{time:02x?}"
            );
        }
    }

    #[test]
    fn encode_hit_into_appends() {
        let mut out = b"prefix".to_vec();
        encode_hit_into(&typical(), &mut out);
        encode_hit_into(&minimal(), &mut out);
        let first = encode_hit(&typical());
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(&out[6..6 + first.len()], &first[..]);
        assert_eq!(decode_hit(&out[6 + first.len()..]), Ok(minimal()));
    }

    /// Whatever decodes is exactly what `encode_hit` writes for it: the encoding is canonical.
    fn decodes_canonically(bytes: &[u8]) -> Result<(), TestCaseError> {
        if let Ok(hit) = decode_hit(bytes) {
            prop_assert_eq!(hex(&encode_hit(&hit)), hex(bytes));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn every_hit_round_trips(hit in strategies::hit_recorded()) {
            let bytes = encode_hit(&hit);
            prop_assert_eq!(decode_hit(&bytes), Ok(hit));
            // Every strict prefix is an error; so is a byte more.
            for n in 0..bytes.len() {
                prop_assert!(decode_hit(&bytes[..n]).is_err());
            }
            let longer = [&bytes[..], &[0]].concat();
            prop_assert_eq!(decode_hit(&longer), Err(CodecError::TrailingBytes(1)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            decodes_canonically(&bytes)?;
        }

        #[test]
        fn arbitrary_bytes_behind_a_valid_header_never_panic(
            protocol in 0u8..4,
            head in proptest::collection::vec(any::<u8>(), 24),
            flags in 0u64..(1 << 15),
            tail in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut bytes = vec![VERSION, protocol];
            bytes.extend_from_slice(&head);
            put_varint(&mut bytes, 0x2000_0000);
            bytes.extend_from_slice(&[0, 0, 0]);
            put_varint(&mut bytes, flags);
            bytes.extend_from_slice(&tail);
            decodes_canonically(&bytes)?;
        }

        #[test]
        fn damaged_encodings_never_panic(
            hit in strategies::hit_recorded(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
            cut in any::<prop::sample::Index>(),
            junk in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let bytes = encode_hit(&hit);
            let mut damaged = bytes.clone();
            for (at, bit) in flips {
                let i = at.index(damaged.len());
                damaged[i] ^= 1 << bit;
            }
            decodes_canonically(&damaged)?;
            let mut spliced = bytes[..cut.index(bytes.len())].to_vec();
            spliced.extend_from_slice(&junk);
            decodes_canonically(&spliced)?;
        }
    }
}
