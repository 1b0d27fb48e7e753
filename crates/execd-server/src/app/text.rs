//! Buffered output to text: UTF-8 as is; otherwise the encoding is guessed
//! (chardetng) and decoded (encoding_rs), falling back to lossy UTF-8.

use encoding_rs::{Encoding, IBM866, WINDOWS_1252};

/// Windows-1252 "smart punctuation" bytes that IBM866 reads as Cyrillic capitals.
const SMART_PUNCTUATION: [u8; 8] = [0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x99];

/// Turns captured output bytes into a string the way the reference does.
pub fn decode(bytes: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_owned();
    }
    let (text, _, had_errors) = guess(bytes).decode(bytes);
    if had_errors {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        text.into_owned()
    }
}

fn guess(bytes: &[u8]) -> &'static Encoding {
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    let (encoding, _) = detector.guess_assess(None, true);
    if encoding == IBM866 && is_quoted_ascii(bytes) {
        WINDOWS_1252
    } else {
        encoding
    }
}

/// ASCII text with Windows-1252 quotes or dashes (and no other non-ASCII bytes),
/// which the detector tends to take for IBM866.
fn is_quoted_ascii(bytes: &[u8]) -> bool {
    let mut punctuation = false;
    let mut letters = false;
    for &b in bytes {
        match b {
            0x00..=0x7f => letters |= b.is_ascii_alphabetic(),
            _ if SMART_PUNCTUATION.contains(&b) => punctuation = true,
            _ => return false,
        }
    }
    punctuation && letters
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_like_the_reference() {
        // Observed from the reference binary.
        assert_eq!(decode(b"out\n"), "out\n");
        assert_eq!(decode(b"a\xff\xfeb"), "aÿþb");
        assert_eq!(decode(b"\xff\xef"), "ЪО");
        assert_eq!(decode(b"\xc3\xa9\xc3"), "ĂŠĂ");
        assert_eq!(decode(b"caf\xe9 \x93quoted\x94"), "café “quoted”");
        assert_eq!(decode(b"\x92\x93\x94"), "ТУФ");
        assert_eq!(decode(b"\x80\x81"), "АБ");
        assert_eq!(decode(&[0u8; 10]), "\0".repeat(10));
    }
}
