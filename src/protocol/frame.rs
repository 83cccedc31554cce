//! Request framing and the fixed prefix of the request header.
//!
//! A Kafka request is `size: i32` followed by `size` bytes; those bytes start
//! with `api_key: i16, api_version: i16, correlation_id: i32`. We read these
//! eight bytes ourselves, before anything is decoded, so that the server can
//! refuse an oversized frame or an unsupported (key, version) without handing
//! a hostile buffer to a decoder that pre-allocates from wire counts.

/// The part of every request header that has the same layout in all versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Why a frame was refused before decoding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame length {0} is negative")]
    Negative(i32),
    #[error("frame length {len} exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: u64 },
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
}

/// Checks a frame's length prefix against the configured maximum.
pub fn check_frame_len(raw: i32, max_bytes: u64) -> Result<usize, FrameError> {
    let len = u64::try_from(raw).map_err(|_| FrameError::Negative(raw))?;
    if len > max_bytes {
        return Err(FrameError::TooLarge {
            len,
            max: max_bytes,
        });
    }
    usize::try_from(len).map_err(|_| FrameError::TooLarge {
        len,
        max: max_bytes,
    })
}

/// Reads the eight-byte header prefix of a frame body.
pub fn header_prefix(body: &[u8]) -> Result<HeaderPrefix, FrameError> {
    match body {
        [k0, k1, v0, v1, c0, c1, c2, c3, ..] => Ok(HeaderPrefix {
            api_key: i16::from_be_bytes([*k0, *k1]),
            api_version: i16::from_be_bytes([*v0, *v1]),
            correlation_id: i32::from_be_bytes([*c0, *c1, *c2, *c3]),
        }),
        _ => Err(FrameError::TooShort(body.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_len_limits() {
        assert_eq!(check_frame_len(-1, 100), Err(FrameError::Negative(-1)));
        assert_eq!(
            check_frame_len(101, 100),
            Err(FrameError::TooLarge { len: 101, max: 100 })
        );
        assert_eq!(check_frame_len(100, 100), Ok(100));
        assert_eq!(check_frame_len(0, 100), Ok(0));
    }

    #[test]
    fn prefix_needs_eight_bytes() {
        assert_eq!(header_prefix(&[0; 7]), Err(FrameError::TooShort(7)));
        let p = header_prefix(&[0, 18, 0, 3, 0, 0, 0, 9, 0xff]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p,
            HeaderPrefix {
                api_key: 18,
                api_version: 3,
                correlation_id: 9
            }
        );
    }
}
