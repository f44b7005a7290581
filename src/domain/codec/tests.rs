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
    assert_eq!(decode_hit(&[1, 5]), Err(CodecError::InvalidTag(5)));
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
        prop_assert_eq!(peek_visitor_key(&bytes), Some(hit.visitor_key.as_u64()));
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
