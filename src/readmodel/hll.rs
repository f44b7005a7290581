//! HyperLogLog sketches of visitor keys, built here in the `hll` extension's storage format
//! (schema version 1), so that a batch sends each rollup row's sketch rather than its visitor keys
//! for the database to hash and aggregate. A sketch built here is the one `hll_add_agg` would
//! build from the same keys with [`super::schema::HLL_PARAMS`]: the same bytes up to
//! [`EXPLICIT_MAX`] distinct keys (an explicit set of hashes), the same registers beyond (written
//! as a full sketch where the extension might choose its sparse encoding of them). The tests in
//! `tests/api/readmodel.rs` hold both against the extension.

/// `log2m` of [`super::schema::HLL_PARAMS`]: 2^14 registers.
const LOG2M: u32 = 14;
/// `regwidth`: 5 bits per register.
const REGWIDTH: u32 = 5;
/// Version 1 in the top nibble; the type in the bottom one.
const EMPTY: u8 = 0x11;
const EXPLICIT: u8 = 0x12;
const FULL: u8 = 0x14;
/// The parameter byte: `regwidth - 1` in the top 3 bits, `log2m` in the bottom 5.
const PARAMETERS: u8 = (((REGWIDTH - 1) << 5) | LOG2M) as u8;
/// The cutoff byte: sparse enabled (bit 6), explicit cutoff 63 ("auto", `expthresh` -1).
const CUTOFF: u8 = 0x40 | 63;
/// With `expthresh` -1 the extension keeps a set explicit while its hashes take no more room than
/// the full sketch: (2^14 × 5 bits) / 64 bits.
pub const EXPLICIT_MAX: usize = (1 << LOG2M) * REGWIDTH as usize / 64;

/// The sketch of these keys, as `hll_add_agg(hll_hash_bigint(key), 14, 5, -1, 1)` builds it
/// (`hll_empty(14, 5, -1, 1)` for none).
pub fn sketch(keys: &[i64]) -> Vec<u8> {
    let mut hashes: Vec<i64> = keys.iter().map(|k| hash(*k)).collect();
    hashes.sort_unstable();
    hashes.dedup();
    let mut out = vec![EMPTY, PARAMETERS, CUTOFF];
    if hashes.is_empty() {
        return out;
    }
    if hashes.len() <= EXPLICIT_MAX {
        out[0] = EXPLICIT;
        for h in hashes {
            out.extend_from_slice(&h.to_be_bytes());
        }
        return out;
    }
    out[0] = FULL;
    let mut registers = vec![0u8; 1 << LOG2M];
    let max = (1u8 << REGWIDTH) - 1;
    for h in hashes {
        let h = h as u64;
        let index = (h & ((1 << LOG2M) - 1)) as usize;
        let rest = h >> LOG2M;
        let rank = if rest == 0 {
            0
        } else {
            (rest.trailing_zeros() + 1).min(u32::from(max)) as u8
        };
        registers[index] = registers[index].max(rank);
    }
    // Register values packed big-endian, REGWIDTH bits each, from the top bit of the first byte.
    let mut packed = vec![0u8; ((1 << LOG2M) * REGWIDTH as usize).div_ceil(8)];
    for (i, r) in registers.iter().enumerate() {
        for b in 0..REGWIDTH as usize {
            if r >> (REGWIDTH as usize - 1 - b) & 1 == 1 {
                let bit = i * REGWIDTH as usize + b;
                packed[bit / 8] |= 0x80 >> (bit % 8);
            }
        }
    }
    out.extend_from_slice(&packed);
    out
}

/// `hll_hash_bigint(key)`: the first 64 bits of MurmurHash3 x64-128 (seed 0) of the key's eight
/// bytes in the database's (little-endian) order.
pub fn hash(key: i64) -> i64 {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let len = 8u64;
    let (mut h1, mut h2) = (0u64, 0u64);
    // Eight bytes are all tail: only its first word is used.
    let k1 = (key as u64)
        .wrapping_mul(C1)
        .rotate_left(31)
        .wrapping_mul(C2);
    h1 ^= k1;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h1 as i64
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_sketch_is_the_extensions_header() {
        // hll_empty(14, 5, -1, 1)::bytea
        assert_eq!(sketch(&[]), [0x11, 0x8e, 0x7f]);
        assert_eq!(EXPLICIT_MAX, 1280);
    }

    #[test]
    fn small_sets_are_explicit_sorted_and_deduplicated() {
        let s = sketch(&[3, 1, 3, 2]);
        assert_eq!(s[0], EXPLICIT);
        assert_eq!(s.len(), 3 + 3 * 8);
        let hashes: Vec<i64> = s[3..]
            .chunks(8)
            .map(|c| i64::from_be_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let mut expected = vec![hash(1), hash(2), hash(3)];
        expected.sort_unstable();
        assert_eq!(hashes, expected);
    }

    #[test]
    fn large_sets_are_full_sketches_of_packed_registers() {
        let keys: Vec<i64> = (0..5_000).collect();
        let s = sketch(&keys);
        assert_eq!(s[0], FULL);
        assert_eq!(s.len(), 3 + 10_240);
        assert!(s[3..].iter().any(|b| *b != 0));
    }
}
