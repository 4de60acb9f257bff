//! Evidence for VMs (issue 17, docs/attestation.md "Evidence for VMs"):
//! what the hypervisor core measures when it creates a VM, the key it signs
//! with, and the evidence a VM gets through Strata's SBI extension.
//!
//! | step | who | what |
//! | --- | --- | --- |
//! | start | [`Hypervisor::new`](crate::Hypervisor::new) | an Ed25519 [`AttestKey`] from the host's `getrandom`; it lives only in the core's memory |
//! | VM created | `create_vm` | [`measure`]: SHA-256 over the VM's initial state (below), kept with the VM |
//! | guest asks | SBI `STRATA` `get_evidence` ([`crate::sbi`]) | the core reads the guest's 32-byte nonce, signs [`Evidence`] and writes it to the guest's buffer |
//! | verifier | `strata attest verify-vm` | [`Evidence::decode`] checks the signature with the public key, then nonce, measurement and hypervisor |
//!
//! The measurement covers, in this order (all integers little-endian):
//! the label [`MEASUREMENT_LABEL`], the memory size, the vCPU count, the
//! entry point and the device tree's address (vCPU 0 starts at the entry
//! in VS-mode with a0 = 0 and a1 = the device tree: its whole start state),
//! whether the VM is protected, then each image the core loads, by
//! guest-physical address: address, length, SHA-256 of the bytes. The
//! device tree is measured with its `rng-seed` and `kaslr-seed` zeroed
//! (the platform hands that copy over): the seeds are fresh secret entropy
//! each boot, as on the bare board's PCR 1.
//!
//! [`Evidence`] layout ([`EVIDENCE_LEN`] bytes, integers little-endian):
//!
//! | offset | bytes | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic [`EVIDENCE_MAGIC`] |
//! | 8 | 4 | format version, [`EVIDENCE_VERSION`] |
//! | 12 | 4 | flags: bit 0, the VM is protected |
//! | 16 | 32 | the VM's measurement |
//! | 48 | 32 | the hypervisor: SHA-256 of the running Strata executable |
//! | 80 | 32 | the guest's nonce |
//! | 112 | 64 | Ed25519 signature over bytes 0..112 |
//!
//! Invariants: the secret key is never copied out of [`AttestKey`] (no
//! `Clone`, no serialisation, its `Debug` shows the public key only, and
//! `ed25519-dalek` zeroes it on drop); only the core signs, and only this
//! layout, so a signature cannot be replayed as something else.

use std::sync::OnceLock;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

pub const EVIDENCE_MAGIC: [u8; 8] = *b"STRATAEV";
pub const EVIDENCE_VERSION: u32 = 1;
/// The bytes the signature covers.
pub const SIGNED_LEN: usize = 112;
pub const EVIDENCE_LEN: usize = SIGNED_LEN + 64;
pub const NONCE_LEN: usize = 32;
/// The first bytes hashed into a measurement (domain separation).
pub const MEASUREMENT_LABEL: &[u8] = b"strata vm measurement v1\0";
const FLAG_PROTECTED: u32 = 1;

/// What [`measure`] covers: a VM's initial state.
pub struct Initial<'a> {
    pub memory: u64,
    pub vcpus: u32,
    pub entry: u64,
    pub dtb: u64,
    pub protected: bool,
    /// (guest-physical address, bytes as measured), in load order.
    pub images: &'a [(u64, &'a [u8])],
}

/// The measurement of a VM's initial state (the module's table).
pub fn measure(vm: &Initial<'_>) -> Digest32 {
    let mut h = Sha256::new();
    h.update(MEASUREMENT_LABEL);
    h.update(vm.memory.to_le_bytes());
    h.update(vm.vcpus.to_le_bytes());
    h.update(vm.entry.to_le_bytes());
    h.update(vm.dtb.to_le_bytes());
    h.update([vm.protected as u8]);
    for (gpa, bytes) in vm.images {
        h.update(gpa.to_le_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(Sha256::digest(bytes));
    }
    h.finalize().into()
}

/// SHA-256 of the file at `path`, read in pieces: what evidence names a
/// hypervisor by, here and in a verifier (`strata attest verify-vm`).
pub fn file_digest(path: &std::path::Path) -> std::io::Result<Digest32> {
    let mut h = Sha256::new();
    std::io::copy(&mut std::io::BufReader::new(std::fs::File::open(path)?), &mut h)?;
    Ok(h.finalize().into())
}

/// SHA-256 of the running executable, once per process (all zeros if it
/// cannot be read: a verifier that expects a binary then rejects).
pub fn hypervisor_digest() -> Digest32 {
    static D: OnceLock<Digest32> = OnceLock::new();
    *D.get_or_init(|| file_digest("/proc/self/exe".as_ref()).unwrap_or([0; 32]))
}

/// The core's signing key.
pub struct AttestKey(SigningKey);

impl std::fmt::Debug for AttestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AttestKey(public {})", hex(&self.public()))
    }
}

impl AttestKey {
    /// A fresh key from the host's random source.
    pub fn generate() -> Result<AttestKey, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)?;
        let key = SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(AttestKey(key))
    }

    /// The public key (what `strata run --attest-pubkey` writes).
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// Evidence for a VM, signed.
    pub fn sign(&self, e: &Evidence) -> [u8; EVIDENCE_LEN] {
        let mut out = [0u8; EVIDENCE_LEN];
        out[..SIGNED_LEN].copy_from_slice(&e.body());
        let sig = self.0.sign(&out[..SIGNED_LEN]).to_bytes();
        out[SIGNED_LEN..].copy_from_slice(&sig);
        out
    }
}

/// What evidence says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub protected: bool,
    pub measurement: Digest32,
    pub hypervisor: Digest32,
    pub nonce: [u8; NONCE_LEN],
}

/// Why evidence was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvidenceError {
    Length(usize),
    Magic,
    Version(u32),
    Signature,
}

impl std::fmt::Display for EvidenceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvidenceError::Length(n) => write!(f, "evidence is {n} bytes, not {EVIDENCE_LEN}"),
            EvidenceError::Magic => write!(f, "not Strata VM evidence (no STRATAEV magic)"),
            EvidenceError::Version(v) => {
                write!(f, "evidence format version {v}, but this Strata reads only {EVIDENCE_VERSION}")
            }
            EvidenceError::Signature => write!(f, "the signature does not verify with the given public key"),
        }
    }
}

impl std::error::Error for EvidenceError {}

impl Evidence {
    fn body(&self) -> [u8; SIGNED_LEN] {
        let mut b = [0u8; SIGNED_LEN];
        b[0..8].copy_from_slice(&EVIDENCE_MAGIC);
        b[8..12].copy_from_slice(&EVIDENCE_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(if self.protected { FLAG_PROTECTED } else { 0 }).to_le_bytes());
        b[16..48].copy_from_slice(&self.measurement);
        b[48..80].copy_from_slice(&self.hypervisor);
        b[80..112].copy_from_slice(&self.nonce);
        b
    }

    /// Checks `bytes` against the public key `key` and returns what they
    /// say; the caller compares nonce, measurement and hypervisor with what
    /// it expects.
    pub fn decode(bytes: &[u8], key: &[u8; 32]) -> Result<Evidence, EvidenceError> {
        if bytes.len() != EVIDENCE_LEN {
            return Err(EvidenceError::Length(bytes.len()));
        }
        if bytes[0..8] != EVIDENCE_MAGIC {
            return Err(EvidenceError::Magic);
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != EVIDENCE_VERSION {
            return Err(EvidenceError::Version(version));
        }
        let key = VerifyingKey::from_bytes(key).map_err(|_| EvidenceError::Signature)?;
        let sig = Signature::from_bytes(bytes[SIGNED_LEN..].try_into().expect("64 bytes"));
        key.verify(&bytes[..SIGNED_LEN], &sig).map_err(|_| EvidenceError::Signature)?;
        let d = |r: std::ops::Range<usize>| -> Digest32 { bytes[r].try_into().expect("32 bytes") };
        let flags = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
        Ok(Evidence {
            protected: flags & FLAG_PROTECTED != 0,
            measurement: d(16..48),
            hypervisor: d(48..80),
            nonce: d(80..112),
        })
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Evidence {
        Evidence { protected: true, measurement: [1; 32], hypervisor: [2; 32], nonce: [3; 32] }
    }

    #[test]
    fn signed_evidence_decodes_and_any_changed_byte_is_refused() {
        let key = AttestKey::generate().unwrap();
        let bytes = key.sign(&sample());
        assert_eq!(Evidence::decode(&bytes, &key.public()), Ok(sample()));
        for i in 0..EVIDENCE_LEN {
            let mut b = bytes;
            b[i] ^= 0x40;
            assert!(Evidence::decode(&b, &key.public()).is_err(), "byte {i} changed, still accepted");
        }
        let other = AttestKey::generate().unwrap();
        assert_eq!(Evidence::decode(&bytes, &other.public()), Err(EvidenceError::Signature));
        assert_eq!(Evidence::decode(&bytes[..100], &key.public()), Err(EvidenceError::Length(100)));
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let key = AttestKey::generate().unwrap();
        let b = key.sign(&sample());
        assert_eq!(&b[0..8], b"STRATAEV");
        assert_eq!(b[8..16], [1, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!((b[16], b[47], b[48], b[79], b[80], b[111]), (1, 1, 2, 2, 3, 3));
    }

    #[test]
    fn the_debug_form_shows_no_secret() {
        let key = AttestKey::generate().unwrap();
        let shown = format!("{key:?}");
        let secret = hex(&key.0.to_bytes());
        assert!(!shown.contains(&secret) && shown.contains(&hex(&key.public())), "{shown}");
    }

    #[test]
    fn every_part_of_the_initial_state_changes_the_measurement() {
        let (k, d) = (vec![7u8; 100], vec![9u8; 50]);
        let images: [(u64, &[u8]); 2] = [(0x8020_0000, &k), (0x9fe0_0000, &d)];
        let base = Initial {
            memory: 256 << 20,
            vcpus: 2,
            entry: 0x8020_0000,
            dtb: 0x9fe0_0000,
            protected: true,
            images: &images,
        };
        let m = measure(&base);
        let k2 = {
            let mut k2 = k.clone();
            k2[99] = 8;
            k2
        };
        let images2: [(u64, &[u8]); 2] = [(0x8020_0000, &k2), (0x9fe0_0000, &d)];
        let moved: [(u64, &[u8]); 2] = [(0x8040_0000, &k), (0x9fe0_0000, &d)];
        let variants = [
            Initial { memory: 512 << 20, ..base },
            Initial { vcpus: 1, ..base },
            Initial { entry: 0x8020_0004, ..base },
            Initial { dtb: 0x9fc0_0000, ..base },
            Initial { protected: false, ..base },
            Initial { images: &images2, ..base },
            Initial { images: &moved, ..base },
            Initial { images: &images[..1], ..base },
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(measure(v), m, "variant {i} measured the same");
        }
        assert_eq!(measure(&Initial { ..base }), m, "deterministic");
    }
}
