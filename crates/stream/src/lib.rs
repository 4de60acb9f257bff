//! Disks streamed block by block over HTTP: the packed format, its
//! signature, and the backend that fetches, verifies, caches and
//! overlays blocks for a virtio-blk drive (docs/stream.md).
//!
//! A raw image is cut into blocks of [`BLOCK_SIZE`] bytes. Each block that
//! is not all zeros is compressed with zstd and stored once, under the
//! SHA-256 of its *uncompressed* content, so identical blocks — within an
//! image or across its versions — share one file. A *table* lists, for each
//! block in order, that hash (or the zero mark), and is signed with
//! Ed25519. A packed directory looks like this:
//!
//! ```text
//! DIR/table                     the signed table of the newest version
//! DIR/table.<generation>        every version's table, kept
//! DIR/blocks/<h0h1>/<hash>      one zstd frame per distinct non-zero block
//! ```
//!
//! where `<hash>` is 64 lowercase hex digits and `<h0h1>` its first two.
//!
//! # The table
//!
//! All integers little-endian.
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `STRATADK` |
//! | 8 | 4 | format version, [`FORMAT_VERSION`] (1) |
//! | 12 | 4 | block size in bytes (a power of two, 4 KiB to 4 MiB; [`BLOCK_SIZE`] when packed here) |
//! | 16 | 8 | image size in bytes (a multiple of 512) |
//! | 24 | 8 | generation: 1 for the first pack, one more for each new version |
//! | 32 | 8 | block count n = ⌈image size / block size⌉ |
//! | 40 | 32 × n | block i's SHA-256, or 32 zero bytes: block i is all zeros and not stored |
//! | 40 + 32n | 64 | Ed25519 signature of bytes 0 to 40 + 32n |
//!
//! The last block may be short (the image size need only be whole
//! sectors); its hash is of its bytes up to the end of the image. An
//! all-zero digest cannot be the SHA-256 of any block anyone can find, so
//! it is free to mean "zeros".
//!
//! # Block size: 64 KiB
//!
//! Small blocks fetch less that the guest never reads; large ones cost
//! fewer requests and a smaller table. 64 KiB is sixteen ext4 blocks and
//! half of Linux's default 128 KiB read-ahead window, so a sequential read
//! needs two blocks (fetched side by side) and a scattered 4 KiB read
//! fetches 16 times what it needs, not 64 or 256 times; the table is 32
//! bytes per block, 0.05 % of the image (512 KiB for a 1 GiB disk), which
//! is what a warm machine downloads after an update besides the changed
//! blocks; and zstd's ratio on 64 KiB of file-system data is close to its
//! ratio on much larger inputs.
//!
//! # Invariants
//!
//! - A table whose signature does not verify against the drive's public
//!   key is refused when the drive is opened ([`StreamError::Signature`]):
//!   the machine does not start.
//! - A block is handed to the guest only after the SHA-256 of its
//!   decompressed content matched the table, whether it came from the
//!   server or from the local cache; a block that does not match is
//!   refused, counted, and fetched again (at most [`FETCH_ATTEMPTS`]
//!   times), and the read fails rather than return it.
//! - The cache holds only verified blocks, named by their hash, so a
//!   cache is valid for every version of every image.
//! - Guest writes never reach the cache or the server: they go to the
//!   copy-on-write overlay, which records the table it was made on and is
//!   refused on top of another.

mod disk;
mod format;
mod http;
mod keys;
mod overlay;
mod pack;
mod profile;

pub use disk::{Counters, StreamDisk, StreamOptions};
pub use format::{block_hex, Hash, Table, BLOCK_SIZE, FORMAT_VERSION, ZERO_HASH};
pub use http::{Fetcher, FETCH_ATTEMPTS, IN_FLIGHT};
pub use keys::{keygen, read_public_key, read_secret_key};
pub use pack::{commit, pack, sign_table, PackReport};
pub use profile::MAX_PROFILE;

use std::path::PathBuf;

/// Everything that can go wrong in this crate. Each message is one line
/// that names the file, URL or block concerned.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A local file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The table is not one (`what` says which check failed).
    #[error("{origin}: not a valid Strata disk table: {what}")]
    Table { origin: String, what: String },
    /// The table's signature does not verify against the public key.
    #[error("{origin}: the table's signature does not verify against {} (tampered table, or the wrong key)", key.display())]
    Signature { origin: String, key: PathBuf },
    /// A key file is not one.
    #[error("{}: {what}", path.display())]
    Key { path: PathBuf, what: String },
    /// An HTTP request failed after every attempt.
    #[error("{url}: {what}")]
    Http { url: String, what: String },
    /// A block's content did not match its hash after every attempt.
    #[error("block {index} ({url}): content does not match its SHA-256 after {attempts} fetches")]
    HashMismatch { index: u64, url: String, attempts: u32 },
    /// A stored block could not be decompressed to its expected size.
    #[error("block {index} ({origin}): {what}")]
    BadBlock { index: u64, origin: String, what: String },
    /// The image to pack is not a whole number of sectors.
    #[error("{}: {len} bytes is not a whole number of 512-byte sectors", path.display())]
    ImageSize { path: PathBuf, len: u64 },
    /// The overlay was made on another version of the disk.
    #[error("overlay {}: made on another version of the disk (table generation {had}, now {now}); run `strata disk commit` on it or remove it", path.display())]
    OverlayVersion { path: PathBuf, had: u64, now: u64 },
    /// A boot profile with a line that is not `[INDEX] HASH`.
    #[error("{origin}: line {line}: not a boot profile line (expected: block index, then its SHA-256 in hex)")]
    Profile { origin: String, line: usize },
    /// A drive URL that is not `http://HOST[:PORT]/PATH`.
    #[error("{0}: expected http://HOST[:PORT]/PATH/table")]
    Url(String),
}

impl StreamError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StreamError {
        let path = path.into();
        move |source| StreamError::Io { path, source }
    }
}
