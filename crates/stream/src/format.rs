//! The table: encoding, decoding, signing and verification (the layout
//! is in the crate documentation).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::StreamError;

/// A block's SHA-256.
pub type Hash = [u8; 32];

/// The table's mark for a block of zeros (never stored).
pub const ZERO_HASH: Hash = [0; 32];

/// The block size `strata disk pack` uses; the crate documentation says
/// why.
pub const BLOCK_SIZE: u32 = 64 * 1024;

/// The table format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const MAGIC: &[u8; 8] = b"STRATADK";
const HEADER: usize = 40;
const SIGNATURE: usize = 64;
const SECTOR: u64 = 512;
/// Block sizes a table may use.
const MIN_BLOCK: u32 = 4096;
const MAX_BLOCK: u32 = 4 << 20;
/// The largest table read: 2^21 blocks (128 GiB of image at 64 KiB), so a
/// hostile server cannot make the host allocate without bound.
pub(crate) const MAX_TABLE: u64 = HEADER as u64 + 32 * (1 << 21) + SIGNATURE as u64;

/// A decoded table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub block_size: u32,
    pub image_size: u64,
    pub generation: u64,
    /// One per block; [`ZERO_HASH`] for a block of zeros.
    pub hashes: Vec<Hash>,
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// A hash as 64 lowercase hex digits (block file names).
pub fn block_hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

impl Table {
    /// Block `i`'s length: [`Table::block_size`], or less for the last.
    pub fn block_len(&self, i: u64) -> usize {
        let start = i * self.block_size as u64;
        (self.image_size - start).min(self.block_size as u64) as usize
    }

    pub fn blocks(&self) -> u64 {
        self.hashes.len() as u64
    }

    /// The signed part: header and hashes.
    fn body(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER + 32 * self.hashes.len() + SIGNATURE);
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        v.extend_from_slice(&self.block_size.to_le_bytes());
        v.extend_from_slice(&self.image_size.to_le_bytes());
        v.extend_from_slice(&self.generation.to_le_bytes());
        v.extend_from_slice(&(self.hashes.len() as u64).to_le_bytes());
        for h in &self.hashes {
            v.extend_from_slice(h);
        }
        v
    }

    /// The table as stored, signed with `key`.
    pub fn encode_signed(&self, key: &SigningKey) -> Vec<u8> {
        let mut v = self.body();
        let sig = key.sign(&v);
        v.extend_from_slice(&sig.to_bytes());
        v
    }

    /// The table as stored with an empty (all-zero) signature, which no
    /// key verifies: `strata disk sign` fills it in.
    pub fn encode_unsigned(&self) -> Vec<u8> {
        let mut v = self.body();
        v.extend_from_slice(&[0; SIGNATURE]);
        v
    }

    /// Decodes `bytes` (from `origin`, for messages) without looking at
    /// the signature.
    pub fn decode_unverified(bytes: &[u8], origin: &str) -> Result<Table, StreamError> {
        let bad = |what: String| StreamError::Table { origin: origin.to_string(), what };
        if bytes.len() < HEADER + SIGNATURE {
            return Err(bad(format!("{} bytes is shorter than a header and a signature", bytes.len())));
        }
        if &bytes[0..8] != MAGIC {
            return Err(bad("no STRATADK magic".into()));
        }
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(bad(format!("format version {version}, this Strata reads version {FORMAT_VERSION}")));
        }
        let block_size = u32_at(12);
        if !block_size.is_power_of_two() || !(MIN_BLOCK..=MAX_BLOCK).contains(&block_size) {
            return Err(bad(format!("block size {block_size} is not a power of two from 4 KiB to 4 MiB")));
        }
        let (image_size, generation, n) = (u64_at(16), u64_at(24), u64_at(32));
        if image_size == 0 || image_size % SECTOR != 0 {
            return Err(bad(format!("image size {image_size} is not a positive whole number of sectors")));
        }
        if n != image_size.div_ceil(block_size as u64) {
            return Err(bad(format!("{n} blocks do not cover {image_size} bytes in blocks of {block_size}")));
        }
        let want = n.checked_mul(32).and_then(|h| h.checked_add((HEADER + SIGNATURE) as u64));
        if want != Some(bytes.len() as u64) {
            return Err(bad(format!("{} bytes, but {n} blocks need {} bytes", bytes.len(), want.unwrap_or(u64::MAX))));
        }
        let hashes = bytes[HEADER..bytes.len() - SIGNATURE].chunks_exact(32).map(|c| c.try_into().unwrap()).collect();
        Ok(Table { block_size, image_size, generation, hashes })
    }

    /// Decodes `bytes` and checks the signature against `key`; `key_path`
    /// names the key in the error.
    pub fn decode_verified(
        bytes: &[u8],
        origin: &str,
        key: &VerifyingKey,
        key_path: &std::path::Path,
    ) -> Result<Table, StreamError> {
        let t = Table::decode_unverified(bytes, origin)?;
        let (body, sig) = bytes.split_at(bytes.len() - SIGNATURE);
        let sig = Signature::from_bytes(sig.try_into().unwrap());
        key.verify_strict(body, &sig)
            .map_err(|_| StreamError::Signature { origin: origin.to_string(), key: key_path.to_path_buf() })?;
        Ok(t)
    }

    /// Re-signs a stored table with `key` (what `strata disk sign` does).
    pub fn resign(bytes: &[u8], origin: &str, key: &SigningKey) -> Result<Vec<u8>, StreamError> {
        Ok(Table::decode_unverified(bytes, origin)?.encode_signed(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn sample() -> Table {
        Table {
            block_size: 4096,
            image_size: 3 * 4096 + 512,
            generation: 7,
            hashes: vec![[1; 32], ZERO_HASH, [3; 32], [4; 32]],
        }
    }

    #[test]
    fn round_trip_and_lengths() {
        let t = sample();
        let k = key(9);
        let bytes = t.encode_signed(&k);
        assert_eq!(bytes.len(), 40 + 4 * 32 + 64);
        let back = Table::decode_verified(&bytes, "t", &k.verifying_key(), "k.pub".as_ref()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.block_len(0), 4096);
        assert_eq!(back.block_len(3), 512);
    }

    #[test]
    fn any_changed_byte_or_other_key_is_refused() {
        let t = sample();
        let k = key(9);
        let bytes = t.encode_signed(&k);
        for at in [0, 12, 20, 28, 40 + 33, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[at] ^= 1;
            assert!(Table::decode_verified(&b, "t", &k.verifying_key(), "k".as_ref()).is_err(), "byte {at}");
        }
        let e = Table::decode_verified(&bytes, "t", &key(10).verifying_key(), "other.pub".as_ref()).unwrap_err();
        assert!(e.to_string().contains("signature does not verify against other.pub"), "{e}");
        let unsigned = t.encode_unsigned();
        assert!(Table::decode_verified(&unsigned, "t", &k.verifying_key(), "k".as_ref()).is_err());
        let signed = Table::resign(&unsigned, "t", &k).unwrap();
        assert_eq!(signed, bytes);
    }

    #[test]
    fn malformed_tables_are_named() {
        let k = key(1);
        let good = sample().encode_signed(&k);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..good.len() - 32].to_vec(), "blocks need"),
            (good[..10].to_vec(), "shorter"),
            ([b"XXXXXXXX", &good[8..]].concat(), "magic"),
            (
                {
                    let mut b = good.clone();
                    b[8] = 2;
                    b
                },
                "format version 2",
            ),
            (
                {
                    let mut b = good.clone();
                    b[12..16].copy_from_slice(&5000u32.to_le_bytes());
                    b
                },
                "power of two",
            ),
            (
                {
                    let mut b = good.clone();
                    b[16..24].copy_from_slice(&100u64.to_le_bytes());
                    b
                },
                "sectors",
            ),
            (
                {
                    let mut b = good.clone();
                    b[32..40].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
                    b
                },
                "do not cover",
            ),
        ];
        for (b, want) in cases {
            let e = Table::decode_unverified(&b, "x").unwrap_err().to_string();
            assert!(e.contains(want), "{e} (wanted {want})");
        }
    }
}
