//! A TPM 2.0 behind the TIS (FIFO) register interface, over MMIO.
//!
//! The register set is the FIFO interface of the TCG PC Client Platform TPM
//! Profile (PTP) Specification for TPM 2.0 (§6.3 "FIFO Interface" and its
//! register tables; the older TIS 1.3 specification has the same layout).
//! Linux binds it as `tcg,tpm-tis-mmio` (`drivers/char/tpm/tpm_tis.c`).
//! The device knows nothing of what executes commands: a [`TpmBackend`]
//! does (swtpm, in `strata_platform::tpm`; a mock in the tests below).
//!
//! Only locality 0 is implemented. The window is five 4 KiB localities
//! wide, as the PTP lays them out; localities 1–4 read as all ones (their
//! `TPM_ACCESS` as valid-but-inactive) and ignore writes. No interrupt is
//! wired: `TPM_INTF_CAPABILITY` advertises none, so a driver polls
//! `TPM_STS` (Linux does when the device-tree node has no `interrupts`).
//!
//! Registers of locality 0 (offset, width, what it holds here):
//!
//! | offset | register | read | write |
//! | --- | --- | --- | --- |
//! | 0x00 | `TPM_ACCESS` (1) | `tpmRegValidSts`, `activeLocality`, `tpmEstablishment` | `requestUse`/`Seize` take the locality, `activeLocality` gives it up |
//! | 0x08 | `TPM_INT_ENABLE` (4) | as written | kept (no interrupt is ever raised) |
//! | 0x0c | `TPM_INT_VECTOR` (1) | 0 | ignored |
//! | 0x10 | `TPM_INT_STATUS` (4) | 0 | ignored |
//! | 0x14 | `TPM_INTF_CAPABILITY` (4) | [`INTF_CAPABILITY`] | ignored |
//! | 0x18 | `TPM_STS` (4) | `stsValid`, `commandReady`, `dataAvail`, `expect`, `burstCount`, `tpmFamily` = 2.0 | `commandReady`, `tpmGo`, `responseRetry` (one bit a write) |
//! | 0x24 | `TPM_DATA_FIFO` (1–4) | next response byte(s) | next command byte(s) |
//! | 0x30 | `TPM_INTERFACE_ID` (4) | [`INTERFACE_ID`] | ignored |
//! | 0x80 | `TPM_XDATA_FIFO` (to 0xbf) | as the FIFO | as the FIFO |
//! | 0xf00 | `TPM_DID_VID` (4) | [`DID_VID`] | ignored |
//! | 0xf04 | `TPM_RID` (1) | [`RID`] | ignored |
//!
//! The command/response state machine (PTP §6.5.2.x, "TPM_STS" state
//! transitions), as [`State`]; a write that the table does not name for the
//! current state is ignored, as are STS and FIFO writes while locality 0 is
//! not active:
//!
//! | state | STS reads | event | next |
//! | --- | --- | --- | --- |
//! | Idle | commandReady=0 | write `commandReady` | Ready |
//! | Ready | commandReady=1, burstCount = room | FIFO write | Reception |
//! | Reception | expect=1 until the header's `commandSize` bytes are in | FIFO write | Reception (bytes past the size or the buffer are dropped) |
//! | Reception | | write `tpmGo` with expect=0 | Execution (the command goes to the backend) |
//! | Reception | | write `commandReady` | Ready (the command is discarded) |
//! | Execution | dataAvail=0, burstCount=0 | the backend answers | Completion |
//! | Execution | | write `commandReady` | Execution, then Ready when the answer comes (it is discarded) |
//! | Completion | dataAvail=1 while bytes remain, burstCount = bytes left | FIFO read | Completion |
//! | Completion | | write `responseRetry` | Completion, read from the start again |
//! | Completion | | write `commandReady` | Ready |
//!
//! Invariants: the command buffer never holds more than [`TIS_BUFFER_SIZE`]
//! bytes; a response handed to the guest is a well-formed TPM response
//! header whose `responseSize` equals its length and is at most
//! [`TIS_BUFFER_SIZE`] — a backend failure, or a backend answer that is not
//! one, becomes [`fatal_error_response`] (`TPM_RC_FAILURE`), so the guest
//! always sees a TPM error rather than a hang. No guest access panics.

use crate::MmioDevice;

/// The TIS window: five localities of 4 KiB (PTP §6.3.2, "Locality
/// address ranges").
pub const TPM_TIS_MMIO_SIZE: u64 = 5 << 12;
/// The largest command or response the FIFO holds (what swtpm and most
/// TPMs take as `TPM_PT_MAX_COMMAND_SIZE`).
pub const TIS_BUFFER_SIZE: usize = 4096;

const LOCALITY_SIZE: u64 = 1 << 12;

// Register offsets within a locality (PTP, FIFO interface register map).
const ACCESS: u64 = 0x00;
const INT_ENABLE: u64 = 0x08;
const STS: u64 = 0x18;
const DATA_FIFO: u64 = 0x24;
const INTERFACE_ID_REG: u64 = 0x30;
const XDATA_FIFO: u64 = 0x80;
const XDATA_FIFO_END: u64 = 0xc0;
const INTF_CAPABILITY_REG: u64 = 0x14;
const DID_VID_REG: u64 = 0xf00;
const RID_REG: u64 = 0xf04;

// TPM_ACCESS bits.
const ACCESS_ESTABLISHMENT: u8 = 1 << 0;
const ACCESS_REQUEST_USE: u8 = 1 << 1;
const ACCESS_SEIZE: u8 = 1 << 3;
const ACCESS_ACTIVE_LOCALITY: u8 = 1 << 5;
const ACCESS_VALID: u8 = 1 << 7;

// TPM_STS bits.
const STS_RESPONSE_RETRY: u32 = 1 << 1;
const STS_EXPECT: u32 = 1 << 3;
const STS_DATA_AVAIL: u32 = 1 << 4;
const STS_TPM_GO: u32 = 1 << 5;
const STS_COMMAND_READY: u32 = 1 << 6;
const STS_VALID: u32 = 1 << 7;
const STS_BURST_SHIFT: u32 = 8;
/// `tpmFamily` = 01b: TPM 2.0.
const STS_FAMILY_TPM2: u32 = 1 << 26;

/// `TPM_INTF_CAPABILITY`: InterfaceVersion (bits 30:28) = 011b, "TIS 1.3
/// for TPM 2.0"; DataTransferSizeSupport (bits 10:9) = 11b, any size up to
/// 64 bytes; no interrupt kinds (bits 0–4, 7 clear): the driver polls.
pub const INTF_CAPABILITY: u32 = (0b011 << 28) | (0b11 << 9);
/// `TPM_INTERFACE_ID`: InterfaceType (3:0) = 0, the FIFO interface for TPM
/// 2.0; CapFIFO (bit 13); only locality 0 (CapLocality clear).
pub const INTERFACE_ID: u32 = 1 << 13;
/// `TPM_DID_VID`: device 0x0001, vendor 0x5354 ("ST"rata). Not a
/// registered vendor id; Linux only prints it and keys no quirk on it.
pub const DID_VID: u32 = 0x0001_5354;
pub const RID: u8 = 0x01;

/// `TPM_ST_NO_SESSIONS` and `TPM_RC_FAILURE` (TPM 2.0 Part 2, §6.9, §6.6).
const TPM_ST_NO_SESSIONS: u16 = 0x8001;
pub const TPM_RC_FAILURE: u32 = 0x101;
/// A TPM command or response header: tag (2), size (4), code (4).
pub const TPM_HEADER_SIZE: usize = 10;

/// What executes TPM commands for the device. `submit` starts one and must
/// not block for long; `poll` returns its answer once there is one. An
/// `Err` is the backend's failure (its process died, it timed out); the
/// device answers the guest with `TPM_RC_FAILURE`. The backend reports the
/// failure to the operator itself.
pub trait TpmBackend: Send {
    fn submit(&mut self, command: Vec<u8>);
    fn poll(&mut self) -> Option<Result<Vec<u8>, String>>;
}

/// The response a TPM gives when it cannot execute anything:
/// `TPM_ST_NO_SESSIONS`, size 10, `TPM_RC_FAILURE`.
pub fn fatal_error_response() -> Vec<u8> {
    let mut r = Vec::with_capacity(TPM_HEADER_SIZE);
    r.extend_from_slice(&TPM_ST_NO_SESSIONS.to_be_bytes());
    r.extend_from_slice(&(TPM_HEADER_SIZE as u32).to_be_bytes());
    r.extend_from_slice(&TPM_RC_FAILURE.to_be_bytes());
    r
}

/// The `commandSize`/`responseSize` field of a header, if `b` holds one.
pub fn header_size(b: &[u8]) -> Option<usize> {
    (b.len() >= 6).then(|| u32::from_be_bytes([b[2], b[3], b[4], b[5]]) as usize)
}

/// The FIFO state machine (table at the top of the module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Idle,
    Ready,
    Reception,
    /// The backend has the command; `abandoned`: the driver wrote
    /// `commandReady` meanwhile, so the answer is dropped.
    Execution {
        abandoned: bool,
    },
    Completion,
}

pub struct TpmTis {
    backend: Box<dyn TpmBackend>,
    state: State,
    active: bool,
    int_enable: u32,
    command: Vec<u8>,
    response: Vec<u8>,
    read_at: usize,
}

impl TpmTis {
    pub fn new(backend: Box<dyn TpmBackend>) -> Self {
        Self {
            backend,
            state: State::Idle,
            active: false,
            int_enable: 0,
            command: Vec::new(),
            response: Vec::new(),
            read_at: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Takes the backend's answer if the device waits for one.
    fn poll_backend(&mut self) {
        let State::Execution { abandoned } = self.state else { return };
        let Some(answer) = self.backend.poll() else { return };
        if abandoned {
            self.state = State::Ready;
            return;
        }
        self.response = match answer {
            Ok(r) if r.len() >= TPM_HEADER_SIZE && r.len() <= TIS_BUFFER_SIZE && header_size(&r) == Some(r.len()) => r,
            _ => fatal_error_response(),
        };
        self.read_at = 0;
        self.state = State::Completion;
    }

    /// Bytes the command still needs: by its header once 6 bytes are in,
    /// otherwise at least the rest of a header.
    fn expect(&self) -> bool {
        match header_size(&self.command) {
            Some(n) => self.command.len() < n.min(TIS_BUFFER_SIZE),
            None => true,
        }
    }

    fn sts(&mut self) -> u32 {
        self.poll_backend();
        let mut s = STS_VALID | STS_FAMILY_TPM2;
        let burst = match self.state {
            State::Idle => 0,
            State::Ready => {
                s |= STS_COMMAND_READY;
                TIS_BUFFER_SIZE
            }
            State::Reception => {
                if self.expect() {
                    s |= STS_EXPECT;
                }
                TIS_BUFFER_SIZE - self.command.len()
            }
            State::Execution { .. } => 0,
            State::Completion => {
                let left = self.response.len() - self.read_at;
                if left > 0 {
                    s |= STS_DATA_AVAIL;
                }
                left
            }
        };
        s | (burst.min(0xffff) as u32) << STS_BURST_SHIFT
    }

    fn access(&self) -> u8 {
        ACCESS_VALID | ACCESS_ESTABLISHMENT | if self.active { ACCESS_ACTIVE_LOCALITY } else { 0 }
    }

    /// One byte of a locality-0 register (no side effects: FIFO reads are
    /// handled before this).
    fn reg_byte(&mut self, off: u64) -> u8 {
        let word = |v: u32, base: u64| (v >> (8 * (off - base))) as u8;
        match off {
            ACCESS => self.access(),
            INT_ENABLE..=0x0b => word(self.int_enable, INT_ENABLE),
            INTF_CAPABILITY_REG..=0x17 => word(INTF_CAPABILITY, INTF_CAPABILITY_REG),
            STS..=0x1b => {
                let s = self.sts();
                word(s, STS)
            }
            INTERFACE_ID_REG..=0x33 => word(INTERFACE_ID, INTERFACE_ID_REG),
            DID_VID_REG..=0xf03 => word(DID_VID, DID_VID_REG),
            RID_REG => RID,
            _ => 0,
        }
    }

    fn fifo_read(&mut self) -> u8 {
        self.poll_backend();
        if self.state == State::Completion && self.read_at < self.response.len() {
            self.read_at += 1;
            self.response[self.read_at - 1]
        } else {
            0xff
        }
    }

    fn fifo_write(&mut self, b: u8) {
        if !self.active {
            return;
        }
        match self.state {
            State::Ready => {
                self.command.clear();
                self.command.push(b);
                self.state = State::Reception;
            }
            State::Reception if self.expect() && self.command.len() < TIS_BUFFER_SIZE => self.command.push(b),
            _ => {}
        }
    }

    fn write_access(&mut self, b: u8) {
        if b & (ACCESS_REQUEST_USE | ACCESS_SEIZE) != 0 {
            self.active = true;
        } else if b & ACCESS_ACTIVE_LOCALITY != 0 {
            self.active = false;
        }
    }

    /// The low byte of `TPM_STS`: one command bit a write.
    fn write_sts(&mut self, b: u8) {
        if !self.active {
            return;
        }
        self.poll_backend();
        let bits = b as u32 & (STS_COMMAND_READY | STS_TPM_GO | STS_RESPONSE_RETRY);
        match bits {
            STS_COMMAND_READY => {
                self.state = match self.state {
                    State::Execution { .. } => State::Execution { abandoned: true },
                    _ => State::Ready,
                };
                self.command.clear();
            }
            STS_TPM_GO if self.state == State::Reception && !self.expect() => {
                let cmd = std::mem::take(&mut self.command);
                self.backend.submit(cmd);
                self.state = State::Execution { abandoned: false };
                // A backend that answers at once is seen by the next read.
                self.poll_backend();
            }
            STS_RESPONSE_RETRY if self.state == State::Completion => self.read_at = 0,
            _ => {}
        }
    }
}

fn in_fifo(off: u64) -> bool {
    (DATA_FIFO..DATA_FIFO + 4).contains(&off) || (XDATA_FIFO..XDATA_FIFO_END).contains(&off)
}

impl MmioDevice for TpmTis {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        let size = size.min(8) as u64;
        if offset >= LOCALITY_SIZE {
            // Localities 1-4: TPM_ACCESS valid but never active, the rest
            // all ones.
            return if offset % LOCALITY_SIZE == ACCESS && size == 1 { ACCESS_VALID as u64 } else { u64::MAX };
        }
        let mut v = 0u64;
        for i in 0..size {
            let off = offset + i;
            let b = if in_fifo(off) { self.fifo_read() } else { self.reg_byte(off) };
            v |= (b as u64) << (8 * i);
        }
        if size == 8 {
            v
        } else {
            v & ((1u64 << (8 * size)) - 1)
        }
    }

    fn write(&mut self, offset: u64, size: u8, value: u64) {
        if offset >= LOCALITY_SIZE {
            return;
        }
        for i in 0..size.min(8) as u64 {
            let b = (value >> (8 * i)) as u8;
            match offset + i {
                off if in_fifo(off) => self.fifo_write(b),
                ACCESS => self.write_access(b),
                off @ INT_ENABLE..=0x0b => {
                    let sh = 8 * (off - INT_ENABLE);
                    self.int_enable = (self.int_enable & !(0xff << sh)) | (b as u32) << sh;
                }
                STS => self.write_sts(b),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    /// Answers each command after `delay` polls with what `answer` makes of
    /// it; records the commands.
    struct Mock {
        seen: Arc<Mutex<Vec<Vec<u8>>>>,
        pending: Option<(Vec<u8>, u32)>,
        delay: u32,
        answer: fn(&[u8]) -> Result<Vec<u8>, String>,
    }

    impl TpmBackend for Mock {
        fn submit(&mut self, command: Vec<u8>) {
            self.seen.lock().unwrap().push(command.clone());
            self.pending = Some((command, self.delay));
        }
        fn poll(&mut self) -> Option<Result<Vec<u8>, String>> {
            let (cmd, left) = self.pending.as_mut()?;
            if *left > 0 {
                *left -= 1;
                return None;
            }
            let r = (self.answer)(cmd);
            self.pending = None;
            Some(r)
        }
    }

    /// A response of `size` bytes: header with code 0, then 0xa5s.
    fn ok_response(size: usize) -> Vec<u8> {
        let mut r = vec![0x80, 0x01];
        r.extend_from_slice(&(size as u32).to_be_bytes());
        r.extend_from_slice(&0u32.to_be_bytes());
        r.resize(size, 0xa5);
        r
    }

    fn device(delay: u32, answer: fn(&[u8]) -> Result<Vec<u8>, String>) -> (TpmTis, Arc<Mutex<Vec<Vec<u8>>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        (TpmTis::new(Box::new(Mock { seen: seen.clone(), pending: None, delay, answer })), seen)
    }

    /// A TPM2_GetRandom(8) command, written out from Part 3 §16.1.
    const GET_RANDOM: [u8; 12] = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8];

    /// Linux's tpm_tis_core flow, polled: request locality, commandReady,
    /// write, tpmGo, wait for dataAvail, read the response.
    fn transact(d: &mut TpmTis, cmd: &[u8]) -> Vec<u8> {
        d.write(ACCESS, 1, ACCESS_REQUEST_USE as u64);
        assert_ne!(d.read(ACCESS, 1) as u8 & ACCESS_ACTIVE_LOCALITY, 0);
        d.write(STS, 1, STS_COMMAND_READY as u64);
        assert_ne!(d.read(STS, 4) as u32 & STS_COMMAND_READY, 0);
        for (i, &b) in cmd.iter().enumerate() {
            let sts = d.read(STS, 4) as u32;
            if i > 0 {
                assert_ne!(sts & STS_EXPECT, 0, "expect set before byte {i}");
            }
            assert!(d.read(STS + 1, 2) > 0, "burstCount at byte {i}");
            d.write(DATA_FIFO, 1, b as u64);
        }
        assert_eq!(d.read(STS, 4) as u32 & STS_EXPECT, 0, "expect clear after the last byte");
        d.write(STS, 1, STS_TPM_GO as u64);
        let mut polls = 0;
        while d.read(STS, 4) as u32 & (STS_VALID | STS_DATA_AVAIL) != STS_VALID | STS_DATA_AVAIL {
            polls += 1;
            assert!(polls < 100, "no dataAvail");
        }
        let mut r = Vec::new();
        while d.read(STS, 4) as u32 & STS_DATA_AVAIL != 0 {
            r.push(d.read(DATA_FIFO, 1) as u8);
        }
        d.write(STS, 1, STS_COMMAND_READY as u64);
        r
    }

    #[test]
    fn identity_registers() {
        let (mut d, _) = device(0, |_| Ok(ok_response(10)));
        assert_eq!(d.read(DID_VID_REG, 4), 0x0001_5354);
        assert_eq!(d.read(RID_REG, 1), 1);
        assert_eq!(d.read(INTF_CAPABILITY_REG, 4) as u32 >> 28, 0b011);
        // TPM 2.0 family in TPM_STS bits 27:26.
        assert_eq!((d.read(STS, 4) >> 26) & 3, 1);
        assert_eq!(d.read(ACCESS, 1), 0x81, "valid, not active");
        assert_eq!(d.read(LOCALITY_SIZE + ACCESS, 1), 0x80, "locality 1 valid, never active");
        d.write(INT_ENABLE, 4, 0x8000_0001);
        assert_eq!(d.read(INT_ENABLE, 4), 0x8000_0001);
    }

    #[test]
    fn command_and_response_through_the_fifo() {
        let (mut d, seen) = device(3, |c| {
            assert_eq!(c, GET_RANDOM);
            Ok(ok_response(20))
        });
        let r = transact(&mut d, &GET_RANDOM);
        assert_eq!(r, ok_response(20));
        assert_eq!(seen.lock().unwrap().as_slice(), [GET_RANDOM.to_vec()]);
        assert_eq!(d.state(), State::Ready);
    }

    #[test]
    fn wide_fifo_accesses_and_response_retry() {
        let (mut d, _) = device(0, |_| Ok(ok_response(12)));
        d.write(ACCESS, 1, ACCESS_REQUEST_USE as u64);
        d.write(STS, 1, STS_COMMAND_READY as u64);
        for chunk in GET_RANDOM.chunks(4) {
            let v = chunk.iter().rev().fold(0u64, |a, &b| a << 8 | b as u64);
            d.write(DATA_FIFO, chunk.len() as u8, v);
        }
        d.write(STS, 1, STS_TPM_GO as u64);
        let first = d.read(XDATA_FIFO, 4);
        assert_eq!(first, u32::from_le_bytes([0x80, 0x01, 0, 0]) as u64);
        d.write(STS, 1, STS_RESPONSE_RETRY as u64);
        assert_eq!(d.read(DATA_FIFO, 4), first, "responseRetry reads from the start");
        assert_eq!(d.read(STS + 1, 2), 8, "burstCount: bytes left");
    }

    #[test]
    fn backend_failure_and_malformed_answers_become_tpm_rc_failure() {
        for answer in [
            (|_| Err("swtpm died".to_string())) as fn(&[u8]) -> Result<Vec<u8>, String>,
            |_| Ok(vec![1, 2, 3]),
            |_| {
                let mut r = ok_response(20);
                r.truncate(15);
                Ok(r)
            },
            |_| Ok(ok_response(TIS_BUFFER_SIZE + 10)),
        ] {
            let (mut d, _) = device(1, answer);
            let r = transact(&mut d, &GET_RANDOM);
            // tag 0x8001, size 10, TPM_RC_FAILURE, from Part 2 §6.6.
            assert_eq!(r, [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x01]);
        }
    }

    #[test]
    fn nothing_happens_without_the_locality_and_abandoned_commands_are_dropped() {
        let (mut d, seen) = device(2, |_| Ok(ok_response(10)));
        d.write(STS, 1, STS_COMMAND_READY as u64);
        assert_eq!(d.state(), State::Idle, "STS writes need the locality");
        d.write(ACCESS, 1, ACCESS_REQUEST_USE as u64);
        d.write(STS, 1, STS_COMMAND_READY as u64);
        for &b in &GET_RANDOM[..5] {
            d.write(DATA_FIFO, 1, b as u64);
        }
        d.write(STS, 1, STS_TPM_GO as u64);
        assert_eq!(d.state(), State::Reception, "tpmGo with expect=1 is ignored");
        for &b in &GET_RANDOM[5..] {
            d.write(DATA_FIFO, 1, b as u64);
        }
        d.write(STS, 1, STS_TPM_GO as u64);
        d.write(STS, 1, STS_COMMAND_READY as u64);
        assert_eq!(d.state(), State::Execution { abandoned: true });
        for _ in 0..4 {
            d.read(STS, 4);
        }
        assert_eq!(d.state(), State::Ready, "the abandoned answer is dropped");
        assert_eq!(d.read(DATA_FIFO, 1), 0xff);
        assert_eq!(seen.lock().unwrap().len(), 1);
        // Relinquish.
        d.write(ACCESS, 1, ACCESS_ACTIVE_LOCALITY as u64);
        assert_eq!(d.read(ACCESS, 1) as u8 & ACCESS_ACTIVE_LOCALITY, 0);
    }

    #[test]
    fn an_oversized_command_stops_at_the_buffer() {
        let (mut d, seen) = device(0, |_| Ok(ok_response(10)));
        d.write(ACCESS, 1, ACCESS_REQUEST_USE as u64);
        d.write(STS, 1, STS_COMMAND_READY as u64);
        // A header claiming 1 MiB.
        for &b in &[0x80u8, 0x01, 0x00, 0x10, 0x00, 0x00] {
            d.write(DATA_FIFO, 1, b as u64);
        }
        for _ in 0..TIS_BUFFER_SIZE + 100 {
            d.write(DATA_FIFO, 4, 0xdead_beef);
        }
        assert_eq!(d.read(STS, 4) as u32 & STS_EXPECT, 0);
        d.write(STS, 1, STS_TPM_GO as u64);
        assert_eq!(seen.lock().unwrap()[0].len(), TIS_BUFFER_SIZE);
    }

    /// Hostile register traffic: random offsets (in and past the window),
    /// sizes and values, against backends that answer, fail or never
    /// answer. Nothing may panic, and the invariants hold after each access.
    #[test]
    fn hostile_access_sequences_never_panic() {
        let cfg = strata_testkit::prop::config("tpm_tis hostile", 64);
        let mut runner = proptest::test_runner::TestRunner::new(cfg);
        use proptest::prelude::*;
        let access =
            (0u64..TPM_TIS_MMIO_SIZE + 16, prop::sample::select(vec![1u8, 2, 4, 8]), any::<u64>(), any::<bool>());
        runner
            .run(&(0u32..3, prop::collection::vec(access, 1..400)), |(kind, ops)| {
                let (mut d, _) = match kind {
                    0 => device(2, |c| Ok(ok_response(c.len().clamp(10, 64)))),
                    1 => device(0, |_| Err("dead".into())),
                    _ => device(u32::MAX, |_| Ok(ok_response(10))),
                };
                // Bias towards the interesting registers.
                let mut q: VecDeque<_> = ops.into_iter().collect();
                while let Some((off, size, val, write)) = q.pop_front() {
                    let off =
                        if off % 3 == 0 { [ACCESS, STS, DATA_FIFO, XDATA_FIFO][(off / 3 % 4) as usize] } else { off };
                    if write {
                        d.write(off, size, val);
                    } else {
                        d.read(off, size);
                    }
                    prop_assert!(d.command.len() <= TIS_BUFFER_SIZE);
                    prop_assert!(d.read_at <= d.response.len());
                    if d.state == State::Completion {
                        prop_assert_eq!(header_size(&d.response), Some(d.response.len()));
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}
