//! The adapted projection head a gallery's vectors were embedded with.
//!
//! After on-device adaptation (`crate::adapt`) the gallery holds vectors of
//! the shipped model with another head. The head travels with the gallery,
//! so that reopening it (or importing its export) embeds queries the same way:
//! the manifest names the shipped model it adapts, and the blob `head` holds
//! its weights. The gallery's own fingerprint stays that of the adapted model
//! (`Embedder::with_head` derives it), so a model without the head is told
//! the vectors are not its own.
//!
//! The head is only ever written with a whole new gallery (re-embedding,
//! import), which replaces every stored blob at once: one fixed name is enough.

use serde::{Deserialize, Serialize};

use crate::blob;
use crate::embed::Embedder;
use crate::{Error, Result};

/// Blob kind of an adapted head.
pub const KIND_HEAD: [u8; 4] = *b"HEAD";
/// The blob that holds the adapted head.
pub const HEAD_BLOB: &str = "head";

/// A projection head retrained for this gallery's classes.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptedHead {
    /// Fingerprint of the shipped model whose head this replaces.
    pub base_fingerprint: String,
    /// The weights, in `ProjectionHead::to_floats`'s layout.
    pub weights: Vec<f32>,
}

/// The manifest's record of the head: which model it adapts, and the size of
/// its blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadEntry {
    pub base: String,
    pub bytes: u64,
}

impl AdaptedHead {
    /// The sealed blob: the weights as little-endian `f32`.
    pub(super) fn encode(&self) -> Vec<u8> {
        let payload: Vec<u8> = self.weights.iter().flat_map(|w| w.to_le_bytes()).collect();
        blob::seal(KIND_HEAD, &payload)
    }

    /// The head the manifest's `entry` describes, from its blob.
    pub(super) fn decode(entry: &HeadEntry, bytes: &[u8]) -> Result<AdaptedHead> {
        let payload = blob::open(HEAD_BLOB, KIND_HEAD, bytes)?;
        if payload.is_empty() || payload.len() % 4 != 0 {
            return Err(Error::corrupt(
                HEAD_BLOB,
                format!("{} bytes are not a list of f32", payload.len()),
            ));
        }
        let weights: Vec<f32> = payload
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if weights.iter().any(|w| !w.is_finite()) {
            return Err(Error::corrupt(HEAD_BLOB, "a weight is not finite"));
        }
        Ok(AdaptedHead {
            base_fingerprint: entry.base.clone(),
            weights,
        })
    }

    pub(super) fn entry(&self) -> HeadEntry {
        HeadEntry {
            base: self.base_fingerprint.clone(),
            bytes: (blob::HEADER_LEN + 4 * self.weights.len() + blob::TRAILER_LEN) as u64,
        }
    }

    /// `base` with this head, when the head adapts `base` (`None` when it
    /// adapts another model).
    pub fn apply(&self, base: &Embedder) -> Result<Option<Embedder>> {
        if self.base_fingerprint != base.fingerprint() {
            return Ok(None);
        }
        base.with_head(&self.weights).map(Some)
    }

    /// Refuses a head that could not have come from adaptation.
    pub(super) fn validate(&self) -> Result<()> {
        if self.base_fingerprint.trim().is_empty()
            || self.weights.is_empty()
            || self.weights.iter().any(|w| !w.is_finite())
        {
            return Err(Error::BadInput(
                "an adapted head needs its base model's fingerprint and finite weights".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let head = AdaptedHead {
            base_fingerprint: "base".into(),
            weights: vec![0.5, -1.25, 3.0],
        };
        let bytes = head.encode();
        let entry = head.entry();
        assert_eq!(entry.bytes, bytes.len() as u64);
        assert_eq!(AdaptedHead::decode(&entry, &bytes).unwrap(), head);

        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 1;
        assert!(matches!(
            AdaptedHead::decode(&entry, &flipped),
            Err(Error::Corrupt { .. })
        ));
        let nan = AdaptedHead {
            weights: vec![f32::NAN],
            ..head.clone()
        };
        assert!(matches!(
            AdaptedHead::decode(&entry, &nan.encode()),
            Err(Error::Corrupt { .. })
        ));
        assert!(nan.validate().is_err());
        assert!(head.validate().is_ok());
    }

    #[test]
    fn applies_to_the_model_it_adapts_only() {
        use crate::gallery::{Gallery, GalleryConfig};
        use crate::index::IndexConfig;
        let base = crate::embed::tiny_embedder(24);
        let mut weights = base.head().unwrap().to_floats();
        weights[0] += 0.5;
        let head = AdaptedHead {
            base_fingerprint: base.fingerprint().to_string(),
            weights,
        };
        let adapted = head.apply(&base).unwrap().expect("it adapts this model");
        assert_ne!(adapted.fingerprint(), base.fingerprint());
        let other = AdaptedHead {
            base_fingerprint: "another model".into(),
            ..head.clone()
        };
        assert!(other.apply(&base).unwrap().is_none());

        let config = |fingerprint: &str, head: Option<AdaptedHead>| GalleryConfig {
            dim: base.dim(),
            fingerprint: fingerprint.into(),
            index: IndexConfig::default(),
            head,
        };
        let (gallery, _) = Gallery::create(config(adapted.fingerprint(), Some(head))).unwrap();
        let chosen = gallery.embedder_for(&base).unwrap();
        assert_eq!(chosen.fingerprint(), adapted.fingerprint());
        let (plain, _) = Gallery::create(config(base.fingerprint(), None)).unwrap();
        assert_eq!(
            plain.embedder_for(&base).unwrap().fingerprint(),
            base.fingerprint()
        );
        let (foreign, _) = Gallery::create(config(adapted.fingerprint(), Some(other))).unwrap();
        assert!(matches!(
            foreign.embedder_for(&base),
            Err(Error::ModelMismatch { .. })
        ));
    }
}
