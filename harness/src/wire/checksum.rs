//! Checksums shared by the codecs.

/// RFC 1071 Internet checksum (ones' complement of the ones' complement sum of
/// 16-bit big-endian words, an odd trailing byte padded with zero) over `data`.
///
/// A buffer that already contains a correct checksum sums to zero.
pub fn internet(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sums_as_the_rfc_says() {
        // RFC 1071 section 3 worked example: the words 0001 f203 f4f5 f6f7 sum
        // (with end-around carry) to 0xddf2, whose complement is 0x220d.
        assert_eq!(
            internet(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(
            internet(&[0x12, 0x34, 0x56]),
            internet(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn buffer_with_its_checksum_sums_to_zero() {
        let mut data = vec![0x45, 0x00, 0x00, 0x1c, 0xab, 0xcd, 0x00, 0x00];
        let c = internet(&data);
        data.extend_from_slice(&c.to_be_bytes());
        assert_eq!(internet(&data), 0);
    }
}
