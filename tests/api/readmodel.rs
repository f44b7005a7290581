//! The read model's sketches, built by footfall, against the `hll` extension that reads them; and
//! the values footfall encodes itself for `COPY`, against the server's own parsing of them.

use footfall::domain::Revenue;
use footfall::readmodel::hll::{hash, sketch, EXPLICIT_MAX};
use footfall::readmodel::schema::HLL_PARAMS;

use crate::helpers::{fresh_log, hit_event, spawn_app, Seed};

/// Keys with an even spread of bits, negative ones and the extremes included.
fn keys(n: usize, seed: u64) -> Vec<i64> {
    let mut state = seed;
    let mut out: Vec<i64> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state as i64
        })
        .collect();
    out.extend([0, 1, -1, i64::MIN, i64::MAX].into_iter().take(n.min(5)));
    out
}

fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("\\x{digits}")
}

#[actix_web::test]
async fn sketches_built_here_are_the_ones_the_extension_builds() {
    let (_, pool) = fresh_log().await;
    let probe = keys(1_000, 7);
    let hashed: Vec<i64> = sqlx::query_scalar("SELECT hll_hash_bigint(k)::text::bigint FROM unnest($1::bigint[]) WITH ORDINALITY AS u(k, i) ORDER BY i")
        .bind(&probe)
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(hashed, probe.iter().map(|k| hash(*k)).collect::<Vec<_>>());

    let agg = format!(
        "SELECT hll_add_agg(hll_hash_bigint(k), {HLL_PARAMS})::text FROM unnest($1::bigint[]) AS k"
    );
    let empty: String = sqlx::query_scalar(&format!("SELECT hll_empty({HLL_PARAMS})::text"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(hex(&sketch(&[])), empty);
    // Explicit sets: the same bytes, up to the extension's limit (duplicates included).
    for n in [1, 2, 17, 500, EXPLICIT_MAX - 5] {
        let mut ks = keys(n, n as u64);
        ks.extend(ks.clone().into_iter().take(3));
        let theirs: String = sqlx::query_scalar(&agg)
            .bind(&ks)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(hex(&sketch(&ks)), theirs, "{n} keys");
    }
    // Beyond it, the same registers: the same estimate alone and united with theirs.
    for n in [EXPLICIT_MAX + 1, 5_000, 200_000] {
        let ks = keys(n, 3);
        let (ours, theirs, union): (f64, f64, f64) = sqlx::query_as(&format!(
            "WITH t AS (SELECT hll_add_agg(hll_hash_bigint(k), {HLL_PARAMS}) AS s FROM unnest($1::bigint[]) AS k) \
             SELECT hll_cardinality($2::bytea::hll), hll_cardinality(s), hll_cardinality(hll_union(s, $2::bytea::hll)) FROM t"
        ))
        .bind(&ks)
        .bind(sketch(&ks))
        .fetch_one(&pool)
        .await
        .unwrap();
        eprintln!("{n} keys: estimate {ours:.1} (extension {theirs:.1}, union {union:.1})");
        assert_eq!((ours, union), (theirs, theirs), "{n} keys");
        assert!(
            (ours - n as f64).abs() / (n as f64) < 0.05,
            "{n} keys, estimated {ours}"
        );
    }
}

/// The projection writes `hits` with `COPY` in binary, encoding each revenue amount as a
/// `numeric` itself: every amount reads back as the server's own `numeric` of it. The log's events
/// may hold amounts of any shape `numeric` reads (an exponent, a trailing point), not only those
/// collection admits today; one it cannot read is parked, and the others are applied.
#[actix_web::test]
async fn revenue_amounts_reach_the_read_model_as_the_server_reads_them() {
    let app = spawn_app().await;
    let property = app.register("shop.example", "Europe/Paris").await;
    let amounts = [
        "12.50",
        "-12.50",
        "0",
        "-0",
        "1.",
        ".5",
        "10000",
        "123456789",
        "0.000001",
        "-0.000100",
        "999999999999999.999999",
        "1.5e3",
        "15E-4",
        "+7",
    ];
    let hits = amounts
        .iter()
        .chain(&["12,50"])
        .enumerate()
        .map(|(i, amount)| {
            let mut hit = hit_event(
                &property,
                &Seed {
                    visitor: i as u64 + 1,
                    at: "2026-11-02T10:00:00Z",
                    name: "purchase",
                    url: "https://shop.example/checkout",
                    props: &[],
                },
            );
            hit.revenue = Some(Revenue {
                currency: "EUR".into(),
                amount: (*amount).into(),
            });
            hit
        })
        .collect();
    app.seed(hits).await;
    app.wait_projected().await;
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT revenue_amount::text, revenue_currency FROM hits ORDER BY position")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let theirs: Vec<String> = sqlx::query_scalar(
        "SELECT a::numeric::text FROM unnest($1::text[]) WITH ORDINALITY AS u(a, i) ORDER BY i",
    )
    .bind(&amounts[..])
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_parked")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!((stored.len(), parked), (amounts.len(), 1));
    for ((amount, currency), (want, given)) in stored.iter().zip(theirs.iter().zip(amounts)) {
        assert_eq!((amount, currency.as_str()), (want, "EUR"), "{given}");
    }
}
