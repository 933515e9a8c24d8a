//! The tamper-evident chain: digests, MACs, the forward-secure key ratchet and seals.
//!
//! ```text
//! digest_i = SHA-256(canonical(entry_i))
//! mac_i    = HMAC-SHA256(K_e, mac_{i-1} ‖ seq_i:u64be ‖ digest_i)     mac_{-1} = 32 zero bytes
//! K_{e+1}  = HMAC-SHA256(K_e, "ratchet")                                K_e is erased after
//!
//!  seq:    0     1     2     3 (seal)   4     5     6 (seal)   7 …
//!  epoch:  0     0     0     0          1     1     1          2 …
//!                            │ signs head mac_2, epoch 0, through_seq 3
//!                            └ then the writer ratchets K_0 → K_1 and forgets K_0
//! ```
//!
//! A chain has exactly one writer ([`ChainWriter`]). Each seal is itself an entry of the
//! chain, MACed with the key of the epoch it closes; right after it the writer ratchets,
//! so whoever steals a running writer holds only the current key and cannot forge any
//! entry of an earlier epoch. The verifier ([`crate::verify`]) holds `K_0` and derives
//! every epoch key; anyone holding the Ed25519 public key can check a seal's signature.

use ed25519_dalek::{Signer, SigningKey, Verifier as _, VerifyingKey};
use hmac::{Hmac, KeyInit, Mac as _};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use zeroize::{Zeroize, Zeroizing};

use crate::canonical;
use crate::model::{Entry, Seal, SealKind};

/// A SHA-256 digest of a canonical entry.
pub type Digest = [u8; 32];

/// An HMAC-SHA256 chain link.
pub type Mac = [u8; 32];

/// The MAC that precedes seq 0.
pub const GENESIS_MAC: Mac = [0; 32];

/// Domain separation for seal signatures.
const SEAL_DOMAIN: &[u8] = b"vigie seal v1\0";

type HmacSha256 = Hmac<Sha256>;

/// The digest of canonical entry bytes.
pub fn digest(canonical: &[u8]) -> Digest {
    Sha256::digest(canonical).into()
}

/// What is stored beside each entry to place it in its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Position in the chain, contiguous from 0.
    pub seq: u64,
    /// The epoch whose key made `mac`.
    pub epoch: u32,
    /// `mac_seq`.
    pub mac: Mac,
}

/// The key of one epoch. Erased from memory when dropped or ratcheted.
pub struct EpochKey {
    epoch: u32,
    key: Zeroizing<[u8; 32]>,
    keyed: HmacSha256,
}

impl std::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochKey")
            .field("epoch", &self.epoch)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl EpochKey {
    /// The key of `epoch`, from its bytes.
    pub fn new(epoch: u32, key: [u8; 32]) -> Self {
        let key = Zeroizing::new(key);
        let keyed = keyed_hmac(&key);
        EpochKey { epoch, key, keyed }
    }

    /// Derives the key of `epoch` from `K_0` by ratcheting `epoch` times.
    pub fn derive(k0: &[u8; 32], epoch: u32) -> Self {
        let mut key = EpochKey::new(0, *k0);
        for _ in 0..epoch {
            key.ratchet();
        }
        key
    }

    /// The epoch this key belongs to.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The key's bytes, for the writer's state file. Never log them.
    pub fn secret(&self) -> &[u8; 32] {
        &self.key
    }

    /// Moves to the next epoch: `K_{e+1} = HMAC(K_e, "ratchet")`; the old key is erased.
    ///
    /// # Panics
    /// After 2^32 - 1 epochs (about 136 years of one seal a second).
    pub fn ratchet(&mut self) {
        let mut h = self.keyed.clone();
        h.update(b"ratchet");
        let mut next: [u8; 32] = h.finalize().into_bytes().into();
        self.key.copy_from_slice(&next);
        next.zeroize();
        self.keyed = keyed_hmac(&self.key);
        self.epoch = self.epoch.checked_add(1).expect("epoch counter overflow");
    }

    /// `HMAC(K_e, prev ‖ seq ‖ digest)`.
    pub fn mac(&self, prev: &Mac, seq: u64, digest: &Digest) -> Mac {
        // One update of the whole message: the hasher's buffering runs once, not three times.
        let mut message = [0u8; 32 + 8 + 32];
        message[..32].copy_from_slice(prev);
        message[32..40].copy_from_slice(&seq.to_be_bytes());
        message[40..].copy_from_slice(digest);
        let mut h = self.keyed.clone();
        h.update(&message);
        h.finalize().into_bytes().into()
    }
}

fn keyed_hmac(key: &[u8; 32]) -> HmacSha256 {
    // HMAC accepts keys of any length; a 32-byte key cannot fail.
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// The Ed25519 key pair that signs seals.
pub struct SealSigner(SigningKey);

impl std::fmt::Debug for SealSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SealSigner")
            .field(&self.public_key())
            .finish()
    }
}

impl SealSigner {
    /// A signer from its 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SealSigner(SigningKey::from_bytes(&seed))
    }

    /// The secret seed, for the key file. Never log it.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key that verifies this signer's seals.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    fn sign(&self, seal: &mut Seal) {
        seal.signature = self.0.sign(&seal_message(seal)).to_bytes();
    }
}

/// The bytes a seal's signature covers: a domain tag and the seal's canonical encoding
/// with the signature field zeroed.
pub fn seal_message(seal: &Seal) -> Vec<u8> {
    let mut unsigned = seal.clone();
    unsigned.signature = [0; 64];
    let mut msg = SEAL_DOMAIN.to_vec();
    canonical::encode_into(&Entry::Seal(unsigned), &mut msg);
    msg
}

/// Checks a seal's Ed25519 signature against a public key.
pub fn seal_signature_valid(seal: &Seal, public_key: &[u8; 32]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let signature = ed25519_dalek::Signature::from_bytes(&seal.signature);
    key.verify(&seal_message(seal), &signature).is_ok()
}

/// Where a chain's writer stands: enough to continue it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// The chain's identifier.
    pub chain_id: [u8; 16],
    /// The seq the next entry gets.
    pub next_seq: u64,
    /// The MAC of entry `next_seq - 1` ([`GENESIS_MAC`] for an empty chain).
    pub head_mac: Mac,
    /// The epoch of the next entry.
    pub epoch: u32,
}

impl ChainHead {
    /// The head of a new, empty chain.
    pub fn genesis(chain_id: [u8; 16]) -> Self {
        ChainHead {
            chain_id,
            next_seq: 0,
            head_mac: GENESIS_MAC,
            epoch: 0,
        }
    }

    /// The head right after an entry placed by `link`, given whether it was a seal.
    pub fn after(chain_id: [u8; 16], link: &Link, was_seal: bool) -> Self {
        ChainHead {
            chain_id,
            next_seq: link.seq + 1,
            head_mac: link.mac,
            epoch: link.epoch + u32::from(was_seal),
        }
    }
}

/// Why a writer cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The key belongs to a later epoch than the chain head: the chain lost entries.
    #[error("writer key is for epoch {key_epoch} but the chain head is at epoch {head_epoch}")]
    KeyAhead {
        /// Epoch of the key held.
        key_epoch: u32,
        /// Epoch of the chain head.
        head_epoch: u32,
    },
}

/// The single writer of one chain.
#[derive(Debug)]
pub struct ChainWriter {
    head: ChainHead,
    key: EpochKey,
    signer: SealSigner,
}

impl ChainWriter {
    /// A writer continuing the chain at `head`, with the key it holds (ratcheted forward if
    /// it is older than the head, e.g. after a crash between a seal and the state file).
    ///
    /// # Errors
    /// [`ChainError::KeyAhead`] when the key is newer than the head: the journal lost
    /// entries the key file saw, and the writer must not go on.
    pub fn new(head: ChainHead, mut key: EpochKey, signer: SealSigner) -> Result<Self, ChainError> {
        if key.epoch() > head.epoch {
            return Err(ChainError::KeyAhead {
                key_epoch: key.epoch(),
                head_epoch: head.epoch,
            });
        }
        while key.epoch() < head.epoch {
            key.ratchet();
        }
        Ok(ChainWriter { head, key, signer })
    }

    /// Where the chain stands.
    pub fn head(&self) -> &ChainHead {
        &self.head
    }

    /// The current epoch key (for the writer's state file).
    pub fn key(&self) -> &EpochKey {
        &self.key
    }

    /// The seal signer's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signer.public_key()
    }

    /// Places one canonical entry in the chain and returns its link.
    pub fn append(&mut self, canonical: &[u8]) -> Link {
        self.append_digest(&digest(canonical))
    }

    /// Places one entry, given its digest.
    pub fn append_digest(&mut self, digest: &Digest) -> Link {
        let seq = self.head.next_seq;
        let mac = self.key.mac(&self.head.head_mac, seq, digest);
        self.head.next_seq = seq + 1;
        self.head.head_mac = mac;
        Link {
            seq,
            epoch: self.head.epoch,
            mac,
        }
    }

    /// Writes a seal of the given kind: builds and signs the seal entry, places it in the
    /// chain under the current epoch, then ratchets the key. Returns the seal's canonical
    /// bytes and link, to be stored like any entry.
    pub fn seal(&mut self, kind: SealKind, sealed_at: OffsetDateTime) -> (Vec<u8>, Link) {
        let mut seal = Seal {
            kind,
            chain_id: self.head.chain_id,
            epoch: self.head.epoch,
            through_seq: self.head.next_seq,
            head_mac: self.head.head_mac,
            sealed_at,
            signature: [0; 64],
        };
        self.signer.sign(&mut seal);
        let bytes = canonical::encode(&Entry::Seal(seal));
        let link = self.append(&bytes);
        self.key.ratchet();
        self.head.epoch = self.key.epoch();
        (bytes, link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_the_hmac_of_prev_seq_and_digest_as_specified() {
        let key = EpochKey::new(0, [7; 32]);
        for (prev, seq, digest) in [
            ([0u8; 32], 0u64, [0u8; 32]),
            ([0xa5; 32], 1, [0x5a; 32]),
            ([1; 32], u64::MAX, [2; 32]),
            ([3; 32], 0x0102_0304_0506_0708, [4; 32]),
        ] {
            // `mac_i = HMAC-SHA256(K_epoch, mac_{i-1} ‖ seq_i ‖ digest_i)`, seq big-endian.
            let mut h = <HmacSha256 as KeyInit>::new_from_slice(&[7; 32]).expect("any key");
            h.update(&prev);
            h.update(&seq.to_be_bytes());
            h.update(&digest);
            let expected: Mac = h.finalize().into_bytes().into();
            assert_eq!(key.mac(&prev, seq, &digest), expected, "seq {seq}");
        }
    }
}
