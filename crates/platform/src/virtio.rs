//! virtio-mmio devices of the board: option parsing, slot assignment and
//! construction.
//!
//! The board has the eight virtio-mmio slots of QEMU's `virt` machine
//! ([`BoardLayout::virtio_slot`]: slot n at 0x1000_1000 + n × 0x1000 with
//! PLIC source 1 + n). Devices take
//! slots in this order: every `--drive` in command-line order, then
//! virtio-rng, then virtio-console, then vsock, then every `--netdev`. Only occupied slots appear in the
//! device tree and on the bus.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_devices::board::BoardLayout;
use strata_devices::plic::{source_line, Plic};
use strata_devices::virtio::block::{Block, DiskBackend, ErrorPolicy};
use strata_devices::virtio::console::Console;
use strata_devices::virtio::net::{parse_mac, Net, Tap};
use strata_devices::virtio::rng::Rng;
use strata_devices::virtio::vsock::Vsock;
use strata_devices::virtio::{VirtioDevice, VirtioMmio, VIRTIO_MMIO_SIZE};
use strata_devices::{MmioDevice, SharedMmio};
use strata_memory::GuestMemory;
use strata_stream::{StreamDisk, StreamOptions};

use crate::error::Error;

/// Where a drive's sectors come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriveSource {
    /// `file=PATH`: a raw image file.
    File(PathBuf),
    /// `url=…,cache=DIR,pubkey=FILE[,overlay=FILE][,timeout=SECS]`: a
    /// packed disk streamed over HTTP (docs/stream.md).
    Stream(StreamOptions),
}

/// One `--drive file=PATH[,readonly=on|off][,serial=STR][,werror=..][,rerror=..]`
/// or `--drive url=URL,cache=DIR,pubkey=FILE[,...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriveSpec {
    pub source: DriveSource,
    pub readonly: bool,
    pub serial: Option<String>,
    /// What a failed host write or flush does (QEMU's `werror=`), and a
    /// failed host read (`rerror=`): report (an I/O error for the guest),
    /// stop (the machine stops, exit status 9), enospc (stop when the
    /// host is out of space, report otherwise).
    pub werror: ErrorPolicy,
    pub rerror: ErrorPolicy,
}

/// Why a `--drive`, `--netdev` or `--vsock` value (or its TOML form) is
/// not one, or why the devices do not fit the board.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{part:?}: expected key=value ({syntax})")]
    NotKeyValue { part: String, syntax: &'static str },
    #[error("{key}={value}: expected on or off")]
    NotOnOff { key: String, value: String },
    #[error("serial={0}: at most 20 printable ASCII characters")]
    Serial(String),
    #[error("unknown {device} option {part:?} ({syntax})")]
    UnknownOption { device: &'static str, part: String, syntax: &'static str },
    /// A required key is missing: the message says which.
    #[error("{0}")]
    Missing(&'static str),
    #[error("netdev type {0:?}: only tap is supported ({NETDEV_SYNTAX})")]
    NetdevType(String),
    #[error("a drive is file=PATH or url=URL, not both")]
    FileAndUrl,
    #[error("{0}= is for streamed drives (url=URL)")]
    StreamOnly(&'static str),
    #[error("timeout={0}: expected a whole number of seconds from 1 to 600")]
    Timeout(String),
    #[error("vsock cid={0}: not a number")]
    CidNotANumber(String),
    #[error("vsock cid={0}: guest CIDs are 3 to 4294967294")]
    CidRange(u64),
    /// A value the device model's own parser refused (an error policy, a MAC).
    #[error("{0}")]
    Value(String),
    #[error("{n} virtio devices requested ({drives} drives{}, {nets} netdevs), but the board has {slots} virtio-mmio slots", if *rng { " + virtio-rng" } else { "" })]
    TooManyDevices { n: usize, drives: usize, rng: bool, nets: usize, slots: u32 },
}

const NETDEV_SYNTAX: &str = "tap[,ifname=NAME][,mac=..]";
const VSOCK_SYNTAX: &str = "cid=N,uds=PATH";

const DRIVE_SYNTAX: &str = "file=PATH[,readonly=on][,serial=STR][,werror=report|stop|enospc][,rerror=report|stop], or url=http://HOST:PORT/PATH/table,cache=DIR,pubkey=FILE[,overlay=FILE][,timeout=SECS][,profile=URL|FILE][,readonly=on]";

/// How long a streamed drive waits for a connection or an answer before
/// the attempt fails (three attempts per block: `strata_stream::FETCH_ATTEMPTS`).
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(5);

fn on_off(key: &str, v: &str) -> Result<bool, SpecError> {
    match v {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(SpecError::NotOnOff { key: key.into(), value: v.into() }),
    }
}

impl DriveSpec {
    pub fn parse(s: &str) -> Result<DriveSpec, SpecError> {
        let mut file = None;
        let (mut url, mut cache, mut pubkey, mut overlay, mut timeout) = (None, None, None, None, None);
        let mut profile = None;
        let mut readonly = false;
        let mut serial = None;
        let (mut werror, mut rerror) = (ErrorPolicy::Report, ErrorPolicy::Report);
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| SpecError::NotKeyValue { part: part.into(), syntax: DRIVE_SYNTAX })?;
            match k {
                "file" if !v.is_empty() => file = Some(PathBuf::from(v)),
                "url" if !v.is_empty() => url = Some(v.to_string()),
                "cache" if !v.is_empty() => cache = Some(PathBuf::from(v)),
                "pubkey" if !v.is_empty() => pubkey = Some(PathBuf::from(v)),
                "overlay" if !v.is_empty() => overlay = Some(PathBuf::from(v)),
                "profile" if !v.is_empty() => profile = Some(v.to_string()),
                "timeout" => {
                    let secs = v.parse::<u64>().ok().filter(|s| (1..=600).contains(s));
                    timeout = Some(Duration::from_secs(secs.ok_or_else(|| SpecError::Timeout(v.into()))?));
                }
                "readonly" => readonly = on_off(k, v)?,
                "serial" => {
                    if v.len() > 20 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(SpecError::Serial(v.into()));
                    }
                    serial = Some(v.to_string());
                }
                "werror" => werror = ErrorPolicy::parse(k, v).map_err(SpecError::Value)?,
                "rerror" => rerror = ErrorPolicy::parse(k, v).map_err(SpecError::Value)?,
                _ => return Err(SpecError::UnknownOption { device: "drive", part: part.into(), syntax: DRIVE_SYNTAX }),
            }
        }
        let source = match (file, url) {
            (Some(_), Some(_)) => return Err(SpecError::FileAndUrl),
            (Some(f), None) => {
                for (set, key) in [
                    (cache.is_some(), "cache"),
                    (pubkey.is_some(), "pubkey"),
                    (overlay.is_some(), "overlay"),
                    (timeout.is_some(), "timeout"),
                    (profile.is_some(), "profile"),
                ] {
                    if set {
                        return Err(SpecError::StreamOnly(key));
                    }
                }
                DriveSource::File(f)
            }
            (None, Some(url)) => DriveSource::Stream(StreamOptions {
                url,
                cache: cache.ok_or(SpecError::Missing("a streamed drive needs cache=DIR"))?,
                pubkey: pubkey.ok_or(SpecError::Missing("a streamed drive needs pubkey=FILE"))?,
                overlay,
                readonly,
                timeout: timeout.unwrap_or(STREAM_TIMEOUT),
                profile,
            }),
            (None, None) => return Err(SpecError::Missing("a drive needs file=PATH (or url=URL)")),
        };
        Ok(DriveSpec { source, readonly, serial, werror, rerror })
    }

    /// What messages and `--stats` call the drive: its file or URL.
    pub fn name(&self) -> String {
        match &self.source {
            DriveSource::File(p) => p.display().to_string(),
            DriveSource::Stream(o) => o.url.clone(),
        }
    }
}

/// One `--netdev tap[,ifname=NAME][,mac=52:54:00:12:34:56]`: the TAP
/// interface NAME (created if it does not exist), or a new one the kernel
/// names when `ifname` is left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetdevSpec {
    pub ifname: Option<String>,
    pub mac: [u8; 6],
}

/// QEMU's default guest MAC; further NICs count up in the last byte.
pub const DEFAULT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

impl NetdevSpec {
    pub fn parse(s: &str) -> Result<NetdevSpec, SpecError> {
        let mut parts = s.split(',');
        match parts.next() {
            Some("tap") => {}
            other => return Err(SpecError::NetdevType(other.unwrap_or("").into())),
        }
        let mut ifname = None;
        let mut mac = DEFAULT_MAC;
        for part in parts {
            match part.split_once('=') {
                Some(("ifname", v)) if !v.is_empty() => ifname = Some(v.to_string()),
                Some(("mac", v)) => mac = parse_mac(v).map_err(SpecError::Value)?,
                _ => {
                    return Err(SpecError::UnknownOption { device: "netdev", part: part.into(), syntax: NETDEV_SYNTAX })
                }
            }
        }
        Ok(NetdevSpec { ifname, mac })
    }
}

/// `--vsock cid=N,uds=PATH` (Firecracker-style host Unix sockets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsockSpec {
    pub cid: u64,
    pub uds: PathBuf,
}

impl VsockSpec {
    pub fn parse(s: &str) -> Result<VsockSpec, SpecError> {
        let (mut cid, mut uds) = (None, None);
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("cid", v)) => cid = Some(v.parse::<u64>().map_err(|_| SpecError::CidNotANumber(v.into()))?),
                Some(("uds", v)) if !v.is_empty() => uds = Some(PathBuf::from(v)),
                _ => return Err(SpecError::UnknownOption { device: "vsock", part: part.into(), syntax: VSOCK_SYNTAX }),
            }
        }
        let cid = cid.ok_or(SpecError::Missing("vsock needs cid=N (3 or more)"))?;
        if cid < 3 || cid >= u32::MAX as u64 {
            return Err(SpecError::CidRange(cid));
        }
        Ok(VsockSpec { cid, uds: uds.ok_or(SpecError::Missing("vsock needs uds=PATH"))? })
    }
}

/// A device model with the name its errors and statistics use.
pub type NamedDevice = (String, Box<dyn VirtioDevice>);

/// The virtio devices a machine gets.
#[derive(Clone, Debug, Default)]
pub struct VirtioConfig {
    pub drives: Vec<DriveSpec>,
    pub rng: bool,
    pub nets: Vec<NetdevSpec>,
    pub vsock: Option<VsockSpec>,
    /// virtio-console bridged to a Unix socket at this path.
    pub console: Option<PathBuf>,
}

impl VirtioConfig {
    pub fn count(&self) -> usize {
        self.drives.len()
            + self.rng as usize
            + self.console.is_some() as usize
            + self.vsock.is_some() as usize
            + self.nets.len()
    }

    /// (base, PLIC source) of the occupied slots of `board`, for the
    /// device tree.
    pub fn slots(&self, board: &BoardLayout) -> Result<Vec<(u64, u32)>, SpecError> {
        let n = self.count();
        if n > board.virtio_slots as usize {
            return Err(SpecError::TooManyDevices {
                n,
                drives: self.drives.len(),
                rng: self.rng,
                nets: self.nets.len(),
                slots: board.virtio_slots,
            });
        }
        Ok((0..n as u32).filter_map(|i| board.virtio_slot(i)).collect())
    }

    /// Opens the backends (files) and builds the devices, in slot order.
    /// A backend that cannot be opened is [`Error::Backend`] with the
    /// device model's message.
    pub fn build_devices(&self) -> Result<Vec<NamedDevice>, Error> {
        let mut devs: Vec<(String, Box<dyn VirtioDevice>)> = Vec::new();
        for (i, d) in self.drives.iter().enumerate() {
            let blk = match &d.source {
                DriveSource::File(p) => Block::open(p, d.readonly, d.serial.as_deref()),
                DriveSource::Stream(o) => {
                    let disk = StreamDisk::open(o)?;
                    let label = format!("streamed disk {}", o.url);
                    Block::from_backend(Box::new(Streamed(disk)), &label, d.readonly, d.serial.as_deref())
                }
            }
            .map_err(Error::Backend)?
            .with_error_policy(d.rerror, d.werror);
            devs.push((format!("virtio-blk{i} ({})", d.name()), Box::new(blk)));
        }
        if self.rng {
            devs.push(("virtio-rng".into(), Box::new(Rng::new())));
        }
        if let Some(p) = &self.console {
            devs.push((
                format!("virtio-console ({})", p.display()),
                Box::new(Console::new(p.clone()).map_err(Error::Backend)?),
            ));
        }
        if let Some(v) = &self.vsock {
            devs.push((
                format!("virtio-vsock ({})", v.uds.display()),
                Box::new(Vsock::new(v.cid, v.uds.clone()).map_err(Error::Backend)?),
            ));
        }
        for (i, n) in self.nets.iter().enumerate() {
            let tap = Tap::open(n.ifname.as_deref()).map_err(Error::Backend)?;
            let mut mac = n.mac;
            if n.mac == DEFAULT_MAC {
                mac[5] = mac[5].wrapping_add(i as u8);
            }
            if tap.created {
                eprintln!("strata: virtio-net{i}: created TAP interface {} (it goes away when strata exits)", tap.name);
            }
            devs.push((format!("virtio-net{i} (tap {})", tap.name), Box::new(Net::new(Box::new(tap), mac))));
        }
        Ok(devs)
    }
}

/// A streamed disk as a virtio-blk backend: its errors become host I/O
/// errors, which the drive's `rerror`/`werror` turn into the guest's.
struct Streamed(StreamDisk);

impl DiskBackend for Streamed {
    fn size(&self) -> u64 {
        self.0.len()
    }
    fn read_at(&mut self, buf: &mut [u8], pos: u64) -> std::io::Result<()> {
        self.0.read_at(buf, pos).map_err(std::io::Error::other)
    }
    fn write_at(&mut self, buf: &[u8], pos: u64) -> std::io::Result<()> {
        self.0.write_at(buf, pos).map_err(std::io::Error::other)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(std::io::Error::other)
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let c = self.0.counters();
        vec![
            ("stream_blocks_fetched", c.blocks_fetched),
            ("stream_bytes_fetched", c.bytes_fetched),
            ("stream_cache_hits", c.cache_hits),
            ("stream_memory_hits", c.memory_hits),
            ("stream_hash_mismatches", c.hash_mismatches),
            ("stream_failed_blocks", c.failed_blocks),
            ("stream_prefetched_blocks", c.prefetched_blocks),
            ("stream_prefetch_bytes", c.prefetch_bytes),
        ]
    }
}

/// Why a device stopped the machine (a drive with `werror=stop` whose
/// host write failed), if one did.
pub(crate) fn host_stop(devs: &[Arc<Mutex<VirtioMmio>>]) -> Option<String> {
    devs.iter().find_map(|d| crate::runner::lock(d).device().host_stop())
}

/// The devices' host-side errors, one line per device that had some
/// ("strata: virtio-blk0 (disk.img): host errors: 3 writes failed: ...").
pub fn host_error_summary(devs: &[Arc<Mutex<VirtioMmio>>]) -> String {
    let mut s = String::new();
    for d in devs {
        let d = crate::runner::lock(d);
        let errs = d.device().host_errors();
        if !errs.is_empty() {
            s += &format!("strata: {}: host errors: {}\n", d.name(), errs.join("; "));
        }
    }
    s
}

/// Places the devices in their slots, each with its PLIC line: `add`
/// puts a window on the bus (the board's, or a VM's). The device in the
/// slot at `base` reaches guest memory through `mem(base)`; with
/// `access_platform` (an IOMMU translates that memory) it is offered
/// VIRTIO_F_ACCESS_PLATFORM.
pub fn attach(
    devs: Vec<(String, Box<dyn VirtioDevice>)>,
    slots: &[(u64, u32)],
    mem: &mut dyn FnMut(u64) -> Arc<dyn GuestMemory>,
    access_platform: bool,
    plic: &Arc<Mutex<Plic>>,
    add: &mut dyn FnMut(u64, u64, Box<dyn MmioDevice>) -> Result<(), String>,
) -> Result<Vec<Arc<Mutex<VirtioMmio>>>, Error> {
    let mut out = Vec::new();
    for ((name, dev), &(base, irq)) in devs.into_iter().zip(slots) {
        let mut v = VirtioMmio::new(dev, mem(base), source_line(plic, irq), name);
        if access_platform {
            v.offer_access_platform();
        }
        let m = Arc::new(Mutex::new(v));
        add(base, VIRTIO_MMIO_SIZE, Box::new(SharedMmio(m.clone()))).map_err(Error::Board)?;
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drive_options() {
        let d = DriveSpec::parse("file=/x/disk.img,readonly=on,serial=ABC-1").unwrap();
        assert_eq!(
            d,
            DriveSpec {
                source: DriveSource::File("/x/disk.img".into()),
                readonly: true,
                serial: Some("ABC-1".into()),
                werror: ErrorPolicy::Report,
                rerror: ErrorPolicy::Report
            }
        );
        let d = DriveSpec::parse("file=a,werror=stop,rerror=stop").unwrap();
        assert_eq!((d.werror, d.rerror), (ErrorPolicy::Stop, ErrorPolicy::Stop));
        assert_eq!(DriveSpec::parse("file=a,werror=enospc").unwrap().werror, ErrorPolicy::Enospc);
        assert!(DriveSpec::parse("file=a,werror=ignore").unwrap_err().to_string().contains("report, stop or enospc"));
        assert!(!DriveSpec::parse("file=a").unwrap().readonly);
        assert!(DriveSpec::parse("readonly=on").unwrap_err().to_string().contains("file=PATH"));
        assert!(DriveSpec::parse("file=a,readonly=maybe").unwrap_err().to_string().contains("on or off"));
        // QEMU's cache= is now a streamed drive's key: still refused on a file.
        assert!(DriveSpec::parse("file=a,cache=none").unwrap_err().to_string().contains("for streamed drives"));
        assert!(DriveSpec::parse("file=a,aio=native").unwrap_err().to_string().contains("unknown drive option"));
        assert!(DriveSpec::parse("file=a,serial=123456789012345678901").is_err());
        assert!(DriveSpec::parse("disk.img").unwrap_err().to_string().contains("key=value"));
        // Streamed drives.
        let d = DriveSpec::parse("url=http://h:8080/d/table,cache=/c,pubkey=/k.pub,timeout=2,readonly=on").unwrap();
        assert_eq!(
            d.source,
            DriveSource::Stream(StreamOptions {
                url: "http://h:8080/d/table".into(),
                cache: "/c".into(),
                pubkey: "/k.pub".into(),
                overlay: None,
                readonly: true,
                timeout: Duration::from_secs(2),
                profile: None,
            })
        );
        let p = DriveSpec::parse("url=http://h/d/table,cache=/c,pubkey=/k,profile=http://h/d/profile").unwrap();
        assert!(matches!(p.source, DriveSource::Stream(o) if o.profile.as_deref() == Some("http://h/d/profile")));
        assert_eq!(d.name(), "http://h:8080/d/table");
        let e = |s: &str| DriveSpec::parse(s).unwrap_err();
        assert_eq!(e("url=http://h/t,pubkey=/k"), SpecError::Missing("a streamed drive needs cache=DIR"));
        assert_eq!(e("url=http://h/t,cache=/c"), SpecError::Missing("a streamed drive needs pubkey=FILE"));
        assert_eq!(e("file=a,url=http://h/t,cache=/c,pubkey=/k"), SpecError::FileAndUrl);
        assert_eq!(e("file=a,cache=/c"), SpecError::StreamOnly("cache"));
        assert_eq!(e("file=a,profile=/p"), SpecError::StreamOnly("profile"));
        assert_eq!(e("url=http://h/t,cache=/c,pubkey=/k,timeout=0"), SpecError::Timeout("0".into()));
        assert!(e("url=http://h/t,cache=/c,pubkey=/k,timeout=x").to_string().contains("seconds"));
    }

    #[test]
    fn netdev_options() {
        let n = NetdevSpec::parse("tap,ifname=tap0,mac=52:54:00:00:00:09").unwrap();
        assert_eq!(n, NetdevSpec { ifname: Some("tap0".into()), mac: [0x52, 0x54, 0, 0, 0, 9] });
        assert_eq!(NetdevSpec::parse("tap,ifname=t").unwrap().mac, DEFAULT_MAC);
        assert!(NetdevSpec::parse("user").unwrap_err().to_string().contains("only tap"));
        assert_eq!(NetdevSpec::parse("tap").unwrap(), NetdevSpec { ifname: None, mac: DEFAULT_MAC });
        assert!(NetdevSpec::parse("tap,ifname=").is_err());
        assert!(NetdevSpec::parse("tap,ifname=t,vhost=on").unwrap_err().to_string().contains("unknown netdev option"));
        assert!(NetdevSpec::parse("tap,ifname=t,mac=1:2").is_err());
    }

    #[test]
    fn vsock_options() {
        assert_eq!(VsockSpec::parse("cid=3,uds=/tmp/v.sock").unwrap(), VsockSpec { cid: 3, uds: "/tmp/v.sock".into() });
        assert!(VsockSpec::parse("cid=2,uds=/x").unwrap_err().to_string().contains("3 to"));
        assert!(VsockSpec::parse("uds=/x").unwrap_err().to_string().contains("cid"));
        assert!(VsockSpec::parse("cid=3").unwrap_err().to_string().contains("uds"));
        assert!(VsockSpec::parse("cid=3,uds=/x,port=1").is_err());
    }

    #[test]
    fn slots_follow_qemu_virt() {
        let mut c = VirtioConfig {
            drives: vec![DriveSpec::parse("file=a").unwrap(); 2],
            rng: true,
            nets: vec![],
            vsock: None,
            console: None,
        };
        let b = &strata_devices::board::VIRT;
        assert_eq!(c.slots(b).unwrap(), vec![(0x1000_1000, 1), (0x1000_2000, 2), (0x1000_3000, 3)]);
        c.drives = vec![DriveSpec::parse("file=a").unwrap(); 8];
        assert!(c.slots(b).unwrap_err().to_string().contains("8 virtio-mmio slots"));
    }
}
