//! Measured direct boot: what Strata measures before the first instruction,
//! into which PCR, and the TCG event log it hands the guest
//! (docs/attestation.md).
//!
//! | order | PCR | event type | digest (SHA-256) of | event data |
//! | --- | --- | --- | --- | --- |
//! | 0 | — | `EV_NO_ACTION` | (log header, not extended) | `TCG_EfiSpecIDEvent` "Spec ID Event03", SHA-256 only |
//! | 1 | 0 | `EV_POST_CODE` | the firmware file (`--bios`), as given | "firmware" |
//! | 2 | 1 | `EV_TABLE_OF_DEVICES` | the device tree, with `/chosen/rng-seed` and `kaslr-seed` zeroed | "devicetree" |
//! | 3 | 4 | `EV_IPL` | the kernel file (`--kernel`), as given | "kernel" |
//! | 4 | 8 | `EV_IPL` | the command line's bytes (no NUL) | the command line |
//! | 5 | 9 | `EV_IPL` | the initrd file (`--initrd`), as given | "initrd" |
//! | 6–13 | 0–7 | `EV_SEPARATOR` | the 4 bytes 00 00 00 00 | 00 00 00 00 |
//!
//! Conventions followed, from the TCG PC Client Platform Firmware Profile
//! (PFP) 1.05, §3.3.4 (PCR usage) and §10.4.1 (event types): PCR 0 holds
//! platform firmware code, PCR 1 platform configuration (the device tree is
//! it: hart count, memory size, devices), PCR 4 the IPL code that the
//! platform hands control to; `EV_SEPARATOR` with the value 0 closes PCRs
//! 0–7 before the OS runs (§3.3.2.2). Departures, and why: the OS kernel
//! is measured directly into PCR 4 (no boot loader in between: Strata *is*
//! the loader), and the command line and initrd go to PCRs 8 and 9, the
//! PCRs GRUB and systemd-boot use for the OS loader's inputs (PFP leaves
//! 8–15 to the OS). Firmware, kernel and initrd digests are those of the
//! files as given, so a verifier reproduces them with `sha256sum`. The
//! device tree is measured with its two seeds zeroed: they are fresh random
//! bytes each boot (the guest's entropy), so measuring them would make PCR 1
//! unpredictable, and a digest of secret entropy is itself a leak. A missing
//! firmware or initrd is simply not measured (no event).
//!
//! The log is the crypto-agile format (PFP §10.2.1–10.2.2): a
//! `TCG_PCR_EVENT` header (SHA-1-sized, zero digest) whose data is the
//! `TCG_EfiSpecIDEvent`, then `TCG_PCR_EVENT2` entries with one SHA-256
//! digest each; all integers little-endian. TPM commands are big-endian
//! (TPM 2.0 Part 1 §18).

use std::collections::BTreeMap;
use std::fmt::Write;

use sha2::{Digest, Sha256};

/// The event log's region in guest RAM (`linux,sml-size`): Linux copies
/// the whole region and stops at the first event that is not one, so the
/// rest stays zero.
pub const EVENT_LOG_SIZE: u64 = 64 << 10;

pub type Sha256Digest = [u8; 32];

/// `TPM_ALG_SHA256` (TPM 2.0 Part 2 §6.3).
const TPM_ALG_SHA256: u16 = 0x000b;

/// Event types (PFP §10.4.1, Table 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum EventType {
    PostCode = 0x1,
    NoAction = 0x3,
    Separator = 0x4,
    TableOfDevices = 0xb,
    Ipl = 0xd,
}

impl EventType {
    pub fn name(self) -> &'static str {
        match self {
            EventType::PostCode => "EV_POST_CODE",
            EventType::NoAction => "EV_NO_ACTION",
            EventType::Separator => "EV_SEPARATOR",
            EventType::TableOfDevices => "EV_TABLE_OF_DEVICES",
            EventType::Ipl => "EV_IPL",
        }
    }
}

/// One measurement: extended into `pcr`, logged with `data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub pcr: u32,
    pub kind: EventType,
    pub digest: Sha256Digest,
    pub data: Vec<u8>,
}

/// PCRs closed by an `EV_SEPARATOR` (PFP §3.3.2.2).
pub const SEPARATOR_PCRS: std::ops::RangeInclusive<u32> = 0..=7;
pub const PCR_FIRMWARE: u32 = 0;
pub const PCR_DEVICE_TREE: u32 = 1;
pub const PCR_KERNEL: u32 = 4;
pub const PCR_CMDLINE: u32 = 8;
pub const PCR_INITRD: u32 = 9;

pub fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256::digest(bytes).into()
}

/// A digest computed piece by piece (files are hashed in chunks).
#[derive(Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn finish(self) -> Sha256Digest {
        self.0.finalize().into()
    }
}

/// The boot's measurements, in the order they are extended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Measurements {
    pub events: Vec<Event>,
}

impl Measurements {
    pub fn push(&mut self, pcr: u32, kind: EventType, digest: Sha256Digest, data: &[u8]) {
        self.events.push(Event { pcr, kind, digest, data: data.to_vec() });
    }

    /// Closes PCRs 0–7 with `EV_SEPARATOR` (value 0: no error).
    pub fn push_separators(&mut self) {
        let value = 0u32.to_le_bytes();
        for pcr in SEPARATOR_PCRS {
            self.push(pcr, EventType::Separator, sha256(&value), &value);
        }
    }

    /// The SHA-256 PCR values the events give, from PCRs that start at
    /// zero (locality 0, TPM2_Startup(CLEAR)): PCR := SHA-256(PCR || digest)
    /// (TPM 2.0 Part 1 §17.2). Only the PCRs that are extended are listed.
    pub fn pcrs(&self) -> BTreeMap<u32, Sha256Digest> {
        replay(&self.events)
    }

    /// The TCG crypto-agile event log (module documentation).
    pub fn event_log(&self) -> Vec<u8> {
        let mut log = Vec::new();
        // TCG_PCR_EVENT: pcrIndex, eventType, digest[20], eventSize, event.
        let spec_id = spec_id_event();
        log.extend_from_slice(&0u32.to_le_bytes());
        log.extend_from_slice(&(EventType::NoAction as u32).to_le_bytes());
        log.extend_from_slice(&[0u8; 20]);
        log.extend_from_slice(&(spec_id.len() as u32).to_le_bytes());
        log.extend_from_slice(&spec_id);
        for e in &self.events {
            // TCG_PCR_EVENT2: pcrIndex, eventType, TPML_DIGEST_VALUES
            // {count, {hashAlg, digest}}, eventSize, event.
            log.extend_from_slice(&e.pcr.to_le_bytes());
            log.extend_from_slice(&(e.kind as u32).to_le_bytes());
            log.extend_from_slice(&1u32.to_le_bytes());
            log.extend_from_slice(&TPM_ALG_SHA256.to_le_bytes());
            log.extend_from_slice(&e.digest);
            log.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
            log.extend_from_slice(&e.data);
        }
        log
    }

    /// What `strata measure` prints: the events, then the PCRs.
    pub fn report(&self) -> String {
        let mut s = String::new();
        for (i, e) in self.events.iter().enumerate() {
            let data = if e.data.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
                format!("{:?}", String::from_utf8_lossy(&e.data))
            } else {
                hex(&e.data)
            };
            let _ = writeln!(s, "event {i} pcr {} {} sha256 {} {data}", e.pcr, e.kind.name(), hex(&e.digest));
        }
        for (pcr, v) in self.pcrs() {
            let _ = writeln!(s, "pcr {pcr} sha256 {}", hex(&v));
        }
        let _ = writeln!(s, "event-log bytes {}", self.event_log().len());
        s
    }
}

/// `TCG_EfiSpecIDEvent` (PFP §10.2.1.1, Table 5): signature, platformClass
/// 0 (client), spec version 2.0 errata 0, uintnSize 2 (64-bit UINTN), one
/// algorithm (SHA-256, 32 bytes), no vendor information.
fn spec_id_event() -> Vec<u8> {
    let mut v = b"Spec ID Event03\0".to_vec();
    v.extend_from_slice(&0u32.to_le_bytes()); // platformClass
    v.extend_from_slice(&[0, 2, 0, 2]); // specVersionMinor, Major, specErrata, uintnSize
    v.extend_from_slice(&1u32.to_le_bytes()); // numberOfAlgorithms
    v.extend_from_slice(&TPM_ALG_SHA256.to_le_bytes());
    v.extend_from_slice(&32u16.to_le_bytes());
    v.push(0); // vendorInfoSize
    v
}

/// PCR values from `events` (each SHA-256 PCR starts at zero).
pub fn replay(events: &[Event]) -> BTreeMap<u32, Sha256Digest> {
    let mut pcrs = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind != EventType::NoAction) {
        let old: &mut Sha256Digest = pcrs.entry(e.pcr).or_insert([0; 32]);
        let mut h = Sha256::new();
        h.update(*old);
        h.update(e.digest);
        *old = h.finalize().into();
    }
    pcrs
}

pub use strata_hypervisor::attest::hex;

/// TPM 2.0 commands Strata sends itself (TPM 2.0 Part 3).
pub mod command {
    use super::{Sha256Digest, TPM_ALG_SHA256};

    const TPM_ST_NO_SESSIONS: u16 = 0x8001;
    const TPM_ST_SESSIONS: u16 = 0x8002;
    const TPM_CC_STARTUP: u32 = 0x144;
    const TPM_CC_PCR_EXTEND: u32 = 0x182;
    const TPM_CC_PCR_READ: u32 = 0x17e;
    const TPM_SU_CLEAR: u16 = 0x0000;
    /// The password authorization session (Part 2 §7.4, `TPM_RS_PW`).
    const TPM_RS_PW: u32 = 0x4000_0009;
    /// TPM_RC_INITIALIZE: Startup was already done (swtpm started with a
    /// startup flag).
    pub const TPM_RC_INITIALIZE: u32 = 0x100;

    fn finish(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
        let mut c = Vec::with_capacity(10 + body.len());
        c.extend_from_slice(&tag.to_be_bytes());
        c.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
        c.extend_from_slice(&cc.to_be_bytes());
        c.extend_from_slice(body);
        c
    }

    /// TPM2_Startup(TPM_SU_CLEAR) (Part 3 §9.3).
    pub fn startup_clear() -> Vec<u8> {
        finish(TPM_ST_NO_SESSIONS, TPM_CC_STARTUP, &TPM_SU_CLEAR.to_be_bytes())
    }

    /// TPM2_PCR_Extend(pcr, SHA-256 digest) with an empty password
    /// authorization (Part 3 §22.2; the PCR handle is its index).
    pub fn pcr_extend(pcr: u32, digest: &Sha256Digest) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&pcr.to_be_bytes());
        // authorizationSize, then TPMS_AUTH_COMMAND: handle, empty nonce,
        // attributes 0, empty hmac.
        b.extend_from_slice(&9u32.to_be_bytes());
        b.extend_from_slice(&TPM_RS_PW.to_be_bytes());
        b.extend_from_slice(&0u16.to_be_bytes());
        b.push(0);
        b.extend_from_slice(&0u16.to_be_bytes());
        // TPML_DIGEST_VALUES: count 1, TPMT_HA { SHA-256, digest }.
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
        b.extend_from_slice(digest);
        finish(TPM_ST_SESSIONS, TPM_CC_PCR_EXTEND, &b)
    }

    /// TPM2_PCR_Read of one SHA-256 PCR (Part 3 §22.4).
    pub fn pcr_read(pcr: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
        b.push(3);
        let mut sel = [0u8; 3];
        if let Some(byte) = sel.get_mut(pcr as usize / 8) {
            *byte = 1 << (pcr % 8);
        }
        b.extend_from_slice(&sel);
        finish(TPM_ST_NO_SESSIONS, TPM_CC_PCR_READ, &b)
    }

    /// The response code of a response (`None`: not a response).
    pub fn response_code(r: &[u8]) -> Option<u32> {
        (r.len() >= 10).then(|| u32::from_be_bytes([r[6], r[7], r[8], r[9]]))
    }

    /// The digest a TPM2_PCR_Read response for one SHA-256 PCR carries.
    pub fn pcr_read_digest(r: &[u8]) -> Option<Sha256Digest> {
        // header 10, pcrUpdateCounter 4, TPML_PCR_SELECTION 10, count 4,
        // TPM2B_DIGEST size 2.
        if response_code(r)? != 0 || r.len() < 62 || u16::from_be_bytes([r[28], r[29]]) != 32 {
            return None;
        }
        r[30..62].try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// SHA-256 of four zero bytes, the separator digest every PFP log
    /// carries (known answer, e.g. from `printf '\0\0\0\0' | sha256sum`).
    const SEPARATOR_DIGEST: &str = "df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119";

    /// A reader of the crypto-agile log written from PFP §10.2 (not from
    /// the writer above): the header event, then TCG_PCR_EVENT2s.
    fn parse(log: &[u8]) -> (Vec<u8>, Vec<Event>) {
        let u32le = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        assert_eq!(u32le(log, 0), 0, "header pcrIndex");
        assert_eq!(u32le(log, 4), 3, "header eventType EV_NO_ACTION");
        assert_eq!(&log[8..28], &[0u8; 20], "header digest");
        let n = u32le(log, 28) as usize;
        let spec = log[32..32 + n].to_vec();
        let mut at = 32 + n;
        let mut events = Vec::new();
        while at < log.len() {
            let pcr = u32le(log, at);
            let kind = match u32le(log, at + 4) {
                1 => EventType::PostCode,
                4 => EventType::Separator,
                0xb => EventType::TableOfDevices,
                0xd => EventType::Ipl,
                t => panic!("event type {t:#x}"),
            };
            assert_eq!(u32le(log, at + 8), 1, "one digest");
            assert_eq!(u16::from_le_bytes([log[at + 12], log[at + 13]]), 0x000b, "SHA-256");
            let digest: Sha256Digest = log[at + 14..at + 46].try_into().unwrap();
            let size = u32le(log, at + 46) as usize;
            let data = log[at + 50..at + 50 + size].to_vec();
            events.push(Event { pcr, kind, digest, data });
            at += 50 + size;
        }
        (spec, events)
    }

    fn sample() -> Measurements {
        let mut m = Measurements::default();
        m.push(PCR_FIRMWARE, EventType::PostCode, sha256(b"fw"), b"firmware");
        m.push(PCR_CMDLINE, EventType::Ipl, sha256(b"console=ttyS0"), b"console=ttyS0");
        m.push_separators();
        m
    }

    #[test]
    fn separator_digest_known_answer() {
        let mut m = Measurements::default();
        m.push_separators();
        assert_eq!(m.events.len(), 8);
        assert!(m.events.iter().all(|e| hex(&e.digest) == SEPARATOR_DIGEST && e.data == [0, 0, 0, 0]));
    }

    #[test]
    fn pcr_extend_known_answer() {
        // PCR 8 after extending SHA-256("abc") once: SHA-256(32 zero bytes
        // || ba7816bf...15ad), computed independently with Python's hashlib.
        let mut m = Measurements::default();
        let abc = unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        m.push(8, EventType::Ipl, abc.try_into().unwrap(), b"abc");
        assert_eq!(hex(&m.pcrs()[&8]), "589f9ffed4c477966bfb8d41f37895b08c69047df8f911d6f3b57fbe08faee8d");
    }

    #[test]
    fn event_log_layout_and_replay() {
        let m = sample();
        let log = m.event_log();
        let (spec, events) = parse(&log);
        // TCG_EfiSpecIDEvent, PFP Table 5, field by field.
        assert_eq!(&spec[..16], b"Spec ID Event03\0");
        assert_eq!(&spec[16..20], &[0, 0, 0, 0], "platformClass");
        assert_eq!(&spec[20..24], &[0, 2, 0, 2], "version 2.0, errata 0, uintnSize 2");
        assert_eq!(&spec[24..28], &[1, 0, 0, 0], "one algorithm");
        assert_eq!(&spec[28..32], &[0x0b, 0, 32, 0], "SHA-256, 32 bytes");
        assert_eq!(spec[32..], [0], "no vendor info");
        assert_eq!(events, m.events);
        assert_eq!(replay(&events), m.pcrs());
        assert_eq!(m.pcrs().keys().copied().collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn commands_are_well_formed() {
        let e = command::pcr_extend(4, &[0x11; 32]);
        // Part 3 §22.2: ST_SESSIONS, size, TPM_CC_PCR_Extend, handle 4.
        assert_eq!(&e[..14], &[0x80, 0x02, 0, 0, 0, 65, 0, 0, 0x01, 0x82, 0, 0, 0, 4]);
        assert_eq!(e.len(), 65);
        assert_eq!(command::startup_clear(), [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0]);
        let r = command::pcr_read(9);
        assert_eq!(&r[10..], &[0, 0, 0, 1, 0, 0x0b, 3, 0, 2, 0]);
    }
}
