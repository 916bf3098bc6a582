//! Pseudonyms: the keyed hash that stands for a PII value wherever one is
//! kept — decoded feeds, reference tables, dead letters — so a value hashed in
//! one place joins the same value hashed in another.

/// The keyed hash that stands for a PII value: 32 hex digits, the one form
/// the decoder writes and dead letters show. On the stack: the decoder makes
/// one per PII value it reads.
pub struct Pseudonym(arrayvec::ArrayString<64>);

impl std::ops::Deref for Pseudonym {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0[..32]
    }
}

pub fn pseudonym(key: &[u8; 32], value: &str) -> Pseudonym {
    Pseudonym(blake3::keyed_hash(key, value.as_bytes()).to_hex())
}
