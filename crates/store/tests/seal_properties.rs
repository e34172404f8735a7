//! Property tests of sealing: any plaintext and binding round-trip, and any single-bit change
//! of the sealed value or the binding is rejected.

use keyprov_store::vault::SEAL_OVERHEAD;
use keyprov_store::{MasterKey, StoreError};
use proptest::prelude::*;

proptest! {
    #[test]
    fn seal_then_open_gives_the_plaintext(
        aad in proptest::collection::vec(any::<u8>(), 0..64),
        plaintext in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let key = MasterKey::generate();
        let sealed = key.seal(&aad, &plaintext);
        prop_assert_eq!(sealed.len(), plaintext.len() + SEAL_OVERHEAD);
        let opened = key.open(&aad, &sealed).unwrap();
        prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
    }

    #[test]
    fn any_flipped_bit_is_rejected(
        plaintext in proptest::collection::vec(any::<u8>(), 1..64),
        position in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let key = MasterKey::generate();
        let mut sealed = key.seal(b"binding", &plaintext);
        let at = position.index(sealed.len() - 1) + 1; // Byte 0 is the version.
        sealed[at] ^= 1 << bit;
        prop_assert!(matches!(key.open(b"binding", &sealed), Err(StoreError::SealedValueRejected)));
    }

    #[test]
    fn a_different_binding_is_rejected(
        aad in proptest::collection::vec(any::<u8>(), 1..32),
        bit in 0u8..8,
    ) {
        let key = MasterKey::generate();
        let sealed = key.seal(&aad, b"12345678901234567890");
        let mut other = aad.clone();
        other[0] ^= 1 << bit;
        prop_assert!(matches!(key.open(&other, &sealed), Err(StoreError::SealedValueRejected)));
    }
}
