//! The one source of randomness: the operating system's CSPRNG.

/// Fills `buf` with random octets.
///
/// # Panics
/// Panics when the operating system has no working random source; no key, nonce or session id
/// may ever be produced from anything weaker, so continuing is not an option.
pub fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source failed");
}

/// `len` random octets.
pub fn bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    fill(&mut out);
    out
}
