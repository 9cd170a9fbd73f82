//! Event API keys: 64 lowercase hex characters from the OS CSPRNG, compared in constant time.

use subtle::ConstantTimeEq;

/// A new 256-bit key as 64 lowercase hex characters.
///
/// Panics only if the operating system has no random source at all, in which case no key
/// could be safe and refusing to run is right.
pub fn generate_api_key() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator is unavailable");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares a presented secret with a stored one without leaking where they differ.
pub fn secrets_match(presented: &str, stored: &str) -> bool {
    // Lengths are not secret (keys have a fixed format), the content is.
    presented.len() == stored.len() && bool::from(presented.as_bytes().ct_eq(stored.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_64_hex_and_distinct() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(secrets_match("abc", "abc"));
        assert!(!secrets_match("abd", "abc"));
        assert!(!secrets_match("ab", "abc"));
        assert!(!secrets_match("", "abc"));
    }
}
