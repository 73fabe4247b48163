//! The refresh-token reuse window: a refresh token presented again shortly
//! after its own rotation gets the same successor instead of revoking the
//! login, so two browser tabs (or a client retrying over a flaky network)
//! that refresh at the same moment stay logged in.
//!
//! The database never holds a usable refresh token, so the successor cannot
//! be stored as it is. It is kept sealed ([`SealedSuccessor`]) with
//! ChaCha20-Poly1305 under a key derived (HKDF-SHA256) from the parent
//! token, which the database holds only as a SHA-256: only a client that
//! presents the parent can open it. The ciphertext is bound to its row (the
//! parent's and the successor's hashes and the login) as associated data,
//! so it cannot be moved to another row.
//!
//! The trade: a stolen refresh token replayed within the window of the
//! victim's own refresh (or the victim's within the window of the thief's)
//! is answered like a retry, not detected as reuse. Outside the window, or
//! once the successor was used, reuse revokes the login as before.
//!
//! ```
//! use auth_kit::refresh::{ReuseWindow, SealedSuccessor, SuccessorBinding};
//! use auth_kit::store::RefreshTokenHash;
//!
//! let (parent, successor) = ("parent-token", "successor-token");
//! let binding = SuccessorBinding {
//!     parent: &RefreshTokenHash::of(parent),
//!     successor: &RefreshTokenHash::of(successor),
//!     login_id: "login-1",
//! };
//! let sealed = SealedSuccessor::seal(parent, successor, &binding);
//! assert!(!sealed.as_str().contains(successor));
//! assert_eq!(sealed.open(parent, &binding).as_deref().map(String::as_str), Some(successor));
//! assert!(sealed.open("another-token", &binding).is_none());
//!
//! assert_eq!(ReuseWindow::seconds(10).map(ReuseWindow::as_secs), Some(10));
//! assert!(ReuseWindow::seconds(61).is_none());
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::store::RefreshTokenHash;

/// REFRESH_TOKEN_REUSE_SECONDS: how long after its rotation a refresh
/// token may be presented again and get the same successor; 0 to 60
/// seconds, 0 disables the window (every reuse revokes the login).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReuseWindow(u64);

impl ReuseWindow {
    /// The longest window accepted.
    pub const MAX_SECONDS: u64 = 60;

    /// No window: presenting a spent refresh token always revokes its login.
    pub const DISABLED: ReuseWindow = ReuseWindow(0);

    /// 10 seconds, REFRESH_TOKEN_REUSE_SECONDS' default (the interval
    /// common hosted identity providers use for the same purpose).
    pub const STANDARD: ReuseWindow = ReuseWindow(10);

    /// `None` above [`ReuseWindow::MAX_SECONDS`].
    pub fn seconds(seconds: u64) -> Option<Self> {
        (seconds <= Self::MAX_SECONDS).then_some(Self(seconds))
    }

    /// The window in seconds.
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// Whether the window is off.
    pub fn is_disabled(self) -> bool {
        self.0 == 0
    }
}

/// What a sealed successor is bound to: its row. Opening it with another
/// binding fails.
#[derive(Debug, Clone, Copy)]
pub struct SuccessorBinding<'a> {
    /// The rotated (parent) token's hash: the row's key.
    pub parent: &'a RefreshTokenHash,
    /// The successor's hash, as the row names it.
    pub successor: &'a RefreshTokenHash,
    /// The login both belong to.
    pub login_id: &'a str,
}

/// A successor refresh token sealed for storage: `v1.` and the base64url
/// of a random 96-bit nonce and the ChaCha20-Poly1305 ciphertext. `Debug`
/// shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSuccessor(String);

/// Marks the format, so another can follow.
const FORMAT: &str = "v1.";
/// HKDF's salt and info: domain separation from any other use of a token.
const KDF_SALT: &[u8] = b"auth-kit refresh-token successor";
const KDF_INFO: &[u8] = b"v1 chacha20poly1305 key";
const AAD_LABEL: &[u8] = b"auth-kit refresh-token successor v1";
const NONCE_BYTES: usize = 12;

impl SealedSuccessor {
    /// Seals `successor` under a key derived from `parent`, bound to its row.
    pub fn seal(parent: &str, successor: &str, binding: &SuccessorBinding<'_>) -> Self {
        let nonce = crate::random::bytes::<NONCE_BYTES>();
        let sealed = cipher(parent)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: successor.as_bytes(),
                    aad: &associated_data(binding),
                },
            )
            // Only fails for messages beyond ChaCha20's 256 GiB limit.
            .expect("a refresh token is far below ChaCha20-Poly1305's length limit");
        let mut bytes = Vec::with_capacity(NONCE_BYTES + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Self(format!("{FORMAT}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The successor, when `parent` is the token it was sealed under and
    /// `binding` its row; `None` otherwise (or when the stored text is not
    /// a sealed successor at all).
    pub fn open(&self, parent: &str, binding: &SuccessorBinding<'_>) -> Option<Zeroizing<String>> {
        let bytes = URL_SAFE_NO_PAD.decode(self.0.strip_prefix(FORMAT)?).ok()?;
        if bytes.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let opened = cipher(parent)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &associated_data(binding),
                },
            )
            .ok()?;
        String::from_utf8(opened).ok().map(Zeroizing::new)
    }

    /// The text stored in the database.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A value read back from the database.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }
}

impl fmt::Debug for SealedSuccessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedSuccessor(..)")
    }
}

/// ChaCha20-Poly1305 keyed by HKDF-SHA256 of the parent token. The parent
/// has 256 random bits, so no slow key derivation is needed.
fn cipher(parent: &str) -> ChaCha20Poly1305 {
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(KDF_SALT), parent.as_bytes())
        .expand(KDF_INFO, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    ChaCha20Poly1305::new(Key::from_slice(key.as_ref()))
}

/// The row a sealed successor belongs to, unambiguously encoded (hex
/// hashes have a fixed length; the login id comes last).
fn associated_data(binding: &SuccessorBinding<'_>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 160);
    aad.extend_from_slice(AAD_LABEL);
    aad.push(0);
    aad.extend_from_slice(binding.parent.as_hex().as_bytes());
    aad.push(0);
    aad.extend_from_slice(binding.successor.as_hex().as_bytes());
    aad.push(0);
    aad.extend_from_slice(binding.login_id.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding<'a>(
        parent: &'a RefreshTokenHash,
        successor: &'a RefreshTokenHash,
        login_id: &'a str,
    ) -> SuccessorBinding<'a> {
        SuccessorBinding {
            parent,
            successor,
            login_id,
        }
    }

    #[test]
    fn only_the_parent_opens_it_and_only_on_its_row() {
        let (parent, successor) = ("p".repeat(43), "s".repeat(43));
        let (p, s) = (
            RefreshTokenHash::of(&parent),
            RefreshTokenHash::of(&successor),
        );
        let sealed = SealedSuccessor::seal(&parent, &successor, &binding(&p, &s, "login"));
        assert_eq!(
            sealed
                .open(&parent, &binding(&p, &s, "login"))
                .as_deref()
                .map(String::as_str),
            Some(successor.as_str())
        );
        let other = RefreshTokenHash::of("other");
        assert!(sealed.open("other", &binding(&p, &s, "login")).is_none());
        assert!(
            sealed
                .open(&parent, &binding(&other, &s, "login"))
                .is_none()
        );
        assert!(
            sealed
                .open(&parent, &binding(&p, &other, "login"))
                .is_none()
        );
        assert!(sealed.open(&parent, &binding(&p, &s, "login2")).is_none());
        // Fresh nonce each time.
        assert_ne!(
            sealed,
            SealedSuccessor::seal(&parent, &successor, &binding(&p, &s, "login"))
        );
        for garbage in ["", "v1.", "v1.AAAA", "v2.xyz", "v1.!!!", sealed.as_str()] {
            let tampered = SealedSuccessor::from_stored(garbage.replace("v1.", "v1.A"));
            assert!(tampered.open(&parent, &binding(&p, &s, "login")).is_none());
        }
    }
}
