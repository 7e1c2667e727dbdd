//! The byte-level readers under the key parsers: a PEM splitter (RFC 7468), a strict DER reader
//! (X.690, single-byte tags, minimal definite lengths) and an SSH wire-format reader (RFC 4251
//! §5). Each returns `Err` on anything it does not understand; none panics. `jwt sign`'s private
//! key readers use them too.

use base64::Engine;

use super::{KeyError, BASE64_ANY_PAD};

/// `bytes` without its leading zero bytes.
pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// The bit length of a big-endian number without leading zero bytes.
pub(crate) fn bit_length(n: &[u8]) -> usize {
    match n.first() {
        Some(&top) => n.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

/// One PEM block: its label and its decoded body.
pub(crate) struct Pem<'a> {
    /// The label between `BEGIN ` and `-----`, e.g. `PUBLIC KEY`.
    pub(crate) label: &'a str,
    /// The base64-decoded body.
    pub(crate) der: Vec<u8>,
}

/// Decodes the first PEM block in `text`; `Ok(None)` when there is no `-----BEGIN ` line.
///
/// Text around the block is ignored (RFC 7468 explanatory text, or the rest of a chain). A block
/// with RFC 1421 headers is refused, as [`KeyError::Encrypted`] when they say it is encrypted.
pub(crate) fn pem_decode(text: &str) -> Result<Option<Pem<'_>>, KeyError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let Some(start) = text.find(BEGIN) else {
        return Ok(None);
    };
    let after_begin = &text[start + BEGIN.len()..];
    let label_len = after_begin
        .find(DASHES)
        .ok_or(KeyError::Malformed("the PEM BEGIN line is cut off"))?;
    let label = &after_begin[..label_len];
    if label.contains('\n') {
        return Err(KeyError::Malformed("the PEM BEGIN line is cut off"));
    }
    let body_and_end = &after_begin[label_len + DASHES.len()..];
    let end = body_and_end
        .find(&format!("-----END {label}-----"))
        .ok_or(KeyError::Malformed(
            "the PEM block has no matching END line (is it cut off?)",
        ))?;
    let body = &body_and_end[..end];
    let mut base64 = Vec::with_capacity(body.len());
    for line in body.lines() {
        if line.contains(':') {
            return Err(if line.contains("ENCRYPTED") {
                KeyError::Encrypted
            } else {
                KeyError::Malformed("the PEM block has header lines")
            });
        }
        base64.extend(line.bytes().filter(|b| !b.is_ascii_whitespace()));
    }
    if base64.is_empty() {
        return Err(KeyError::Malformed("the PEM block is empty"));
    }
    let der = BASE64_ANY_PAD
        .decode(&base64)
        .map_err(|_| KeyError::Malformed("the PEM body is not valid base64"))?;
    Ok(Some(Pem { label, der }))
}

/// DER tag of INTEGER.
pub(crate) const TAG_INTEGER: u8 = 0x02;
/// DER tag of BIT STRING.
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
/// DER tag of OCTET STRING.
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
/// DER tag of NULL.
pub(crate) const TAG_NULL: u8 = 0x05;
/// DER tag of OBJECT IDENTIFIER.
pub(crate) const TAG_OID: u8 = 0x06;
/// DER tag of SEQUENCE.
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
/// DER tag of a constructed `[0]` (certificate version).
pub(crate) const TAG_CONTEXT_0: u8 = 0xA0;
/// The contents of OID 1.2.840.113549.1.1.1 (rsaEncryption).
pub(crate) const OID_RSA_ENCRYPTION: &[u8] =
    &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];

/// A strict DER reader over a byte slice: single-byte tags, definite minimal lengths.
pub(crate) struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    /// Reads `bytes` from the start.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Whether everything has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Fails unless everything has been read.
    pub(crate) fn finish(&self) -> Result<(), KeyError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(KeyError::Malformed("the DER data has trailing bytes"))
        }
    }

    /// Reads one element: its tag and its contents.
    pub(crate) fn any(&mut self) -> Result<(u8, &'a [u8]), KeyError> {
        const BAD: KeyError = KeyError::Malformed("the DER data is invalid or cut off");
        let [tag, first, rest @ ..] = self.rest else {
            return Err(BAD);
        };
        if tag & 0x1F == 0x1F {
            return Err(BAD); // multi-byte tags never occur in keys
        }
        let (len, rest) = if *first < 0x80 {
            (usize::from(*first), rest)
        } else {
            let count = usize::from(first & 0x7F);
            if count == 0 || count > 4 || rest.len() < count {
                return Err(BAD); // indefinite, absurd, or cut off
            }
            let (len_bytes, rest) = rest.split_at(count);
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len_bytes[0] == 0 || len < 0x80 {
                return Err(BAD); // not the shortest length form
            }
            (len, rest)
        };
        if rest.len() < len {
            return Err(BAD);
        }
        let (contents, rest) = rest.split_at(len);
        self.rest = rest;
        Ok((*tag, contents))
    }

    /// Reads one element that must have `tag`; returns its contents.
    pub(crate) fn take(&mut self, tag: u8) -> Result<&'a [u8], KeyError> {
        match self.any()? {
            (found, contents) if found == tag => Ok(contents),
            _ => Err(KeyError::Malformed(
                "the DER data has an unexpected element",
            )),
        }
    }

    /// Reads a non-negative INTEGER; returns it big-endian without leading zeros.
    pub(crate) fn unsigned(&mut self) -> Result<&'a [u8], KeyError> {
        match self.take(TAG_INTEGER)? {
            [] => Err(KeyError::Malformed("a DER INTEGER is empty")),
            [top, ..] if top & 0x80 != 0 => Err(KeyError::Malformed("a DER INTEGER is negative")),
            [0, next, ..] if next & 0x80 == 0 => Err(KeyError::Malformed(
                "a DER INTEGER has a needless leading zero",
            )),
            value => Ok(strip_leading_zeros(value)),
        }
    }
}

/// A reader of the SSH wire format (RFC 4251 §5): `uint32`, `string`, `mpint`.
pub(crate) struct SshReader<'a> {
    rest: &'a [u8],
}

impl<'a> SshReader<'a> {
    /// Reads `bytes` from the start.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Whether everything has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// What is left unread.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Reads a big-endian `uint32`.
    pub(crate) fn u32(&mut self) -> Result<u32, KeyError> {
        match self.rest {
            [a, b, c, d, rest @ ..] => {
                self.rest = rest;
                Ok(u32::from_be_bytes([*a, *b, *c, *d]))
            }
            _ => Err(KeyError::Malformed("the OpenSSH key data is cut off")),
        }
    }

    /// Reads a `string`: a `uint32` length, then that many bytes.
    pub(crate) fn string(&mut self) -> Result<&'a [u8], KeyError> {
        let len = usize::try_from(self.u32()?).unwrap_or(usize::MAX);
        if self.rest.len() < len {
            return Err(KeyError::Malformed("the OpenSSH key data is cut off"));
        }
        let (value, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(value)
    }

    /// Reads a non-negative `mpint`; returns it big-endian without leading zeros.
    pub(crate) fn mpint(&mut self) -> Result<&'a [u8], KeyError> {
        let value = self.string()?;
        if value.first().is_some_and(|top| top & 0x80 != 0) {
            return Err(KeyError::Malformed("an OpenSSH mpint is negative"));
        }
        Ok(strip_leading_zeros(value))
    }
}
