//! Checking a TPM quote against the expected measurements
//! (`strata attest verify`, docs/attestation.md).
//!
//! A quote here is what `tests/tpm/tpm-tool.c quote NONCE` prints in the
//! guest: the attestation key's P-256 point, the `TPMS_ATTEST` the TPM
//! signed, and its ECDSA signature (r, s), as three lines
//!
//! ```text
//! quote-key X Y
//! quote-attest HEX
//! quote-sig R S
//! ```
//!
//! Checks, in order (each failure is one [`AttestError`]):
//!
//! | check | against |
//! | --- | --- |
//! | the key | the key the verifier trusts for this TPM (`--key`), if given |
//! | the signature | ECDSA P-256 with SHA-256 over the `TPMS_ATTEST` bytes (TPM 2.0 Part 1 §20.2.2; the key's scheme) |
//! | `magic`, `type` | `TPM_GENERATED_VALUE`, `TPM_ST_ATTEST_QUOTE` (Part 2 §10.12.8): the TPM made this structure itself |
//! | `extraData` | the verifier's nonce (freshness) |
//! | `pcrSelect` | SHA-256 PCRs 0–9, exactly |
//! | `pcrDigest` | SHA-256 of the expected PCR 0..9 values concatenated in order (Part 1 §18.5) |
//!
//! A VM's evidence from Strata's hypervisor (strata_hypervisor::attest,
//! `strata attest verify-vm`) is checked by [`verify_vm_evidence`], in
//! order: the signature with the hypervisor's public key
//! (`strata run --attest-pubkey`), the nonce, the protected flag (unless
//! the verifier accepts an ordinary VM), the measurement against
//! [`crate::hyp::vm_measurement`] of the same configuration, and the
//! hypervisor against the SHA-256 of the Strata executable the verifier
//! expects.

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};

use crate::measure::{hex, sha256, Measurements, Sha256Digest};

/// The PCRs a quote covers: SHA-256 PCRs 0–9.
pub const QUOTED_PCRS: std::ops::RangeInclusive<u32> = 0..=9;
const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttestError {
    #[error("quote file: {0}")]
    Format(String),
    #[error("quote REJECTED: signed by key {got}, not the trusted key {want}")]
    Key { got: String, want: String },
    #[error("quote REJECTED: the signature does not verify with the quote's key")]
    Signature,
    #[error("quote REJECTED: not a TPM-generated quote structure")]
    NotAQuote,
    #[error("quote REJECTED: its nonce is {got}, not {want}")]
    Nonce { got: String, want: String },
    #[error("quote REJECTED: it covers other PCRs than SHA-256 0-9")]
    Selection,
    #[error("quote REJECTED: its PCR digest {got} is not that of the expected PCRs ({want})")]
    Pcrs { got: String, want: String },
    /// A VM's evidence (`strata attest verify-vm`) that does not verify.
    #[error("evidence REJECTED: {0}")]
    Evidence(String),
}

/// What the evidence of a VM is checked against.
pub struct VmExpected<'a> {
    pub key: &'a [u8; 32],
    pub nonce: &'a [u8],
    pub measurement: &'a [u8; 32],
    /// SHA-256 of the Strata executable trusted to run the VM.
    pub hypervisor: &'a [u8; 32],
    /// Accept evidence of an ordinary (not protected) VM.
    pub allow_unprotected: bool,
}

/// Checks a VM's evidence (`bytes`: the evidence, or its hex as the guest
/// printed it; module table).
pub fn verify_vm_evidence(
    bytes: &[u8],
    want: &VmExpected<'_>,
) -> Result<strata_hypervisor::attest::Evidence, AttestError> {
    use strata_hypervisor::attest::{Evidence, EVIDENCE_LEN};
    let raw = if bytes.len() == EVIDENCE_LEN {
        bytes.to_vec()
    } else {
        let text: String = String::from_utf8_lossy(bytes).split_whitespace().collect();
        unhex(&text)?
    };
    let e = Evidence::decode(&raw, want.key).map_err(|e| AttestError::Evidence(e.to_string()))?;
    if e.nonce[..] != *want.nonce {
        return Err(AttestError::Evidence(format!("its nonce is {}, not {}", hex(&e.nonce), hex(want.nonce))));
    }
    if !e.protected && !want.allow_unprotected {
        return Err(AttestError::Evidence("the VM is not protected (--allow-unprotected accepts that)".into()));
    }
    if e.measurement != *want.measurement {
        return Err(AttestError::Evidence(format!(
            "the VM's measurement is {}, not the expected {} (another kernel, initrd, command line, device tree, memory size or vCPU count)",
            hex(&e.measurement),
            hex(want.measurement)
        )));
    }
    if e.hypervisor != *want.hypervisor {
        return Err(AttestError::Evidence(format!(
            "the hypervisor is the executable with SHA-256 {}, not the expected {}",
            hex(&e.hypervisor),
            hex(want.hypervisor)
        )));
    }
    Ok(e)
}

/// A parsed quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// The key as an uncompressed SEC1 point (04 || X || Y).
    pub key: Vec<u8>,
    pub attest: Vec<u8>,
    pub r: Vec<u8>,
    pub s: Vec<u8>,
}

/// Hex text to bytes.
pub fn unhex(s: &str) -> Result<Vec<u8>, AttestError> {
    let bad = || AttestError::Format(format!("not hex: {s:.40}"));
    if s.len() % 2 != 0 {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect()
}

/// A P-256 key written as "X Y" (hex), as in a quote's `quote-key` line.
pub fn parse_key(text: &str) -> Result<Vec<u8>, AttestError> {
    let f: Vec<&str> = text.split_whitespace().collect();
    let f = f.strip_prefix(&["quote-key"]).unwrap_or(&f);
    match f {
        [x, y] => {
            let (x, y) = (unhex(x)?, unhex(y)?);
            if x.len() != 32 || y.len() != 32 {
                return Err(AttestError::Format("a P-256 key is two 32-byte coordinates".into()));
            }
            Ok([&[4u8][..], &x, &y].concat())
        }
        _ => Err(AttestError::Format("expected a key as X Y (hex)".into())),
    }
}

impl Quote {
    /// Reads the three lines (anything else, such as console noise around
    /// them, is ignored; the last of each kind counts).
    pub fn parse(text: &str) -> Result<Quote, AttestError> {
        let (mut key, mut attest, mut sig) = (None, None, None);
        for line in text.lines() {
            let line = line.trim_matches(|c: char| c.is_whitespace() || c == '\r');
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["quote-key", ..] => key = Some(parse_key(line)?),
                ["quote-attest", a] => attest = Some(unhex(a)?),
                ["quote-sig", r, s] => sig = Some((unhex(r)?, unhex(s)?)),
                _ => {}
            }
        }
        let missing = |what: &str| AttestError::Format(format!("no {what} line"));
        let (r, s) = sig.ok_or_else(|| missing("quote-sig"))?;
        Ok(Quote {
            key: key.ok_or_else(|| missing("quote-key"))?,
            attest: attest.ok_or_else(|| missing("quote-attest"))?,
            r,
            s,
        })
    }

    /// Checks the quote (module table). `trusted`: the key the verifier
    /// trusts for this TPM, as an SEC1 point.
    pub fn verify(&self, nonce: &[u8], expected: &Measurements, trusted: Option<&[u8]>) -> Result<(), AttestError> {
        if let Some(t) = trusted {
            if t != self.key.as_slice() {
                return Err(AttestError::Key { got: hex(&self.key), want: hex(t) });
            }
        }
        let key = VerifyingKey::from_sec1_bytes(&self.key).map_err(|_| AttestError::Signature)?;
        let (mut rs, pad) = ([0u8; 64], |v: &[u8]| v.len() <= 32);
        if !pad(&self.r) || !pad(&self.s) {
            return Err(AttestError::Signature);
        }
        rs[32 - self.r.len()..32].copy_from_slice(&self.r);
        rs[64 - self.s.len()..].copy_from_slice(&self.s);
        let sig = Signature::from_slice(&rs).map_err(|_| AttestError::Signature)?;
        key.verify(&self.attest, &sig).map_err(|_| AttestError::Signature)?;

        let a = Reader(&self.attest);
        let mut at = 0;
        if a.u32(&mut at)? != TPM_GENERATED_VALUE || a.u16(&mut at)? != TPM_ST_ATTEST_QUOTE {
            return Err(AttestError::NotAQuote);
        }
        a.sized(&mut at)?; // qualifiedSigner
        let extra = a.sized(&mut at)?;
        if extra != nonce {
            return Err(AttestError::Nonce { got: hex(extra), want: hex(nonce) });
        }
        at += 17 + 8; // clockInfo, firmwareVersion
        let count = a.u32(&mut at)?;
        let alg = a.u16(&mut at)?;
        let size = a.bytes(&mut at, 1)?[0] as usize;
        let select = a.bytes(&mut at, size)?;
        if count != 1 || alg != 0x000b || select != [0xff, 0x03, 0x00] {
            return Err(AttestError::Selection);
        }
        let digest = a.sized(&mut at)?;
        let want = pcr_digest(expected);
        if digest != want {
            return Err(AttestError::Pcrs { got: hex(digest), want: hex(&want) });
        }
        Ok(())
    }
}

/// SHA-256 over the expected PCR 0..9 values, in order (a PCR no event
/// extends is zero).
pub fn pcr_digest(m: &Measurements) -> Sha256Digest {
    let pcrs = m.pcrs();
    let all: Vec<u8> = QUOTED_PCRS.flat_map(|p| pcrs.get(&p).copied().unwrap_or([0; 32])).collect();
    sha256(&all)
}

/// Big-endian reads that fail instead of panicking on a short structure.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&self, at: &mut usize, n: usize) -> Result<&'a [u8], AttestError> {
        let b = self.0.get(*at..at.saturating_add(n)).ok_or(AttestError::NotAQuote)?;
        *at += n;
        Ok(b)
    }
    fn u16(&self, at: &mut usize) -> Result<u16, AttestError> {
        Ok(u16::from_be_bytes(self.bytes(at, 2)?.try_into().expect("2 bytes")))
    }
    fn u32(&self, at: &mut usize) -> Result<u32, AttestError> {
        Ok(u32::from_be_bytes(self.bytes(at, 4)?.try_into().expect("4 bytes")))
    }
    /// A TPM2B: u16 size, then the bytes.
    fn sized(&self, at: &mut usize) -> Result<&'a [u8], AttestError> {
        let n = self.u16(at)? as usize;
        self.bytes(at, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::EventType;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::SigningKey;

    /// A TPMS_ATTEST for a quote, written out from Part 2 §10.12.8.
    fn attest(nonce: &[u8], select: [u8; 3], digest: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&0xff54_4347u32.to_be_bytes());
        a.extend_from_slice(&0x8018u16.to_be_bytes());
        a.extend_from_slice(&[0, 2, 0xaa, 0xbb]); // qualifiedSigner
        a.extend_from_slice(&(nonce.len() as u16).to_be_bytes());
        a.extend_from_slice(nonce);
        a.extend_from_slice(&[0; 25]); // clockInfo, firmwareVersion
        a.extend_from_slice(&[0, 0, 0, 1, 0, 0x0b, 3]);
        a.extend_from_slice(&select);
        a.extend_from_slice(&(digest.len() as u16).to_be_bytes());
        a.extend_from_slice(digest);
        a
    }

    fn expected() -> Measurements {
        let mut m = Measurements::default();
        m.push(4, EventType::Ipl, sha256(b"kernel"), b"kernel");
        m.push_separators();
        m
    }

    fn signed(key: &SigningKey, attest: Vec<u8>) -> Quote {
        let sig: Signature = key.sign(&attest);
        let b = sig.to_bytes();
        let point = key.verifying_key().to_encoded_point(false);
        Quote { key: point.as_bytes().to_vec(), attest, r: b[..32].to_vec(), s: b[32..].to_vec() }
    }

    #[test]
    fn a_good_quote_verifies_and_each_change_is_rejected() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let nonce = [1, 2, 3, 4];
        let m = expected();
        let q = signed(&key, attest(&nonce, [0xff, 3, 0], &pcr_digest(&m)));
        // Through the text form, as tpm-tool prints it.
        let text = format!(
            "noise\nquote-key {} {}\nquote-attest {}\r\nquote-sig {} {}\n",
            hex(&q.key[1..33]),
            hex(&q.key[33..]),
            hex(&q.attest),
            hex(&q.r),
            hex(&q.s)
        );
        let q = Quote::parse(&text).unwrap();
        q.verify(&nonce, &m, Some(&q.key.clone())).unwrap();
        assert!(matches!(q.verify(&[9], &m, None), Err(AttestError::Nonce { .. })));
        let mut other = expected();
        other.push(9, EventType::Ipl, sha256(b"initrd"), b"initrd");
        assert!(matches!(q.verify(&nonce, &other, None), Err(AttestError::Pcrs { .. })));
        let mut bad = q.clone();
        bad.s[5] ^= 1;
        assert_eq!(bad.verify(&nonce, &m, None), Err(AttestError::Signature));
        let mut bad = q.clone();
        bad.attest[20] ^= 1; // the nonce, under the signature
        assert_eq!(bad.verify(&nonce, &m, None), Err(AttestError::Signature));
        let stranger = SigningKey::from_slice(&[8u8; 32]).unwrap();
        let q2 = signed(&stranger, q.attest.clone());
        q2.verify(&nonce, &m, None).unwrap();
        assert!(matches!(q2.verify(&nonce, &m, Some(&q.key)), Err(AttestError::Key { .. })));
        let q3 = signed(&key, attest(&nonce, [0xff, 1, 0], &pcr_digest(&m)));
        assert_eq!(q3.verify(&nonce, &m, None), Err(AttestError::Selection));
        let q4 = signed(&key, q.attest[..30].to_vec());
        assert_eq!(q4.verify(&nonce, &m, None), Err(AttestError::NotAQuote));
    }

    #[test]
    fn malformed_files_are_format_errors() {
        for text in ["", "quote-key 00 11\n", "quote-key zz zz", "quote-attest 0\nquote-sig 00 00\nquote-key"] {
            assert!(matches!(Quote::parse(text), Err(AttestError::Format(_))), "{text:?}");
        }
    }
}
