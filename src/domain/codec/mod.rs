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
use wire::{put_tagged, put_zigzag};

mod wire;
pub(crate) use wire::{put_str, put_varint, Reader};

/// Proptest strategies for hits, for any unit test that needs arbitrary `HitRecorded` values.
#[cfg(test)]
pub(crate) mod strategies;
#[cfg(test)]
mod tests;

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

/// The visitor key of an encoded hit, read without decoding the rest (for routing hits to
/// partitions); `None` unless the bytes start like version [`VERSION`] of the layout.
pub fn peek_visitor_key(bytes: &[u8]) -> Option<u64> {
    match bytes {
        [VERSION, _, rest @ ..] => rest.get(16..24)?.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
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
        4 => Protocol::AccessLog,
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
        Protocol::AccessLog => 4,
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
