//! Native state that lives across op calls: streaming text decoders (every WHATWG encoding, by
//! encoding_rs), compression streams (gzip, deflate, deflate-raw, by flate2) and the hashes of
//! `crypto.DigestStream` (RustCrypto's, as `crypto.subtle.digest` uses: see [`hasher`]).
//!
//! A JS `TextDecoder`, `CompressionStream` or `DigestStream` holds only the number of its codec
//! here. Codecs are
//! bounded per isolate ([`MAX_OPEN`]) and end when their stream finishes, fails or is cancelled;
//! with context reset, a request's codecs also end with the request (its JS objects are gone).
//! Every call works on a bounded slice of input (the JS side cuts larger chunks), so the CPU
//! limit can step in between calls and a decompression bomb never builds a buffer larger than
//! [`INFLATE_SLICE`] times deflate's best ratio outside the isolate's counted memory.

use std::collections::HashMap;
use std::io::Write;

use flate2::Compression;
use flate2::write::{
    DeflateDecoder, DeflateEncoder, GzDecoder, GzEncoder, ZlibDecoder, ZlibEncoder,
};

/// Codecs one isolate may have open at once.
pub(crate) const MAX_OPEN: usize = 64;
/// The most compressed input one call inflates (deflate expands at most ~1032x: ~4 MiB out).
pub(crate) const INFLATE_SLICE: usize = 4 * 1024;

pub(crate) enum Codec {
    Text {
        decoder: encoding_rs::Decoder,
        fatal: bool,
    },
    Gzip(GzEncoder<Vec<u8>>),
    Deflate(ZlibEncoder<Vec<u8>>),
    DeflateRaw(DeflateEncoder<Vec<u8>>),
    Gunzip(GzDecoder<Vec<u8>>),
    Inflate(ZlibDecoder<Vec<u8>>),
    InflateRaw(DeflateDecoder<Vec<u8>>),
    Digest(Box<dyn sha2::digest::DynDigest>),
}

/// Why a codec call failed; the op throws it as a TypeError.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error(
        "too many open TextDecoder, compression and digest streams in this isolate (at most \
         {MAX_OPEN}); finish, cancel or drop some first"
    )]
    TooMany,
    #[error("the stream was already closed")]
    Closed,
    #[error("the input is not valid {0}")]
    Invalid(&'static str),
    #[error("the {format} data is corrupt or incomplete ({reason})")]
    Corrupt {
        format: &'static str,
        reason: String,
    },
    #[error("a decompressor takes at most {INFLATE_SLICE} bytes a call, not {0}")]
    SliceTooLarge(usize),
}

/// The codecs of one isolate (kept in its worker state).
#[derive(Default)]
pub(crate) struct Codecs {
    next: u32,
    /// Codec by number, with the request that owns it (with context reset).
    open: HashMap<u32, (Option<u64>, Codec)>,
}

impl Codecs {
    pub fn open(&mut self, owner: Option<u64>, codec: Codec) -> Result<u32, CodecError> {
        if self.open.len() >= MAX_OPEN {
            return Err(CodecError::TooMany);
        }
        self.next = self.next.wrapping_add(1).max(1);
        self.open.insert(self.next, (owner, codec));
        Ok(self.next)
    }

    pub fn get(&mut self, id: u32) -> Result<&mut Codec, CodecError> {
        self.open
            .get_mut(&id)
            .map(|(_, codec)| codec)
            .ok_or(CodecError::Closed)
    }

    /// Runs `work` on codec `id`; the codec ends when `work` fails or when `ends` says so.
    pub fn call<T>(
        &mut self,
        id: u32,
        ends: bool,
        work: impl FnOnce(&mut Codec) -> Result<T, CodecError>,
    ) -> Result<T, CodecError> {
        let result = self.get(id).and_then(work);
        if ends || result.is_err() {
            self.close(id);
        }
        result
    }

    pub fn close(&mut self, id: u32) -> Option<Codec> {
        self.open.remove(&id).map(|(_, codec)| codec)
    }

    /// Ends the codecs a finished request opened.
    pub fn close_request(&mut self, request: u64) {
        self.open.retain(|_, (owner, _)| *owner != Some(request));
    }
}

/// The WHATWG name of the encoding `label` names, as `TextDecoder.encoding` reports it; `None`
/// for an unknown label and for the "replacement" encoding, which TextDecoder refuses.
pub(crate) fn encoding_name(label: &str) -> Option<String> {
    let encoding = encoding_rs::Encoding::for_label(label.trim().as_bytes())?;
    (encoding != encoding_rs::REPLACEMENT).then(|| encoding.name().to_ascii_lowercase())
}

/// A streaming decoder for the encoding `name`; `ignore_bom` keeps a leading byte order mark.
pub(crate) fn text_decoder(name: &str, fatal: bool, ignore_bom: bool) -> Option<Codec> {
    let encoding = encoding_rs::Encoding::for_label(name.as_bytes())?;
    let decoder = if ignore_bom {
        encoding.new_decoder_without_bom_handling()
    } else {
        encoding.new_decoder_with_bom_removal()
    };
    Some(Codec::Text { decoder, fatal })
}

/// A compressor (`decompress` false) or decompressor for a CompressionStream format.
pub(crate) fn compression(format: &str, decompress: bool) -> Option<Codec> {
    let level = Compression::default();
    Some(match (format, decompress) {
        ("gzip", false) => Codec::Gzip(GzEncoder::new(Vec::new(), level)),
        ("deflate", false) => Codec::Deflate(ZlibEncoder::new(Vec::new(), level)),
        ("deflate-raw", false) => Codec::DeflateRaw(DeflateEncoder::new(Vec::new(), level)),
        ("gzip", true) => Codec::Gunzip(GzDecoder::new(Vec::new())),
        ("deflate", true) => Codec::Inflate(ZlibDecoder::new(Vec::new())),
        ("deflate-raw", true) => Codec::InflateRaw(DeflateDecoder::new(Vec::new())),
        _ => return None,
    })
}

/// A running hash by its Web Crypto name (upper case: SHA-1, SHA-256, SHA-384, SHA-512, and
/// MD5 as on workerd), for `crypto.subtle.digest` and DigestStream alike.
pub(crate) fn hasher(name: &str) -> Option<Box<dyn sha2::digest::DynDigest>> {
    Some(match name {
        "MD5" => Box::new(md5::Md5::default()),
        "SHA-1" => Box::new(sha1::Sha1::default()),
        "SHA-256" => Box::new(sha2::Sha256::default()),
        "SHA-384" => Box::new(sha2::Sha384::default()),
        "SHA-512" => Box::new(sha2::Sha512::default()),
        _ => return None,
    })
}

/// The running hash of a DigestStream (see [`hasher`]).
pub(crate) fn digest(name: &str) -> Option<Codec> {
    hasher(name).map(Codec::Digest)
}

impl Codec {
    /// Decodes `bytes`; `last` ends the stream (a trailing incomplete sequence is then an error
    /// or a replacement character).
    pub fn decode(&mut self, bytes: &[u8], last: bool) -> Result<String, CodecError> {
        let Codec::Text { decoder, fatal } = self else {
            return Err(CodecError::Closed);
        };
        let capacity = decoder
            .max_utf8_buffer_length(bytes.len())
            .unwrap_or(bytes.len().saturating_mul(3));
        let mut out = String::with_capacity(capacity);
        if *fatal {
            let (result, _) = decoder.decode_to_string_without_replacement(bytes, &mut out, last);
            if let encoding_rs::DecoderResult::Malformed(_, _) = result {
                return Err(CodecError::Invalid(decoder.encoding().name()));
            }
        } else {
            let _ = decoder.decode_to_string(bytes, &mut out, last);
        }
        Ok(out)
    }

    /// Feeds `bytes` through a compressor or decompressor and returns what came out (a hash
    /// takes them in and gives nothing back until it finishes).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        fn step<W: Write>(
            writer: &mut W,
            out: impl FnOnce(&mut W) -> &mut Vec<u8>,
            bytes: &[u8],
            format: &'static str,
        ) -> Result<Vec<u8>, CodecError> {
            writer.write_all(bytes).map_err(|err| CodecError::Corrupt {
                format,
                reason: err.to_string(),
            })?;
            Ok(std::mem::take(out(writer)))
        }
        let inflating = matches!(
            self,
            Codec::Gunzip(_) | Codec::Inflate(_) | Codec::InflateRaw(_)
        );
        if inflating && bytes.len() > INFLATE_SLICE {
            return Err(CodecError::SliceTooLarge(bytes.len()));
        }
        match self {
            Codec::Gzip(w) => step(w, |w| w.get_mut(), bytes, "gzip"),
            Codec::Deflate(w) => step(w, |w| w.get_mut(), bytes, "deflate"),
            Codec::DeflateRaw(w) => step(w, |w| w.get_mut(), bytes, "deflate-raw"),
            Codec::Gunzip(w) => step(w, |w| w.get_mut(), bytes, "gzip"),
            Codec::Inflate(w) => step(w, |w| w.get_mut(), bytes, "deflate"),
            Codec::InflateRaw(w) => step(w, |w| w.get_mut(), bytes, "deflate-raw"),
            Codec::Digest(hash) => {
                hash.update(bytes);
                Ok(Vec::new())
            }
            Codec::Text { .. } => Err(CodecError::Closed),
        }
    }

    /// Ends a compression stream: the compressor's last bytes, or the check that the compressed
    /// input was complete; or a digest stream: its hash.
    pub fn finish(self) -> Result<Vec<u8>, CodecError> {
        let corrupt = |format| {
            move |err: std::io::Error| CodecError::Corrupt {
                format,
                reason: err.to_string(),
            }
        };
        match self {
            Codec::Gzip(w) => w.finish().map_err(corrupt("gzip")),
            Codec::Deflate(w) => w.finish().map_err(corrupt("deflate")),
            Codec::DeflateRaw(w) => w.finish().map_err(corrupt("deflate-raw")),
            // A decompressor fails here when the stream was cut short.
            Codec::Gunzip(w) => w.finish().map_err(corrupt("gzip")),
            Codec::Inflate(w) => w.finish().map_err(corrupt("deflate")),
            Codec::InflateRaw(w) => w.finish().map_err(corrupt("deflate-raw")),
            Codec::Digest(hash) => Ok(hash.finalize().into_vec()),
            Codec::Text { .. } => Err(CodecError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A digest fed in pieces is the digest of the whole (MD5's is RFC 1321's "abc" example);
    /// an unknown hash is no codec.
    #[test]
    fn a_digest_codec_hashes_what_it_is_fed_in_pieces() {
        let mut hash = digest("SHA-256").unwrap();
        assert!(hash.push(b"hello ").unwrap().is_empty());
        assert!(hash.push(b"world").unwrap().is_empty());
        let whole = ring::digest::digest(&ring::digest::SHA256, b"hello world");
        assert_eq!(hash.finish().unwrap(), whole.as_ref());
        let mut md5 = digest("MD5").unwrap();
        md5.push(b"a").unwrap();
        md5.push(b"bc").unwrap();
        assert_eq!(
            md5.finish().unwrap(),
            [
                0x90, 0x01, 0x50, 0x98, 0x3c, 0xd2, 0x4f, 0xb0, 0xd6, 0x96, 0x3f, 0x7d, 0x28, 0xe1,
                0x7f, 0x72
            ]
        );
        assert!(digest("SHA-3").is_none());
    }

    fn round_trip(format: &str, text: &[u8]) -> Vec<u8> {
        let mut compressor = compression(format, false).unwrap();
        let mut packed = compressor.push(text).unwrap();
        packed.extend(compressor.finish().unwrap());
        let mut decompressor = compression(format, true).unwrap();
        let mut out = Vec::new();
        for slice in packed.chunks(7) {
            out.extend(decompressor.push(slice).unwrap());
        }
        out.extend(decompressor.finish().unwrap());
        out
    }

    #[test]
    fn every_format_round_trips() {
        let text = b"hello hello hello hello ".repeat(50);
        for format in ["gzip", "deflate", "deflate-raw"] {
            assert_eq!(round_trip(format, &text), text, "{format}");
        }
        assert!(compression("brotli", false).is_none());
    }

    #[test]
    fn corrupt_compressed_input_is_an_error() {
        let mut decompressor = compression("gzip", true).unwrap();
        let pushed = decompressor.push(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert!(pushed.is_err() || decompressor.finish().is_err());
    }

    #[test]
    fn truncated_compressed_input_is_an_error() {
        let text = b"hello hello hello hello ".repeat(50);
        for format in ["gzip", "deflate", "deflate-raw"] {
            let mut compressor = compression(format, false).unwrap();
            let mut packed = compressor.push(&text).unwrap();
            packed.extend(compressor.finish().unwrap());
            let mut decompressor = compression(format, true).unwrap();
            let pushed = decompressor.push(&packed[..packed.len() / 2]);
            assert!(
                pushed.is_err() || decompressor.finish().is_err(),
                "{format}: a stream cut in half must not pass as complete"
            );
        }
    }

    #[test]
    fn labels_name_their_whatwg_encoding() {
        for (label, name) in [
            ("  UTF8 ", Some("utf-8")),
            ("latin1", Some("windows-1252")),
            ("ascii", Some("windows-1252")),
            ("utf-16", Some("utf-16le")),
            ("Shift_JIS", Some("shift_jis")),
            ("iso-2022-kr", None),
            ("no-such-encoding", None),
        ] {
            assert_eq!(encoding_name(label).as_deref(), name, "{label}");
        }
    }

    #[test]
    fn a_split_sequence_waits_for_its_rest() {
        let mut decoder = text_decoder("utf-8", false, false).unwrap();
        assert_eq!(decoder.decode(&[0xe2], false).unwrap(), "");
        assert_eq!(decoder.decode(&[0x82, 0xac], false).unwrap(), "€");
        assert_eq!(decoder.decode(&[0xe2], true).unwrap(), "\u{fffd}");
        let mut fatal = text_decoder("utf-8", true, false).unwrap();
        assert!(fatal.decode(&[0xff], true).is_err());
    }

    #[test]
    fn the_open_codecs_are_bounded_and_end_with_their_request() {
        let mut codecs = Codecs::default();
        for _ in 0..MAX_OPEN {
            codecs
                .open(Some(7), compression("gzip", false).unwrap())
                .unwrap();
        }
        assert!(matches!(
            codecs.open(None, compression("gzip", false).unwrap()),
            Err(CodecError::TooMany)
        ));
        codecs.close_request(7);
        assert!(
            codecs
                .open(None, compression("gzip", false).unwrap())
                .is_ok()
        );
    }
}
