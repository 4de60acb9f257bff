//! Ed25519 key files: one line of 64 hex digits each, the secret key
//! (its 32-byte seed) readable by its owner only, the public key beside it
//! as `KEY.pub`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::StreamError;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_hex32(path: &Path) -> Result<[u8; 32], StreamError> {
    let bad = |what: &str| StreamError::Key { path: path.to_path_buf(), what: what.to_string() };
    let meta = std::fs::metadata(path).map_err(StreamError::io(path))?;
    if !meta.is_file() || meta.len() > 256 {
        return Err(bad("not a key file (one line of 64 hex digits)"));
    }
    let text = std::fs::read_to_string(path).map_err(StreamError::io(path))?;
    let t = text.trim();
    if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("not a key file (one line of 64 hex digits)"));
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|_| bad("bad hex digit"))?;
    }
    Ok(out)
}

/// Makes a new key pair: the secret key at `path` (mode 0600, never
/// overwritten) and the public key at `path.pub`. Returns the public
/// key's path.
pub fn keygen(path: &Path) -> Result<PathBuf, StreamError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|e| StreamError::Key { path: path.to_path_buf(), what: format!("no randomness: {e}") })?;
    let key = SigningKey::from_bytes(&seed);
    let public = PathBuf::from(format!("{}.pub", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(StreamError::io(path))?;
    f.write_all(format!("{}\n", hex(&seed)).as_bytes()).map_err(StreamError::io(path))?;
    std::fs::write(&public, format!("{}\n", hex(key.verifying_key().as_bytes()))).map_err(StreamError::io(&public))?;
    Ok(public)
}

pub fn read_secret_key(path: &Path) -> Result<SigningKey, StreamError> {
    Ok(SigningKey::from_bytes(&read_hex32(path)?))
}

pub fn read_public_key(path: &Path) -> Result<VerifyingKey, StreamError> {
    VerifyingKey::from_bytes(&read_hex32(path)?)
        .map_err(|_| StreamError::Key { path: path.to_path_buf(), what: "not an Ed25519 public key".into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_pair_that_reads_back_and_is_not_overwritten() {
        let dir = crate::pack::tests::tempdir("keys");
        let k = dir.join("k");
        let pubp = keygen(&k).unwrap();
        let sk = read_secret_key(&k).unwrap();
        assert_eq!(read_public_key(&pubp).unwrap(), sk.verifying_key());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&k).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(keygen(&k).is_err(), "an existing key is never overwritten");
        std::fs::write(dir.join("bad"), "zz\n").unwrap();
        assert!(read_public_key(&dir.join("bad")).unwrap_err().to_string().contains("64 hex digits"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
