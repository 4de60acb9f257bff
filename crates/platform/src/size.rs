//! Memory sizes: parsing them as the user writes them (`-m`, a VM's
//! `memory` in TOML), the limits on guest RAM, and printing sizes.
//!
//! The syntax is QEMU's `-m` (its `qemu_strtosz_MiB`): a decimal number,
//! optionally with a fraction, and one optional unit letter — `B`, `K`,
//! `M`, `G`, `T`, `P` or `E`, either case, powers of 1024 — with MiB when
//! there is none; QEMU's `size=` prefix is accepted too. Like QEMU, a size
//! is rounded up to whole pages (QEMU: 8 KiB; Strata: 4 KiB pages). Unlike
//! QEMU, `0` is not "the default size" but a size below the minimum, the
//! same error as `1`: one rule for every size too small.

/// Guest RAM limits (their one home is the board layout).
pub use strata_devices::board::{MAX_RAM as RAM_MAX, MIN_RAM as RAM_MIN};
const PAGE: u64 = 4096;

/// Why a size is not one, or not a usable amount of guest RAM.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("memory hotplug (slots=, maxmem=) is not supported")]
    Hotplug,
    #[error("not a size (examples: 512M, 1.5G, 2T; no unit means MiB)")]
    NotASize,
    #[error("a fraction of a byte is not a size")]
    FractionOfAByte,
    #[error("too large")]
    TooLarge,
    #[error("at least {} of RAM is needed", human(RAM_MIN))]
    BelowMinimum,
    #[error("at most {} of RAM is supported", human(RAM_MAX))]
    AboveMaximum,
    #[error("RAM must be whole 4 KiB pages")]
    NotWholePages,
    #[error("more than this host's {} of RAM", human(*host))]
    MoreThanHost { host: u64 },
}

/// Parses a size in QEMU's `-m` syntax (see the module documentation) into
/// bytes. The error says what is wrong, without repeating the text.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let s = text.trim();
    let s = s.strip_prefix("size=").unwrap_or(s);
    if s.contains(',') {
        return Err(SizeError::Hotplug);
    }
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], Some(c.to_ascii_uppercase())),
        _ => (s, None),
    };
    let shift = match unit {
        None | Some('M') => 20,
        Some('B') => 0,
        Some('K') => 10,
        Some('G') => 30,
        Some('T') => 40,
        Some('P') => 50,
        Some('E') => 60,
        Some(_) => return Err(SizeError::NotASize),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (num.contains('.') && frac.is_empty()) {
        return Err(SizeError::NotASize);
    }
    if !frac.is_empty() && shift == 0 {
        return Err(SizeError::FractionOfAByte);
    }
    let whole: u128 = int.parse::<u128>().map_err(|_| SizeError::TooLarge)? << shift;
    // The fraction, to whole bytes (truncated, as QEMU does).
    let mut part: u128 = 0;
    let mut scale: u128 = 1;
    for b in frac.bytes().take(30) {
        part = part * 10 + (b - b'0') as u128;
        scale *= 10;
    }
    let bytes = whole + (part << shift) / scale;
    u64::try_from(bytes).map_err(|_| SizeError::TooLarge)
}

/// Parses a guest RAM size: [`parse_size`], rounded up to whole 4 KiB
/// pages, then [`check_ram`].
pub fn parse_ram_size(text: &str) -> Result<u64, SizeError> {
    let bytes = parse_size(text)?;
    let rounded = bytes.checked_next_multiple_of(PAGE).ok_or(SizeError::TooLarge)?;
    check_ram(rounded)?;
    Ok(rounded)
}

/// Why `bytes` of guest RAM cannot be, if so: below [`RAM_MIN`], above
/// [`RAM_MAX`] or the host's RAM, or not whole pages.
pub fn check_ram(bytes: u64) -> Result<(), SizeError> {
    if bytes < RAM_MIN {
        return Err(SizeError::BelowMinimum);
    }
    if bytes > RAM_MAX {
        return Err(SizeError::AboveMaximum);
    }
    if bytes % PAGE != 0 {
        return Err(SizeError::NotWholePages);
    }
    if let Some(host) = host_ram_bytes() {
        if bytes > host {
            return Err(SizeError::MoreThanHost { host });
        }
    }
    Ok(())
}

/// Total RAM of the host, from /proc/meminfo.
pub fn host_ram_bytes() -> Option<u64> {
    let m = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A size for people: "512 MiB", "29.7 MiB", "8 GiB", "100 bytes".
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >> (10 * (unit + 2)) > 0 {
        unit += 1;
    }
    let v = bytes as f64 / (1u64 << (10 * (unit + 1))) as f64;
    let s = format!("{v:.1}");
    format!("{} {}", s.strip_suffix(".0").unwrap_or(&s), UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_qemu_syntax() {
        // Expected values computed by hand from the units' definitions.
        let cases: [(&str, u64); 14] = [
            ("512", 536_870_912),
            ("512M", 536_870_912),
            ("512m", 536_870_912),
            ("2g", 2_147_483_648),
            ("64K", 65_536),
            ("1T", 1_099_511_627_776),
            ("1t", 1_099_511_627_776),
            ("1P", 1_125_899_906_842_624),
            ("1E", 1_152_921_504_606_846_976),
            ("4096B", 4096),
            ("1.5G", 1_610_612_736),
            ("0.5K", 512),
            ("size=256M", 268_435_456),
            (" 1G ", 1_073_741_824),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(bytes), "{text:?}");
        }
    }

    #[test]
    fn what_is_not_a_size() {
        for text in ["", "M", "12Q", "1.5B", "0x10", "-1", "1.", ".5G", "1 G", "512MiB", "1e3", "1G,maxmem=4G"] {
            assert!(parse_size(text).is_err(), "{text:?} parsed");
        }
        assert_eq!(parse_size("16E").unwrap_err(), SizeError::TooLarge);
        assert_eq!(parse_size("99999999999999999999999999999999999999999G").unwrap_err(), SizeError::TooLarge);
        assert_eq!(parse_size("1.5B").unwrap_err(), SizeError::FractionOfAByte);
        assert_eq!(parse_size("1G,maxmem=4G").unwrap_err(), SizeError::Hotplug);
        assert_eq!(parse_size("12Q").unwrap_err(), SizeError::NotASize);
    }

    #[test]
    fn ram_limits_are_one_rule() {
        for text in ["0", "1", "1K", "15M", "16380K"] {
            assert_eq!(parse_ram_size(text).unwrap_err(), SizeError::BelowMinimum, "{text}");
            assert_eq!(parse_ram_size(text).unwrap_err().to_string(), "at least 16 MiB of RAM is needed");
        }
        assert_eq!(parse_ram_size("65G").unwrap_err().to_string(), "at most 64 GiB of RAM is supported");
        assert_eq!(parse_ram_size("2T").unwrap_err(), SizeError::AboveMaximum);
        // 16 MiB + 1 byte rounds up to 16 MiB + one page.
        assert_eq!(parse_ram_size("16777217B"), Ok(16 * 1024 * 1024 + 4096));
        assert_eq!(parse_ram_size("16M"), Ok(16 << 20));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(100), "100 bytes");
        assert_eq!(human(16 << 20), "16 MiB");
        assert_eq!(human(8 << 30), "8 GiB");
        assert_eq!(human(31_167_488), "29.7 MiB");
        assert_eq!(human(1536), "1.5 KiB");
    }
}
