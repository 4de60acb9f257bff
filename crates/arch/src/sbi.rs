//! The RISC-V Supervisor Binary Interface, 2.0: extension ids (§3–§12) and
//! error codes (§3.2, Table 1), which guests, test guests and Strata's
//! hypervisor share.

/// Extension ids: the `a7` of an SBI call.
pub mod ext {
    pub const BASE: u64 = 0x10;
    /// "TIME"
    pub const TIME: u64 = 0x5449_4d45;
    /// "sPI"
    pub const IPI: u64 = 0x73_5049;
    /// "RFNC"
    pub const RFENCE: u64 = 0x5246_4e43;
    /// "HSM"
    pub const HSM: u64 = 0x48_534d;
    /// "SRST"
    pub const SRST: u64 = 0x5352_5354;
    /// "DBCN"
    pub const DBCN: u64 = 0x4442_434e;
    /// Strata's own extension (docs/attestation.md, "Evidence for VMs"), in
    /// the firmware-specific space (§3: 0x0A000000–0x0AFFFFFF, the low bits
    /// the SBI implementation's id, [`super::IMPL_ID`]).
    pub const STRATA: u64 = 0x0A00_0000 | super::IMPL_ID;
    /// Legacy console putchar (v0.1, §5.2).
    pub const LEGACY_PUTCHAR: u64 = 0x01;
    /// Legacy console getchar (v0.1, §5.3).
    pub const LEGACY_GETCHAR: u64 = 0x02;
}

/// Function ids of the extensions test guests call.
pub mod fid {
    /// HSM `hart_stop` and `hart_suspend`: a guest must not call them on
    /// itself if it wants to go on.
    pub const HSM_HART_STOP: u64 = 1;
    pub const HSM_HART_GET_STATUS: u64 = 2;
    pub const HSM_HART_SUSPEND: u64 = 3;
    pub const SRST_SYSTEM_RESET: u64 = 0;
    pub const DBCN_CONSOLE_WRITE: u64 = 0;
    pub const DBCN_CONSOLE_WRITE_BYTE: u64 = 2;
    /// STRATA `get_evidence(nonce_addr, out_addr, out_size)`: signed
    /// evidence of the calling VM's initial state with the 32-byte nonce at
    /// `nonce_addr`, written to `out_addr` (docs/attestation.md).
    pub const STRATA_GET_EVIDENCE: u64 = 0;
}

/// Strata's SBI implementation id (`sbi_get_impl_id`, §4.2). Ids are
/// assigned by RISC-V International; Strata has none, so it reports one
/// past the last assigned at the time of writing (docs/hypervisor.md).
pub const IMPL_ID: u64 = 0x5354;

/// Error codes: the `a0` an SBI call returns.
pub mod error {
    pub const SUCCESS: i64 = 0;
    pub const FAILED: i64 = -1;
    pub const NOT_SUPPORTED: i64 = -2;
    pub const INVALID_PARAM: i64 = -3;
    pub const INVALID_ADDRESS: i64 = -5;
    pub const ALREADY_AVAILABLE: i64 = -6;
    pub const ALREADY_STOPPED: i64 = -8;
}

#[cfg(test)]
mod tests {
    use super::ext;

    #[test]
    fn ids_spell_their_names() {
        let name = |v: u64| String::from_utf8(v.to_be_bytes().iter().copied().filter(|&b| b != 0).collect()).unwrap();
        assert_eq!(name(ext::TIME), "TIME");
        assert_eq!(name(ext::IPI), "sPI");
        assert_eq!(name(ext::RFENCE), "RFNC");
        assert_eq!(name(ext::HSM), "HSM");
        assert_eq!(name(ext::SRST), "SRST");
        assert_eq!(name(ext::DBCN), "DBCN");
    }
}
