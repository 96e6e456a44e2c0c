//! Masking (RFC 6455 §5.3): XOR of the payload with a repeating four-byte key.
//!
//! The fast path works a machine word at a time on `u64`s built from eight-byte chunks, which the
//! compiler turns into SIMD loads and stores; it is safe code. [`apply_mask_bytewise`] is the
//! obvious loop it must always agree with (a property test checks every length and alignment).

/// XOR `buf` with `key`, as the first bytes of a payload.
///
/// Masking is an involution: applying the same key twice restores the input.
///
/// ```
/// let mut data = *b"Hello";
/// berth::ws::apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d]);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]); // RFC 6455 §5.7
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    apply_mask_at(buf, key, 0);
}

/// XOR `buf` with `key`, where `buf` starts `offset` bytes into the payload (for unmasking a
/// payload that arrives in pieces).
#[inline]
pub fn apply_mask_at(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // The tail is under eight bytes and starts at a multiple of eight, so the key phase is 0.
    for (b, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *b ^= k;
    }
}

/// The reference implementation: one byte at a time.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (b, k) in buf.iter_mut().zip(rotate(key, offset).iter().cycle()) {
        *b ^= k;
    }
}

/// The key as seen by a buffer that starts `offset` bytes into the payload.
#[inline]
fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut k = key;
    k.rotate_left(offset % 4);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_equals_bytewise_for_every_length_offset_and_alignment() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let source: Vec<u8> = (0..200u16).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..8 {
            for len in 0..(source.len() - start) {
                for offset in 0..4 {
                    let mut fast = source.clone();
                    let mut slow = source.clone();
                    apply_mask_at(&mut fast[start..start + len], key, offset);
                    apply_mask_bytewise(&mut slow[start..start + len], key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_whole() {
        let key = [1, 2, 3, 4];
        let whole: Vec<u8> = (0..100).collect();
        let mut expected = whole.clone();
        apply_mask(&mut expected, key);
        for split in 0..whole.len() {
            let mut pieces = whole.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask_at(a, key, 0);
            apply_mask_at(b, key, split);
            assert_eq!(pieces, expected, "split {split}");
        }
    }
}
