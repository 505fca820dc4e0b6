//! Request bodies sent with a `Content-Encoding`: decoded for inspection only (the backend still
//! receives the bytes as sent). Without this, compressing an attack would carry it past every
//! body rule.

use std::borrow::Cow;
use std::io::Read;

/// Most codings one body may be wrapped in (`gzip, gzip` is two). Real clients use one.
const MAX_CODINGS: usize = 2;

/// Why a body could not be decoded for inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodingError {
    /// A coding this gateway does not decode, or more than [`MAX_CODINGS`] of them.
    Unsupported,
    /// The bytes are not valid data of the declared coding.
    Corrupt,
    /// Decoded, the body is larger than the limit.
    TooLarge,
}

/// The codings this gateway decodes, as the problem detail and README name them.
pub const DECODED_CODINGS: &str = "gzip, deflate, br and zstd";

/// `raw` with the codings of `content_encoding` (the header's values, comma-separated, in the
/// order they were applied) undone, and no larger than `limit` bytes. `identity` and an absent
/// header leave the body as it is, without a copy.
pub fn decode_body<'a>(
    content_encoding: Option<&str>,
    raw: &'a [u8],
    limit: usize,
) -> Result<Cow<'a, [u8]>, CodingError> {
    let codings: Vec<String> = content_encoding
        .unwrap_or("")
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    if codings.len() > MAX_CODINGS {
        return Err(CodingError::Unsupported);
    }
    let mut body = Cow::Borrowed(raw);
    for coding in codings.iter().rev() {
        body = Cow::Owned(decode_one(coding, &body, limit)?);
    }
    Ok(body)
}

fn decode_one(coding: &str, data: &[u8], limit: usize) -> Result<Vec<u8>, CodingError> {
    match coding {
        "gzip" | "x-gzip" => read_capped(flate2::read::MultiGzDecoder::new(data), data, limit),
        // RFC 9110 "deflate" is the zlib format; some clients send bare deflate data instead.
        "deflate" if is_zlib_header(data) => {
            read_capped(flate2::read::ZlibDecoder::new(data), data, limit)
        }
        "deflate" => read_capped(flate2::read::DeflateDecoder::new(data), data, limit),
        "br" => read_capped(brotli::Decompressor::new(data, 4096), data, limit),
        "zstd" => match zstd::stream::read::Decoder::new(data) {
            Ok(d) => read_capped(d, data, limit),
            Err(_) => Err(CodingError::Corrupt),
        },
        _ => Err(CodingError::Unsupported),
    }
}

/// A zlib stream starts with a header whose method is deflate and whose two bytes, read as a
/// big-endian number, are a multiple of 31 (RFC 1950).
fn is_zlib_header(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

/// Reads `r` to its end, stopping one byte past `limit` so that a small body that expands to
/// gigabytes costs no more than `limit` bytes of memory and the work to produce them.
fn read_capped(r: impl Read, data: &[u8], limit: usize) -> Result<Vec<u8>, CodingError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    match r.take(limit as u64 + 1).read_to_end(&mut out) {
        Ok(_) if out.len() > limit => Err(CodingError::TooLarge),
        Ok(_) => Ok(out),
        Err(_) => Err(CodingError::Corrupt),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;

    const TEXT: &[u8] = b"q=1 union select password from users--";

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn brotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).unwrap();
        }
        out
    }

    #[test]
    fn each_supported_coding_is_undone() {
        let zstd = zstd::encode_all(TEXT, 3).unwrap();
        for (coding, body) in [
            ("gzip", gzip(TEXT)),
            ("x-gzip", gzip(TEXT)),
            ("GZip", gzip(TEXT)),
            ("deflate", zlib(TEXT)),
            ("deflate", raw_deflate(TEXT)),
            ("br", brotli(TEXT)),
            ("zstd", zstd),
        ] {
            let got = decode_body(Some(coding), &body, 1024);
            assert_eq!(got.as_deref(), Ok(TEXT), "{coding}");
        }
    }

    #[test]
    fn no_coding_or_identity_borrows_the_body_unchanged() {
        for header in [None, Some(""), Some("identity"), Some(" Identity ")] {
            let got = decode_body(header, TEXT, 1024).unwrap();
            assert!(matches!(got, Cow::Borrowed(b) if b == TEXT), "{header:?}");
        }
    }

    #[test]
    fn stacked_codings_are_undone_last_applied_first() {
        let body = brotli(&gzip(TEXT));
        let got = decode_body(Some("gzip, br"), &body, 1024);
        assert_eq!(got.as_deref(), Ok(TEXT));
        // In the wrong order the outer layer is not gzip data.
        assert_eq!(
            decode_body(Some("br, gzip"), &body, 1024),
            Err(CodingError::Corrupt)
        );
        let three = gzip(&gzip(&gzip(TEXT)));
        assert_eq!(
            decode_body(Some("gzip, gzip, gzip"), &three, 1024),
            Err(CodingError::Unsupported)
        );
    }

    #[test]
    fn unknown_codings_and_broken_data_are_reported() {
        assert_eq!(
            decode_body(Some("snappy"), TEXT, 1024),
            Err(CodingError::Unsupported)
        );
        assert_eq!(
            decode_body(Some("compress"), TEXT, 1024),
            Err(CodingError::Unsupported)
        );
        for coding in ["gzip", "deflate", "br", "zstd"] {
            assert_eq!(
                decode_body(Some(coding), TEXT, 1024),
                Err(CodingError::Corrupt),
                "{coding}"
            );
        }
        // Cut short.
        let g = gzip(TEXT);
        assert_eq!(
            decode_body(Some("gzip"), &g[..g.len() / 2], 1024),
            Err(CodingError::Corrupt)
        );
    }

    #[test]
    fn a_body_that_expands_past_the_limit_stops_at_the_limit() {
        // 10 MB of zeros compress to about 10 KB.
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert_eq!(
            decode_body(Some("gzip"), &bomb, 64 << 10),
            Err(CodingError::TooLarge)
        );
        // Exactly at the limit is still inspected.
        let at = gzip(&[b'a'; 100]);
        assert_eq!(decode_body(Some("gzip"), &at, 100).unwrap().len(), 100);
        assert_eq!(
            decode_body(Some("gzip"), &at, 99),
            Err(CodingError::TooLarge)
        );
    }
}
