//! Time-based one-time passwords (TOTP, RFC 6238, over HOTP, RFC 4226) as the second factor,
//! and the one-time recovery codes that stand in for a lost authenticator.
//!
//! What authenticator apps implement: HMAC-SHA-1, 30-second steps from the Unix epoch, six
//! digits, a 160-bit secret shown once as Base32 (RFC 4648, no padding) in an `otpauth://`
//! URI. A code is accepted for the current step and one step either side (a phone's clock
//! a little off, a code typed as it changed), and **only for a step later than the last one
//! accepted**: the same code cannot be used twice, nor an older one after a newer
//! ([`check`]). Time is passed in; nothing here reads a clock.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Seconds per step (RFC 6238 X).
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of the current one.
pub const SKEW_STEPS: i64 = 1;
/// Bytes of a new secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;
/// Recovery codes issued at a time.
pub const RECOVERY_CODES: usize = 10;

/// HOTP (RFC 4226 §5.3): HMAC-SHA-1 of the counter, dynamic truncation, `digits` decimal digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC accepts a key of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return 0,
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let binary = (u32::from(h[offset]) & 0x7f) << 24
        | u32::from(h[offset + 1]) << 16
        | u32::from(h[offset + 2]) << 8
        | u32::from(h[offset + 3]);
    binary % 10u32.pow(digits)
}

/// The time step of `unix_seconds` (RFC 6238 T, with T0 = 0).
pub fn step_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The code of a step, zero-padded to `digits`.
pub fn code_at_step(secret: &[u8], step: i64, digits: u32) -> String {
    let counter = u64::try_from(step).unwrap_or(0);
    format!(
        "{:0width$}",
        hotp(secret, counter, digits),
        width = digits as usize
    )
}

/// The code at a time (RFC 6238 TOTP).
pub fn code_at(secret: &[u8], unix_seconds: i64, digits: u32) -> String {
    code_at_step(secret, step_of(unix_seconds), digits)
}

/// Why a code is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("the code must be {DIGITS} digits")]
    Malformed,
    #[error("the code is wrong or expired")]
    Wrong,
    #[error("this code was already used; wait for the next one")]
    Replayed,
}

impl TotpError {
    pub fn code(self) -> &'static str {
        match self {
            TotpError::Malformed => "invalid_totp",
            TotpError::Wrong => "wrong_totp",
            TotpError::Replayed => "totp_replayed",
        }
    }
}

/// Checks `code` at `unix_seconds` against the secret, given the last step accepted before
/// (`None`: never). Returns the step it matched, to be stored as the new last step (the
/// caller stores it only if it is still later than the stored one, under a guarded update).
/// A matching step not later than `last_step` is [`TotpError::Replayed`].
pub fn check(
    secret: &[u8],
    code: &str,
    unix_seconds: i64,
    last_step: Option<i64>,
) -> Result<i64, TotpError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::Malformed);
    }
    let now = step_of(unix_seconds);
    let mut replayed = false;
    for step in (now - SKEW_STEPS)..=(now + SKEW_STEPS) {
        if step < 0 {
            continue;
        }
        if constant_time_eq(
            code_at_step(secret, step, DIGITS).as_bytes(),
            code.as_bytes(),
        ) {
            if last_step.is_some_and(|last| step <= last) {
                replayed = true;
                continue;
            }
            return Ok(step);
        }
    }
    Err(if replayed {
        TotpError::Replayed
    } else {
        TotpError::Wrong
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Base32 (RFC 4648 §6) without padding, as authenticator apps read secrets.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes Base32 (case-insensitive, padding and spaces ignored); `None` for other
/// characters.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let c = c.to_ascii_uppercase();
        let v = BASE32.iter().position(|&b| char::from(b) == c)? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// The `otpauth://totp/` URI (Key Uri Format) an authenticator app reads from a QR code or
/// a paste: `issuer:account`, the Base32 secret, SHA1, 6 digits, 30 s.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        account = percent_encode(account),
        secret = base32_encode(secret),
    )
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A recovery code as shown to its owner: 16 Base32 characters (80 bits) in groups of four,
/// from 10 random bytes.
pub fn recovery_code(random: &[u8; 10]) -> String {
    let raw = base32_encode(random).to_ascii_lowercase();
    raw.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// A recovery code as typed, normalised for hashing: lower case, without separators and
/// spaces; `None` unless 16 Base32 characters remain.
pub fn normalise_recovery_code(typed: &str) -> Option<String> {
    let s: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (s.len() == 16 && base32_decode(&s).is_some()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 6238 Appendix B, the SHA-1 rows: seed "12345678901234567890", 8 digits.
    #[test]
    fn rfc_6238_test_vectors() {
        let seed = b"12345678901234567890";
        let cases: &[(i64, i64, &str)] = &[
            // (time, step T as hex in the RFC, TOTP)
            (59, 0x1, "94287082"),
            (1_111_111_109, 0x23523EC, "07081804"),
            (1_111_111_111, 0x23523ED, "14050471"),
            (1_234_567_890, 0x273EF07, "89005924"),
            (2_000_000_000, 0x3F940AA, "69279037"),
            (20_000_000_000, 0x27BC86AA, "65353130"),
        ];
        for &(time, step, totp) in cases {
            assert_eq!(step_of(time), step, "T at {time}");
            assert_eq!(code_at(seed, time, 8), totp, "TOTP at {time}");
        }
    }

    /// RFC 4226 Appendix D: HOTP of the same seed for counters 0–9, six digits.
    #[test]
    fn rfc_4226_test_vectors() {
        let seed = b"12345678901234567890";
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.into_iter().enumerate() {
            assert_eq!(hotp(seed, counter as u64, 6), want, "counter {counter}");
        }
    }

    /// RFC 4648 §10 test vectors.
    #[test]
    fn base32_test_vectors() {
        let cases = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base32_encode(plain.as_bytes()), encoded);
            assert_eq!(base32_decode(encoded).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(base32_decode("mzxw 6ytb oi=="), Some(b"foobar".to_vec()));
        assert_eq!(base32_decode("MZ1"), None);
    }

    /// The checks a login makes, as a case table: (code's step offset from now, last step
    /// accepted relative to now, expected).
    #[test]
    fn check_cases() {
        let secret = b"12345678901234567890";
        let now = 1_700_000_000;
        let step = step_of(now);
        let cases: &[(i64, Option<i64>, Result<i64, TotpError>)] = &[
            (0, None, Ok(step)),
            (-1, None, Ok(step - 1)),
            (1, None, Ok(step + 1)),
            (-2, None, Err(TotpError::Wrong)),
            (2, None, Err(TotpError::Wrong)),
            // The same code again: refused within its step.
            (0, Some(0), Err(TotpError::Replayed)),
            // An older code after a newer one.
            (-1, Some(0), Err(TotpError::Replayed)),
            // A newer code after an older one.
            (1, Some(0), Ok(step + 1)),
            (0, Some(-1), Ok(step)),
        ];
        for &(offset, last, want) in cases {
            let code = code_at_step(secret, step + offset, DIGITS);
            assert_eq!(
                check(secret, &code, now, last.map(|l| step + l)),
                want,
                "offset {offset}, last {last:?}"
            );
        }
        assert_eq!(check(secret, "12345", now, None), Err(TotpError::Malformed));
        assert_eq!(
            check(secret, "12345a", now, None),
            Err(TotpError::Malformed)
        );
        let code = code_at(secret, now, DIGITS);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(check(secret, &spaced, now, None), Ok(step));
    }

    #[test]
    fn otpauth_uri_names_issuer_account_and_secret() {
        let uri = otpauth_uri("City Lab", "admin", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/City%20Lab:admin?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=City%20Lab&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn recovery_codes_normalise_as_typed() {
        let code = recovery_code(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6]);
        assert_eq!(code.len(), 19);
        let bare = code.replace('-', "");
        assert_eq!(
            normalise_recovery_code(&code).as_deref(),
            Some(bare.as_str())
        );
        assert_eq!(
            normalise_recovery_code(&code.to_uppercase().replace('-', " ")).as_deref(),
            Some(bare.as_str())
        );
        assert_eq!(normalise_recovery_code("too-short"), None);
    }

    proptest! {
        #[test]
        fn base32_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(base32_decode(&base32_encode(&bytes)), Some(bytes));
        }

        /// After a code is accepted, the same code is accepted again only for a later step
        /// (a new code that happens to have the same digits), never for its own step.
        #[test]
        fn an_accepted_code_is_never_accepted_twice(
            secret in proptest::collection::vec(any::<u8>(), 20),
            now in 0i64..4_000_000_000,
            later in 0i64..120,
        ) {
            let code = code_at(&secret, now, DIGITS);
            let step = check(&secret, &code, now, None).expect("fresh code accepted");
            if let Ok(again) = check(&secret, &code, now + later, Some(step)) {
                prop_assert!(again > step);
            }
        }
    }
}
