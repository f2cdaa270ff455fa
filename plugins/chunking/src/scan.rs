//! Word-at-a-time byte scanning: eight bytes per step through a `u64`, for the loops that look
//! for rare bytes in long text (URL and e-mail starts, whitespace worth collapsing, the first
//! non-ASCII byte).
//!
//! Why it matters: inside the sandbox every loop iteration pays for fuel metering and the epoch
//! check, so a byte-per-iteration scan costs several times its native time. Testing eight
//! bytes per iteration (wasm has 64-bit integers) divides that overhead by eight, natively too.
//! Every mask here is exact: a byte's high bit is set in the result if and only if that byte
//! matches, so the lowest set bit names the first match.

/// One in every byte.
const LO: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte.
const HI: u64 = 0x8080_8080_8080_8080;

/// Bytes of `w` equal to `b`.
#[inline(always)]
pub(crate) fn eq(w: u64, b: u8) -> u64 {
    let t = w ^ (LO * u64::from(b));
    // A byte of `t` is non-zero iff its low seven bits plus 0x7f carry into the high bit or its
    // high bit is already set; 0x7f + 0x7f < 0x100, so no carry crosses into the next byte.
    !(((t & !HI).wrapping_add(!HI)) | t) & HI
}

/// Bytes of `w` equal to the lowercase ASCII letter `b` in either case (`x | 0x20 == b` holds
/// only for `b` and its uppercase form).
#[inline(always)]
pub(crate) fn eq_ignore_case(w: u64, b: u8) -> u64 {
    eq(w | (LO * 0x20), b)
}

/// ASCII bytes of `w` in `lo..=hi` (both below 0x80).
#[inline(always)]
pub(crate) fn in_ascii_range(w: u64, lo: u8, hi: u8) -> u64 {
    let x = w & !HI;
    // (0x80 + x) - lo keeps the high bit iff x >= lo; (0x80 + hi) - x keeps it iff x <= hi.
    // Neither can borrow across bytes, because every operand byte stays within 0..=0xff.
    let ge = (x | HI).wrapping_sub(LO * u64::from(lo));
    let le = ((LO * u64::from(hi)) | HI).wrapping_sub(x);
    ge & le & !w & HI
}

/// Bytes of `w` that are ASCII whitespace (`char::is_whitespace` on ASCII: space, `\t`..`\r`).
#[inline(always)]
pub(crate) fn ascii_space(w: u64) -> u64 {
    eq(w, b' ') | in_ascii_range(w, b'\t', b'\r')
}

/// Bytes of `w` that are not ASCII.
#[inline(always)]
pub(crate) fn non_ascii(w: u64) -> u64 {
    w & HI
}

/// The high bits of `mask`'s bytes as one byte: bit `k` is byte `k`'s (the multiplication
/// moves each high bit to its place in the top byte, and no two of them meet, so nothing
/// carries).
#[inline(always)]
pub(crate) fn gather(mask: u64) -> u8 {
    ((mask & HI) >> 7)
        .wrapping_mul(0x0102_0408_1020_4080)
        .to_be_bytes()[0]
}

/// The eight bytes at `at` as a little-endian word (byte `at + k` in bits `8k..8k+8`), or
/// `None` when fewer than eight remain.
#[inline(always)]
pub(crate) fn word(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// The number of chars in UTF-8 `bytes`: the bytes that are not continuation bytes
/// (`0b10xx_xxxx`), counted eight at a time.
pub(crate) fn char_count(bytes: &[u8]) -> usize {
    let mut continuation = 0;
    let mut at = 0;
    while let Some(w) = word(bytes, at) {
        // High bit set and the next bit clear: shifting left by one puts each byte's bit 6 in
        // its own bit 7 position (the bit carried over from the byte below lands in bit 0).
        continuation += (w & !(w << 1) & HI).count_ones() as usize;
        at += 8;
    }
    continuation += bytes[at..].iter().filter(|&&b| b & 0xc0 == 0x80).count();
    bytes.len() - continuation
}

/// The first position at or after `from` whose byte matches `mask`, which answers for eight
/// bytes at a time (exactly, as the functions above do). The last few bytes go through the
/// same mask in a zero-padded word, so callers state the test once.
#[inline(always)]
pub(crate) fn find(bytes: &[u8], from: usize, mask: impl Fn(u64) -> u64) -> Option<usize> {
    let mut at = from;
    // Sixteen bytes per iteration while they last, then eight: fewer loop iterations is what
    // counts in the sandbox.
    while let (Some(a), Some(b)) = (word(bytes, at), word(bytes, at + 8)) {
        let (ma, mb) = (mask(a), mask(b));
        if ma | mb != 0 {
            let (m, base) = if ma != 0 { (ma, at) } else { (mb, at + 8) };
            return Some(base + (m.trailing_zeros() / 8) as usize);
        }
        at += 16;
    }
    while let Some(w) = word(bytes, at) {
        let m = mask(w);
        if m != 0 {
            return Some(at + (m.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = bytes.get(at..).filter(|t| !t.is_empty())?;
    let mut padded = [0u8; 8];
    padded[..tail.len()].copy_from_slice(tail);
    // Only the tail's own bytes count: the padding may match too (a NUL is a control byte).
    let m = mask(u64::from_le_bytes(padded)) & (u64::MAX >> (64 - 8 * tail.len()));
    (m != 0).then(|| at + (m.trailing_zeros() / 8) as usize)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn bytes_of(mask: u64) -> Vec<bool> {
        (0..8).map(|k| mask >> (8 * k + 7) & 1 == 1).collect()
    }

    proptest! {
        #[test]
        fn masks_are_exact(w in any::<u64>(), b in any::<u8>(), lo in 0u8..0x80, span in 0u8..0x20) {
            let hi = lo.saturating_add(span).min(0x7f);
            let each = w.to_le_bytes();
            prop_assert_eq!(bytes_of(eq(w, b)), each.iter().map(|&x| x == b).collect::<Vec<_>>());
            prop_assert_eq!(
                bytes_of(in_ascii_range(w, lo, hi)),
                each.iter().map(|&x| (lo..=hi).contains(&x)).collect::<Vec<_>>()
            );
            prop_assert_eq!(
                bytes_of(ascii_space(w)),
                each.iter().map(|&x| x.is_ascii() && char::from(x).is_whitespace()).collect::<Vec<_>>()
            );
            prop_assert_eq!(
                bytes_of(eq_ignore_case(w, b'h')),
                each.iter().map(|&x| x == b'h' || x == b'H').collect::<Vec<_>>()
            );
            let gathered = gather(non_ascii(w));
            prop_assert_eq!((0..8).map(|k| gathered >> k & 1 == 1).collect::<Vec<_>>(), bytes_of(non_ascii(w)));
            prop_assert_eq!(bytes_of(non_ascii(w)), each.iter().map(|&x| x >= 0x80).collect::<Vec<_>>());
        }

        #[test]
        fn find_matches_a_byte_loop(bytes in prop::collection::vec(any::<u8>(), 0..64), from in 0usize..70, b in any::<u8>()) {
            let expected = bytes.iter().enumerate().skip(from).find(|&(_, &x)| x == b).map(|(i, _)| i);
            prop_assert_eq!(find(&bytes, from, |w| eq(w, b)), expected);
        }
    }

    proptest! {
        #[test]
        fn char_count_counts_chars(text in "\\PC{0,40}") {
            prop_assert_eq!(char_count(text.as_bytes()), text.chars().count());
        }
    }

    #[test]
    fn masks_on_edge_bytes() {
        let w = u64::from_le_bytes([0x00, 0x80, 0xff, b' ', b'\t', b'\r', 0x0e, 0x7f]);
        assert_eq!(
            bytes_of(eq(w, 0)),
            [true, false, false, false, false, false, false, false]
        );
        assert_eq!(
            bytes_of(eq(w, 0x80)),
            [false, true, false, false, false, false, false, false]
        );
        assert_eq!(
            bytes_of(ascii_space(w)),
            [false, false, false, true, true, true, false, false]
        );
        assert_eq!(
            bytes_of(non_ascii(w)),
            [false, true, true, false, false, false, false, false]
        );
    }
}
