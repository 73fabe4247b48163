//! Randomness from the operating system, for secrets and identifiers.

/// `N` bytes from the OS's CSPRNG.
///
/// # Panics
/// If the operating system cannot provide randomness (on Linux, only before
/// the kernel's pool is initialised at boot). Continuing with weaker
/// randomness would be worse than stopping.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random number generator failed");
    buf
}

/// 256 bits of OS randomness as 64 lowercase hex characters: the form of
/// `SECRET_KEY` that `cargo auth setup-jwt` writes.
pub fn secret_hex() -> String {
    hex::encode(bytes::<32>())
}

/// 256 bits of OS randomness, base64url without padding (43 characters):
/// an opaque token safe in URLs (reset and verification links).
pub fn url_token() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes::<32>())
}
