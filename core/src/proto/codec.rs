//! The frame codec: postcard encoding into reused buffers, strict decoding
//! of untrusted bytes, and the frame length check.
//!
//! Decoding never panics and never allocates much more than the input's
//! size: postcard checks every announced length against the bytes left,
//! and serde caps what it preallocates for sequences.

use super::error::ProtoError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value could not be encoded. The types of [`super`] always encode; this
/// reports a bug (such as a hand-written `Serialize` that does not give a
/// sequence's length), never bad input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode message: {reason}")]
pub struct EncodeError {
    /// What went wrong.
    pub reason: &'static str,
}

/// Bytes that are not the encoding of the expected message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside the message (also: an empty input).
    #[error("frame ends in the middle of the message")]
    Truncated,
    /// The message ended before the input did.
    #[error("{extra} unexpected bytes after the end of the message")]
    TrailingBytes {
        /// How many bytes were left over.
        extra: usize,
    },
    /// A value is invalid (an unknown enum variant, a string that is not
    /// UTF-8, an integer too large for its type...).
    #[error("invalid {what}")]
    Invalid {
        /// Which kind of value was invalid.
        what: &'static str,
    },
}

impl DecodeError {
    fn from_postcard(e: &postcard::Error) -> Self {
        use postcard::Error as E;
        let what = match e {
            E::DeserializeUnexpectedEnd => return Self::Truncated,
            E::DeserializeBadVarint => "integer (varint too long for its type)",
            E::DeserializeBadBool => "bool (neither 0 nor 1)",
            E::DeserializeBadChar => "char",
            E::DeserializeBadUtf8 => "string (not UTF-8)",
            E::DeserializeBadOption => "option tag (neither 0 nor 1)",
            E::DeserializeBadEnum => "enum tag (above u32::MAX)",
            E::SerdeDeCustom => "value (unknown enum variant or value out of range)",
            _ => "encoding",
        };
        Self::Invalid { what }
    }
}

impl From<DecodeError> for ProtoError {
    fn from(e: DecodeError) -> Self {
        Self::Malformed {
            reason: e.to_string(),
        }
    }
}

/// Appends the postcard encoding of `value` to `out`.
///
/// `out` is not cleared, so one buffer can be reused for many frames (and a
/// transport can reserve its length prefix before calling this). On error,
/// `out` is left as it was.
///
/// # Errors
/// Only for values whose `Serialize` postcard cannot represent; never for
/// the types of this module.
///
/// ```
/// use distlock_core::proto::{ClientFrame, PROTOCOL_VERSION, decode, encode};
///
/// let hello = ClientFrame::Hello { protocol_version: PROTOCOL_VERSION, cluster_id: None, auth: None };
/// let mut bytes = Vec::new();
/// encode(&hello, &mut bytes)?;
/// // The frame's first byte is its variant's position: `Hello` is 0.
/// assert_eq!(bytes[0], 0);
/// assert_eq!(decode::<ClientFrame>(&bytes)?, hello);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    postcard::serialize_with_flavor(value, AppendTo(out)).map_err(|e| {
        out.truncate(start);
        EncodeError {
            reason: match e {
                postcard::Error::SerializeSeqLengthUnknown => "a sequence without a known length",
                postcard::Error::CollectStrError => "a value's Display failed",
                postcard::Error::SerdeSerCustom => "the value's Serialize failed",
                _ => "postcard refused the value",
            },
        }
    })
}

/// Decodes one whole message from `frame`.
///
/// # Errors
/// When `frame` is empty, ends early, has bytes after the message, or holds
/// an invalid value. [`ProtoError::Malformed`] converts from the error.
pub fn decode<T: DeserializeOwned>(frame: &[u8]) -> Result<T, DecodeError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(frame).map_err(|e| DecodeError::from_postcard(&e))?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError::TrailingBytes { extra: rest.len() })
    }
}

/// Checks a frame length announced by a peer against the largest frame
/// accepted; call it before allocating or reading the frame.
///
/// # Errors
/// [`ProtoError::FrameTooLarge`] when `len > max`.
pub fn check_frame_len(len: usize, max: usize) -> Result<(), ProtoError> {
    if len <= max {
        Ok(())
    } else {
        Err(ProtoError::FrameTooLarge {
            len: u64::try_from(len).unwrap_or(u64::MAX),
            max: u64::try_from(max).unwrap_or(u64::MAX),
        })
    }
}

/// The `protocol_version` of a frame that starts like a `Hello` of any
/// protocol version ([`super::ClientFrame::Hello`] or
/// [`super::PeerFrame::Hello`]: variant 0, version first), without decoding
/// the rest.
///
/// A server whose [`decode`] of a first frame fails calls this to answer
/// [`ProtoError::UnsupportedVersion`] rather than
/// [`ProtoError::Malformed`] to a client of another version. `None` when
/// the frame does not start with variant 0 and a `u32`.
#[must_use]
pub fn peek_hello_version(frame: &[u8]) -> Option<u32> {
    let ((variant, version), _) = postcard::take_from_bytes::<(u32, u32)>(frame).ok()?;
    (variant == 0).then_some(version)
}

/// A postcard output that appends to a borrowed vector.
struct AppendTo<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::samples::{client_frames, peer_frames, server_frames};
    use super::super::{ClientFrame, MAX_FRAME_BYTES, PeerFrame, ServerFrame};
    use super::*;
    use serde::{Deserialize, Serializer};
    use std::fmt::Debug;

    fn encoded<T: Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        encode(value, &mut out).expect("protocol values encode");
        out
    }

    /// Every encoding of every sample frame, tagged with the type to decode
    /// it as.
    fn all_encodings() -> Vec<(Kind, Vec<u8>)> {
        let mut all = Vec::new();
        all.extend(client_frames().iter().map(|f| (Kind::Client, encoded(f))));
        all.extend(server_frames().iter().map(|f| (Kind::Server, encoded(f))));
        all.extend(peer_frames().iter().map(|f| (Kind::Peer, encoded(f))));
        all
    }

    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Client,
        Server,
        Peer,
    }

    /// Decodes `bytes` as every frame type; whatever decodes must encode and
    /// decode back to itself.
    fn decode_all_ways(bytes: &[u8]) {
        check_reencodes::<ClientFrame>(bytes);
        check_reencodes::<ServerFrame>(bytes);
        check_reencodes::<PeerFrame>(bytes);
        let _ = peek_hello_version(bytes);
    }

    fn check_reencodes<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
        if let Ok(value) = decode::<T>(bytes) {
            let again = encoded(&value);
            assert_eq!(decode::<T>(&again).as_ref(), Ok(&value), "from {bytes:?}");
        }
    }

    fn decode_as(kind: Kind, bytes: &[u8]) -> Result<(), DecodeError> {
        match kind {
            Kind::Client => decode::<ClientFrame>(bytes).map(drop),
            Kind::Server => decode::<ServerFrame>(bytes).map(drop),
            Kind::Peer => decode::<PeerFrame>(bytes).map(drop),
        }
    }

    #[test]
    fn encode_appends_to_the_buffer() {
        let mut out = vec![9, 9];
        encode(&7u32, &mut out).expect("encodes");
        encode(&300u32, &mut out).expect("encodes");
        assert_eq!(out, [9, 9, 7, 0xac, 0x02]);
    }

    #[test]
    fn failed_encode_leaves_the_buffer_as_it_was() {
        /// A sequence that does not announce its length.
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                let mut seq = s.serialize_seq(None)?;
                seq.serialize_element(&1u8)?;
                seq.end()
            }
        }
        let mut out = vec![1, 2, 3];
        let err = encode(&(5u8, Unsized), &mut out).expect_err("postcard needs lengths");
        assert_eq!(out, [1, 2, 3]);
        assert!(err.to_string().contains("sequence"), "{err}");
    }

    #[test]
    fn every_proper_prefix_is_truncated() {
        for (kind, bytes) in all_encodings() {
            for len in 0..bytes.len() {
                assert_eq!(
                    decode_as(kind, &bytes[..len]),
                    Err(DecodeError::Truncated),
                    "{kind:?} {bytes:?} cut at {len}"
                );
            }
            assert_eq!(decode_as(kind, &bytes), Ok(()));
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        for (kind, mut bytes) in all_encodings() {
            bytes.extend_from_slice(&[0, 0]);
            assert_eq!(
                decode_as(kind, &bytes),
                Err(DecodeError::TrailingBytes { extra: 2 }),
                "{kind:?} {bytes:?}"
            );
        }
    }

    #[test]
    fn unknown_variants_are_refused() {
        // Past the last variant of each frame enum.
        assert!(matches!(
            decode::<ClientFrame>(&[2]),
            Err(DecodeError::Invalid { .. })
        ));
        assert!(matches!(
            decode::<ServerFrame>(&[4]),
            Err(DecodeError::Invalid { .. })
        ));
        assert!(matches!(
            decode::<PeerFrame>(&[6]),
            Err(DecodeError::Invalid { .. })
        ));
        // A request (variant 1) with id 7 and an unknown body (variant 99).
        assert!(matches!(
            decode::<ClientFrame>(&[1, 7, 99]),
            Err(DecodeError::Invalid { .. })
        ));
        // A varint tag that does not fit a u32.
        assert!(matches!(
            decode::<ClientFrame>(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            Err(DecodeError::Invalid { .. })
        ));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(decode::<ClientFrame>(&[]), Err(DecodeError::Truncated));
        assert!(decode::<ClientFrame>(&[0xff; 64]).is_err());
        assert!(decode::<ServerFrame>(&[0xff; 64]).is_err());
        assert!(decode::<PeerFrame>(&[0xff; 64]).is_err());
        // A Hello whose version varint never ends.
        assert!(matches!(
            decode::<ClientFrame>(&[0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]),
            Err(DecodeError::Invalid { .. })
        ));
        // A Hello with cluster id Some("\xff"): not UTF-8.
        assert!(matches!(
            decode::<ClientFrame>(&[0, 1, 1, 1, 0xff, 0]),
            Err(DecodeError::Invalid { .. })
        ));
        // A Hello with an option tag of 2.
        assert!(matches!(
            decode::<ClientFrame>(&[0, 1, 2]),
            Err(DecodeError::Invalid { .. })
        ));
        // A string announcing far more bytes than the frame holds.
        assert_eq!(
            decode::<ClientFrame>(&[0, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a']),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn decode_errors_become_malformed() {
        let e = ProtoError::from(DecodeError::TrailingBytes { extra: 3 });
        assert_eq!(
            e,
            ProtoError::Malformed {
                reason: "3 unexpected bytes after the end of the message".to_owned()
            }
        );
        assert_eq!(
            e.to_string(),
            "malformed frame: 3 unexpected bytes after the end of the message"
        );
    }

    #[test]
    fn frame_length_limit_is_inclusive() {
        let max = MAX_FRAME_BYTES;
        assert_eq!(check_frame_len(max - 1, max), Ok(()));
        assert_eq!(check_frame_len(max, max), Ok(()));
        assert_eq!(
            check_frame_len(max + 1, max),
            Err(ProtoError::FrameTooLarge {
                len: 1_048_577,
                max: 1_048_576
            })
        );
        assert_eq!(check_frame_len(0, max), Ok(()));
        assert!(check_frame_len(usize::MAX, max).is_err());
        assert_eq!(check_frame_len(10, 10), Ok(()));
        assert!(check_frame_len(11, 10).is_err());
    }

    #[test]
    fn hello_version_is_readable_across_versions() {
        /// What a later protocol version's client might send: the same
        /// first variant and first field, then anything.
        #[derive(Serialize, Deserialize)]
        enum FutureClientFrame {
            Hello {
                protocol_version: u32,
                compression: Vec<String>,
                resume: Option<u128>,
            },
        }
        let future = encoded(&FutureClientFrame::Hello {
            protocol_version: 7,
            compression: vec!["zstd".to_owned()],
            resume: Some(u128::MAX),
        });
        assert!(decode::<ClientFrame>(&future).is_err());
        assert_eq!(peek_hello_version(&future), Some(7));

        for (kind, bytes) in all_encodings() {
            let hello = match kind {
                Kind::Client => matches!(decode(&bytes), Ok(ClientFrame::Hello { .. })),
                Kind::Server => false,
                Kind::Peer => matches!(decode(&bytes), Ok(PeerFrame::Hello { .. })),
            };
            if hello {
                assert_eq!(
                    peek_hello_version(&bytes),
                    Some(super::super::PROTOCOL_VERSION)
                );
            } else if !matches!(kind, Kind::Server) {
                assert_eq!(peek_hello_version(&bytes), None, "{kind:?} {bytes:?}");
            }
        }
        assert_eq!(peek_hello_version(&[]), None);
        assert_eq!(peek_hello_version(&[0]), None);
    }

    /// xorshift64* (Vigna), enough to drive mutations deterministically.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// A number in `0..n` (`n > 0`).
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(n).expect("small")).expect("small")
        }

        fn byte(&mut self) -> u8 {
            self.next().to_le_bytes()[0]
        }
    }

    #[test]
    fn mutated_frames_never_panic() {
        let seeds = all_encodings();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut decoded = 0usize;
        for _ in 0..30_000 {
            let mut bytes = seeds[rng.below(seeds.len())].1.clone();
            for _ in 0..=rng.below(4) {
                let len = bytes.len();
                match rng.below(7) {
                    0 if len > 0 => {
                        let i = rng.below(len);
                        bytes[i] ^= 1 << rng.below(8);
                    }
                    1 if len > 0 => {
                        let i = rng.below(len);
                        bytes[i] = rng.byte();
                    }
                    2 => {
                        let i = rng.below(len + 1);
                        bytes.insert(i, rng.byte());
                    }
                    3 if len > 0 => {
                        bytes.remove(rng.below(len));
                    }
                    4 => bytes.truncate(rng.below(len + 1)),
                    5 if len > 0 => {
                        // Set a byte to a boundary value (varint ends, tags).
                        let i = rng.below(len);
                        bytes[i] = [0x00, 0x01, 0x7f, 0x80, 0xff][rng.below(5)];
                    }
                    _ => {
                        let from = rng.below(len + 1);
                        let to = from + rng.below(len - from + 1);
                        let copy = bytes[from..to].to_vec();
                        let at = rng.below(len + 1);
                        bytes.splice(at..at, copy);
                    }
                }
            }
            decode_all_ways(&bytes);
            decoded += usize::from(
                decode::<ClientFrame>(&bytes).is_ok()
                    || decode::<ServerFrame>(&bytes).is_ok()
                    || decode::<PeerFrame>(&bytes).is_ok(),
            );
        }
        // The mutations must not all be rejected at the first byte: some
        // still decode, so the decoders' inner paths are exercised.
        assert!(decoded > 1_000, "only {decoded} mutants decoded");

        // Pure noise of every length up to 64.
        for _ in 0..5_000 {
            let len = rng.below(65);
            let bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            decode_all_ways(&bytes);
        }
    }
}
