//! Keys: creating a journal, the writer's state file and the verifier's key file.
//!
//! [`init`] draws a chain id, `K_0` and an Ed25519 seed from the system's generator and
//! writes two files:
//!
//! ```text
//! state         the writer's, 0600, replaced atomically (tmp, fsync, rename, fsync dir)
//!               magic "VIGIESTA" | version u16 | chain_id [16] | epoch u32
//!               | key [32] (K_epoch) | signing seed [32] | crc32c u32      (little-endian)
//! verifier.key  the verifier's, 0600, text; the operator moves it off the host
//!               chain_id=<32 hex>
//!               k0=<64 hex>
//!               public_key=<64 hex>
//! ```
//!
//! After each durable seal the writer rewrites `state` with the ratcheted key, so the key
//! of a sealed epoch is gone from the live files too (blocks the filesystem freed may keep
//! it until reused: put the journal on an encrypted volume). Secrets are never logged and
//! every `Debug` redacts them.

use std::fmt;
use std::fs;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use proto::chain::SealSigner;
use zeroize::Zeroizing;

use super::error::{JournalError, io};
use super::files::{self, DATA_MODE, SECRET_MODE, STATE_FILE, VERIFIER_FILE};
use super::format::{HEADER_BYTES, SegmentHeader, array, crc32c};

const STATE_MAGIC: &[u8; 8] = b"VIGIESTA";
const STATE_VERSION: u16 = 1;
const STATE_BYTES: usize = 8 + 2 + 16 + 4 + 32 + 32 + 4;

/// What the verifier needs: the chain id, `K_0` and the seals' public key.
#[derive(Clone)]
pub struct VerifierKeys {
    /// The chain's identifier.
    pub chain_id: [u8; 16],
    /// The initial MAC key, from which every epoch key derives. Secret.
    pub k0: Zeroizing<[u8; 32]>,
    /// The Ed25519 public key that checks seals.
    pub public_key: [u8; 32],
}

impl fmt::Debug for VerifierKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierKeys")
            .field("chain_id", &hex::encode(self.chain_id))
            .field("k0", &"<redacted>")
            .field("public_key", &hex::encode(self.public_key))
            .finish()
    }
}

impl VerifierKeys {
    /// The keys as [`proto::verify`] takes them.
    pub fn verify_keys(&self) -> proto::verify::VerifyKeys {
        proto::verify::VerifyKeys {
            k0: Some(*self.k0),
            public_key: Some(self.public_key),
            chain_id: Some(self.chain_id),
        }
    }

    /// The text of a `verifier.key` file.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "# vigie verifier key: keep it off the collector host\nchain_id={}\nk0={}\npublic_key={}\n",
            hex::encode(self.chain_id),
            hex::encode(*self.k0),
            hex::encode(self.public_key)
        ))
    }

    /// Reads a `verifier.key` file.
    ///
    /// # Errors
    /// [`JournalError::Io`] when it cannot be read, [`JournalError::KeyFile`] when a line
    /// is missing, repeated, unknown or not hex of the right length.
    pub fn read(path: &Path) -> Result<Self, JournalError> {
        let text = Zeroizing::new(fs::read_to_string(path).map_err(io("read", path))?);
        Self::parse(&text).map_err(|what| JournalError::KeyFile {
            path: path.to_path_buf(),
            what,
        })
    }

    fn parse(text: &str) -> Result<Self, &'static str> {
        let (mut chain_id, mut k0, mut public_key) = (None, None, None);
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once('=').ok_or("line without '='")?;
            let slot = match key.trim() {
                "chain_id" => &mut chain_id,
                "k0" => &mut k0,
                "public_key" => &mut public_key,
                _ => return Err("unknown key"),
            };
            if slot.is_some() {
                return Err("repeated key");
            }
            *slot = Some(Zeroizing::new(
                hex::decode(value.trim()).map_err(|_| "value is not hex")?,
            ));
        }
        let chain_id = chain_id.ok_or("chain_id missing")?;
        let k0 = k0.ok_or("k0 missing")?;
        let public_key = public_key.ok_or("public_key missing")?;
        if chain_id.len() != 16 || k0.len() != 32 || public_key.len() != 32 {
            return Err("value of the wrong length");
        }
        Ok(VerifierKeys {
            chain_id: array(&chain_id),
            k0: Zeroizing::new(array(&k0)),
            public_key: array(&public_key),
        })
    }
}

/// The writer's secrets and where its chain stands, as kept in the state file.
#[derive(Clone)]
pub(crate) struct WriterState {
    pub(crate) chain_id: [u8; 16],
    pub(crate) epoch: u32,
    pub(crate) key: Zeroizing<[u8; 32]>,
    pub(crate) seed: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for WriterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriterState")
            .field("chain_id", &hex::encode(self.chain_id))
            .field("epoch", &self.epoch)
            .field("key", &"<redacted>")
            .field("seed", &"<redacted>")
            .finish()
    }
}

impl WriterState {
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(STATE_BYTES));
        out.extend_from_slice(STATE_MAGIC);
        out.extend_from_slice(&STATE_VERSION.to_le_bytes());
        out.extend_from_slice(&self.chain_id);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&*self.key);
        out.extend_from_slice(&*self.seed);
        let crc = crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, &'static str> {
        if bytes.len() != STATE_BYTES {
            return Err("wrong size");
        }
        if &bytes[..8] != STATE_MAGIC {
            return Err("not a state file (bad magic)");
        }
        let crc_at = STATE_BYTES - 4;
        if crc32c(&bytes[..crc_at]) != u32::from_le_bytes(array(&bytes[crc_at..])) {
            return Err("checksum mismatch");
        }
        if u16::from_le_bytes([bytes[8], bytes[9]]) != STATE_VERSION {
            return Err("unknown version");
        }
        Ok(WriterState {
            chain_id: array(&bytes[10..26]),
            epoch: u32::from_le_bytes(array(&bytes[26..30])),
            key: Zeroizing::new(array(&bytes[30..62])),
            seed: Zeroizing::new(array(&bytes[62..94])),
        })
    }

    /// Reads `dir/state`.
    pub(crate) fn read(dir: &Path) -> Result<Self, JournalError> {
        let path = dir.join(STATE_FILE);
        let bytes = Zeroizing::new(fs::read(&path).map_err(io("read", &path))?);
        Self::decode(&bytes).map_err(|what| JournalError::KeyFile { path, what })
    }

    /// Replaces `dir/state` atomically and durably.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), JournalError> {
        files::write_atomic(
            dir,
            STATE_FILE,
            &self.encode(),
            SECRET_MODE,
            files::Durability::Full,
        )
    }

    /// The path of the state file in `dir`.
    pub(crate) fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }
}

/// Creates a journal in `dir` (created if missing, refused if not empty): a new chain id,
/// `K_0` and seal signing key, the writer's state file, the verifier's key file
/// (`verifier.key`, to be moved off the host) and the first, empty segment.
///
/// # Errors
/// [`JournalError::NotEmpty`] if `dir` holds anything, [`JournalError::Random`] if the
/// system's generator fails, [`JournalError::Io`] for any file operation.
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let keys = store::journal::init(dir.path()).unwrap();
/// assert!(!format!("{keys:?}").contains(&hex::encode(*keys.k0)));
/// ```
pub fn init(dir: &Path) -> Result<VerifierKeys, JournalError> {
    fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    if fs::read_dir(dir).map_err(io("list", dir))?.next().is_some() {
        return Err(JournalError::NotEmpty {
            dir: dir.to_path_buf(),
        });
    }
    let mut chain_id = [0u8; 16];
    let mut k0 = Zeroizing::new([0u8; 32]);
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut chain_id)?;
    getrandom::fill(&mut *k0)?;
    getrandom::fill(&mut *seed)?;
    let public_key = SealSigner::from_seed(*seed).public_key();
    let state = WriterState {
        chain_id,
        epoch: 0,
        key: k0.clone(),
        seed,
    };
    state.write(dir)?;
    let keys = VerifierKeys {
        chain_id,
        k0,
        public_key,
    };
    files::write_atomic(
        dir,
        VERIFIER_FILE,
        keys.to_text().as_bytes(),
        SECRET_MODE,
        files::Durability::Bytes,
    )?;
    let first = files::segment_path(dir, 0);
    let header = SegmentHeader {
        chain_id,
        first_seq: 0,
    }
    .encode();
    debug_assert_eq!(header.len() as u64, HEADER_BYTES);
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(DATA_MODE)
        .open(&first)
        .map_err(io("create", &first))?;
    std::io::Write::write_all(&mut &file, &header).map_err(io("write", &first))?;
    file.sync_all().map_err(io("fsync", &first))?;
    files::sync_dir(dir)?;
    tracing::info!(dir = %dir.display(), chain_id = %hex::encode(chain_id), "journal created");
    Ok(keys)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn init_writes_private_keys_and_refuses_a_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        let keys = init(dir.path()).unwrap();
        for name in [STATE_FILE, VERIFIER_FILE] {
            let mode = fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let read = VerifierKeys::read(&dir.path().join(VERIFIER_FILE)).unwrap();
        assert_eq!(read.chain_id, keys.chain_id);
        assert_eq!(*read.k0, *keys.k0);
        assert_eq!(read.public_key, keys.public_key);
        let state = WriterState::read(dir.path()).unwrap();
        assert_eq!(
            (state.chain_id, state.epoch, *state.key),
            (keys.chain_id, 0, *keys.k0)
        );
        let shown = format!("{keys:?} {state:?}");
        assert!(!shown.contains(&hex::encode(*keys.k0)));
        assert!(!shown.contains(&hex::encode(*state.seed)));
        assert!(matches!(
            init(dir.path()),
            Err(JournalError::NotEmpty { .. })
        ));
    }

    #[test]
    fn state_file_checks_its_crc() {
        let state = WriterState {
            chain_id: [1; 16],
            epoch: 7,
            key: Zeroizing::new([2; 32]),
            seed: Zeroizing::new([3; 32]),
        };
        let bytes = state.encode();
        let back = WriterState::decode(&bytes).unwrap();
        assert_eq!((back.epoch, *back.key, *back.seed), (7, [2; 32], [3; 32]));
        let mut bad = bytes.to_vec();
        bad[40] ^= 1;
        assert!(WriterState::decode(&bad).is_err());
    }

    #[test]
    fn verifier_file_refuses_bad_lines() {
        let keys = VerifierKeys {
            chain_id: [1; 16],
            k0: Zeroizing::new([2; 32]),
            public_key: [3; 32],
        };
        let text = keys.to_text();
        assert!(VerifierKeys::parse(&text).is_ok());
        assert!(VerifierKeys::parse(&text.replace("k0=", "k1=")).is_err());
        assert!(VerifierKeys::parse(&format!("{}k0=00\n", *text)).is_err());
        assert!(VerifierKeys::parse("chain_id=zz").is_err());
    }
}
