//! The model bundle: the one self-describing file the trainer exports and the
//! browser loads.
//!
//! ```text
//! "METRIANN" | version u32 | header length u32 | header JSON
//!            | weights length u64 | weights (burnpack record) | crc32 of all before
//! ```
//! All integers little-endian. The header's fingerprint is the SHA-256 of the
//! weights, so an index can tell which model produced its vectors.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, DType, Device, TensorData};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Architecture, EmbeddingModel};
use crate::image::Preprocessing;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"METRIANN";
/// The bundle format this build writes; older versions are listed in `read`.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_NAME: &str = "metricann-bundle";

/// What the bundle says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BundleHeader {
    /// Always `metricann-bundle`.
    pub format: String,
    /// The network to build before loading the weights.
    pub architecture: Architecture,
    /// How images become input tensors.
    pub preprocessing: Preprocessing,
    /// Length of the embeddings (repeats the architecture's for readers
    /// that do not know the architecture schema).
    pub embedding_dim: usize,
    /// First 16 hex digits of the SHA-256 of the weights.
    pub fingerprint: String,
    /// How the weights were trained, when they were.
    #[serde(default)]
    pub training: Option<TrainingSummary>,
    /// The library version that wrote the bundle.
    pub created_by: String,
    /// The score below which a search answers "unknown", chosen on held-out
    /// images; apps that pass no threshold get this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

/// An open-set threshold and what it costs, measured on same-class and
/// other-class pairs of images the model was not trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Cosine similarity: a best match scoring below it is "unknown".
    pub threshold: f32,
    /// Share of other-class pairs scoring at or above the threshold.
    pub false_accept: f64,
    /// Share of same-class pairs scoring below it.
    pub false_reject: f64,
    pub same_class_pairs: usize,
    pub other_class_pairs: usize,
    /// What the pairs were drawn from.
    pub data: String,
}

/// The training run behind a bundle, for humans and for the README's tables.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub dataset: String,
    pub classes: usize,
    pub images: usize,
    pub epochs: usize,
    pub loss: String,
    pub backend: String,
    /// Validation metrics of the exported weights (e.g. `map_at_r`).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Anything else worth keeping (fonts, augmentation, seed).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A parsed bundle: header plus the raw weight record.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub header: BundleHeader,
    weights: Vec<u8>,
}

/// The bytes of a bundle file: magic, format version, the header's length and
/// JSON, the weights' length and bytes, and a CRC-32 of all of it. Takes the
/// header as raw bytes so that the fuzzer can frame headers no writer makes.
pub fn encode(header_json: &[u8], weights: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(28 + header_json.len() + weights.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(header_json.len() as u32).to_le_bytes());
    out.extend_from_slice(header_json);
    out.extend_from_slice(&(weights.len() as u64).to_le_bytes());
    out.extend_from_slice(weights);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The fingerprint of a weight record: 16 hex digits of its SHA-256.
pub fn fingerprint(weights: &[u8]) -> String {
    let digest = Sha256::digest(weights);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl Bundle {
    /// Captures a model's weights into a bundle.
    pub fn from_model(
        model: &EmbeddingModel,
        architecture: &Architecture,
        preprocessing: &Preprocessing,
        training: Option<TrainingSummary>,
    ) -> Result<Self> {
        // The record is the network's own, without the enum around it, so the
        // glyph bundles written before there was a choice keep their layout.
        let record = match model.valid() {
            EmbeddingModel::ResNet(m) => m.into_record(),
            EmbeddingModel::EfficientNet(m) => m.into_record(),
        };
        let weights = record
            .into_bytes()
            .map_err(|e| Error::Internal(format!("serialising weights: {e}")))?
            .to_vec();
        let header = BundleHeader {
            format: FORMAT_NAME.into(),
            architecture: architecture.clone(),
            preprocessing: preprocessing.clone(),
            embedding_dim: architecture.embedding_dim(),
            fingerprint: fingerprint(&weights),
            training,
            created_by: format!("metricann {}", env!("CARGO_PKG_VERSION")),
            calibration: None,
        };
        Ok(Self { header, weights })
    }

    /// The model fingerprint, which every index built with it records.
    pub fn fingerprint(&self) -> &str {
        &self.header.fingerprint
    }

    /// Encodes the bundle file.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = serde_json::to_vec(&self.header)
            .map_err(|e| Error::Internal(format!("serialising bundle header: {e}")))?;
        Ok(encode(&header, &self.weights))
    }

    /// Parses and checks a bundle file; `name` is what errors call it (a path, a URL).
    /// Checks magic, version, checksum, the header's sanity and that the
    /// fingerprint matches the weights. Whether the weights fit the architecture
    /// is checked by [`Bundle::load_model`].
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self> {
        let corrupt = |reason: String| Error::corrupt(name, reason);
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(corrupt("not a MetricANN model bundle (bad magic)".into()));
        }
        let mut reader = Reader {
            bytes,
            at: MAGIC.len(),
            name,
        };
        let version = u32::from_le_bytes(
            reader
                .take(4)?
                .try_into()
                .map_err(|_| corrupt("short".into()))?,
        );
        if version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "bundle format version {version} is not supported (this build reads version {FORMAT_VERSION})"
            )));
        }
        if bytes.len() < 4 {
            return Err(corrupt("truncated".into()));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(body) != stored {
            return Err(corrupt(
                "checksum mismatch: the file is damaged or truncated".into(),
            ));
        }
        let header_len = u32::from_le_bytes(to4(reader.take(4)?)) as usize;
        let header_bytes = reader.take(header_len)?;
        let weights_len = u64::from_le_bytes(to8(reader.take(8)?)) as usize;
        let weights = reader.take(weights_len)?.to_vec();
        if reader.at != body.len() {
            return Err(corrupt("unexpected bytes after the weights".into()));
        }
        let header: BundleHeader = serde_json::from_slice(header_bytes)
            .map_err(|e| corrupt(format!("bad header JSON: {e}")))?;
        if header.format != FORMAT_NAME {
            return Err(corrupt(format!("header format is '{}'", header.format)));
        }
        header
            .architecture
            .validate()
            .and(header.preprocessing.validate())
            .map_err(|e| corrupt(format!("bad header: {e}")))?;
        if let Some(c) = &header.calibration
            && !(c.threshold.is_finite() && (-1.0..=1.0).contains(&c.threshold))
        {
            return Err(corrupt(format!(
                "calibrated threshold {} is not a cosine similarity",
                c.threshold
            )));
        }
        if header.embedding_dim != header.architecture.embedding_dim() {
            return Err(corrupt(format!(
                "header says embedding_dim {} but the architecture has {}",
                header.embedding_dim,
                header.architecture.embedding_dim()
            )));
        }
        let actual = fingerprint(&weights);
        if actual != header.fingerprint {
            return Err(corrupt(format!(
                "fingerprint {} in the header does not match the weights ({actual})",
                header.fingerprint
            )));
        }
        Ok(Self { header, weights })
    }

    /// Builds the network the header describes and loads the weights into it,
    /// refusing weights that do not fit the architecture.
    pub fn load_model(&self, device: &Device) -> Result<EmbeddingModel> {
        let corrupt =
            |reason: String| Error::corrupt(format!("bundle {}", self.fingerprint()), reason);
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(self.weights.clone()))
            .map_err(|e| corrupt(format!("unreadable weights: {e}")))?;
        let misfit = |e: burn::store::RecordError| {
            corrupt(format!("weights do not fit the header's architecture: {e}"))
        };
        Ok(match self.header.architecture.init(device)? {
            EmbeddingModel::ResNet(m) => EmbeddingModel::ResNet(
                m.try_load_record(record.cast_to_module_dtype())
                    .map_err(misfit)?,
            ),
            EmbeddingModel::EfficientNet(m) => EmbeddingModel::EfficientNet(
                m.try_load_record(record.cast_to_module_dtype())
                    .map_err(misfit)?,
            ),
        })
    }

    /// The same bundle with its 32-bit float weights rounded to 16 bits: half
    /// the download. Loading casts them back to the device's float type, so the
    /// network computes in 32 bits with weights that differ by at most 2^-11
    /// relative. Parameter ids are renumbered in order, so the same weights
    /// always give the same fingerprint.
    pub fn to_half(&self) -> Result<Bundle> {
        let bad = |e: burn_pack::Error| Error::Internal(format!("rewriting weights: {e}"));
        let reader = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(self.weights.clone()))
            .map_err(bad)?;
        let mut tensors = Vec::new();
        for (i, tensor) in reader.into_tensors().map_err(bad)?.into_iter().enumerate() {
            let (name, dtype, shape, _, bytes) = tensor.into_parts().map_err(bad)?;
            let (bytes, shape, dtype) = match dtype {
                DType::F32 => TensorData::from_bytes(bytes, shape, dtype)
                    .try_cast(DType::F16)
                    .map_err(|e| Error::Internal(format!("rounding {name} to f16: {e:?}")))?
                    .into_parts(),
                _ => (bytes, shape, dtype),
            };
            tensors.push(burn_pack::Tensor::new(
                name,
                dtype,
                shape,
                Some(i as u64),
                bytes,
            ));
        }
        let weights = burn_pack::Writer::new(tensors)
            .into_bytes()
            .map_err(bad)?
            .to_vec();
        let mut header = self.header.clone();
        header.fingerprint = fingerprint(&weights);
        Ok(Self { header, weights })
    }

    /// The weight record (burn-pack bytes), as [`encode`] writes it.
    pub fn weights(&self) -> &[u8] {
        &self.weights
    }

    /// Size of the weight record in bytes.
    pub fn weights_len(&self) -> usize {
        self.weights.len()
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    name: &'a str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len().saturating_sub(4));
        match end {
            Some(end) => {
                let out = &self.bytes[self.at..end];
                self.at = end;
                Ok(out)
            }
            None => Err(Error::corrupt(self.name, "truncated")),
        }
    }
}

fn to4(s: &[u8]) -> [u8; 4] {
    [s[0], s[1], s[2], s[3]]
}

fn to8(s: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&s[..8]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use crate::model::ResNetConfig;
    use burn::tensor::{Distribution, Tensor};

    fn tiny_bundle() -> (Bundle, EmbeddingModel, Device) {
        let device = Backend::Ndarray.device().unwrap();
        let config = Architecture::from(ResNetConfig::tiny(8));
        let model = config.init(&device).unwrap();
        let bundle = Bundle::from_model(&model, &config, &Preprocessing::new(16), None).unwrap();
        (bundle, model, device)
    }

    /// Both models' embeddings of the same random batch.
    fn embed_both(a: &EmbeddingModel, b: &EmbeddingModel, device: &Device) -> (Vec<f32>, Vec<f32>) {
        let x = Tensor::<4>::random([2, 3, 16, 16], Distribution::Default, device);
        let embed = |m: &EmbeddingModel, x| {
            m.valid()
                .forward(x)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        (embed(a, x.clone()), embed(b, x))
    }

    #[test]
    fn round_trips_and_reproduces_embeddings() {
        let (bundle, model, device) = tiny_bundle();
        let bytes = bundle.to_bytes().unwrap();
        let loaded = Bundle::from_bytes("m.bin", &bytes).unwrap();
        assert_eq!(loaded.header, bundle.header);
        let reloaded = loaded.load_model(&device).unwrap();
        let (a, b) = embed_both(&model, &reloaded, &device);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5);
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let (bundle, _, _) = tiny_bundle();
        let bytes = bundle.to_bytes().unwrap();
        for at in [0, 9, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            let err = Bundle::from_bytes("model.bin", &bad).unwrap_err();
            assert_eq!(err.code(), "CORRUPT", "byte {at}: {err}");
            assert!(err.to_string().contains("model.bin"));
        }
    }

    #[test]
    fn truncation_and_other_files_are_refused() {
        let (bundle, _, _) = tiny_bundle();
        let bytes = bundle.to_bytes().unwrap();
        assert!(Bundle::from_bytes("m", &bytes[..bytes.len() - 10]).is_err());
        assert!(Bundle::from_bytes("m", &bytes[..6]).is_err());
        let err = Bundle::from_bytes("photo.png", b"\x89PNG\r\n\x1a\n....").unwrap_err();
        assert!(err.to_string().contains("bad magic"));
    }

    #[test]
    fn header_that_lies_about_the_architecture_is_refused() {
        let (mut bundle, _, device) = tiny_bundle();
        bundle.header.architecture = ResNetConfig {
            widths: vec![4, 4, 4],
            ..ResNetConfig::tiny(8)
        }
        .into();
        let err = bundle.load_model(&device).unwrap_err();
        assert_eq!(err.code(), "CORRUPT");
    }

    #[test]
    fn half_precision_bundles_are_smaller_and_embed_alike() {
        let (full, model, device) = tiny_bundle();
        let half = full.to_half().unwrap();
        assert_ne!(half.fingerprint(), full.fingerprint());
        assert_eq!(full.to_half().unwrap().fingerprint(), half.fingerprint());
        assert!(
            half.weights_len() < full.weights_len() * 6 / 10,
            "{} vs {} bytes",
            half.weights_len(),
            full.weights_len()
        );
        let loaded = Bundle::from_bytes("h", &half.to_bytes().unwrap())
            .unwrap()
            .load_model(&device)
            .unwrap();
        let (a, b) = embed_both(&model, &loaded, &device);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-2, "{x} vs {y}");
        }
    }

    #[test]
    fn calibration_survives_the_file_and_nonsense_is_refused() {
        let (mut bundle, _, _) = tiny_bundle();
        bundle.header.calibration = Some(Calibration {
            threshold: 0.5,
            false_accept: 0.01,
            false_reject: 0.1,
            same_class_pairs: 10,
            other_class_pairs: 90,
            data: "val".into(),
        });
        let loaded = Bundle::from_bytes("m", &bundle.to_bytes().unwrap()).unwrap();
        assert_eq!(loaded.header.calibration, bundle.header.calibration);
        if let Some(c) = bundle.header.calibration.as_mut() {
            c.threshold = 7.0;
        }
        let err = Bundle::from_bytes("m", &bundle.to_bytes().unwrap()).unwrap_err();
        assert_eq!(err.code(), "CORRUPT");
    }

    #[test]
    fn fingerprint_changes_with_the_weights() {
        let (a, _, _) = tiny_bundle();
        let (b, _, _) = tiny_bundle();
        assert_eq!(a.fingerprint().len(), 16);
        assert_ne!(
            a.fingerprint(),
            b.fingerprint(),
            "two random inits share a fingerprint"
        );
    }
}
