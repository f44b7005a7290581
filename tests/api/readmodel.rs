//! The read model's sketches, built by footfall, against the `hll` extension that reads them.

use footfall::readmodel::hll::{hash, sketch, EXPLICIT_MAX};
use footfall::readmodel::schema::HLL_PARAMS;

use crate::helpers::fresh_log;

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
