//! Metric-learning losses over a batch of unit embeddings and their class
//! labels: what the trainer minimises, and what adapts a model on the device.
//!
//! Distances are Euclidean on the unit sphere, `d = sqrt(2 − 2·cos)`, in [0, 2].
//! Masks are built on the CPU from the labels (a P×K batch is small) and enter
//! the graph as constants.

use std::fmt;
use std::str::FromStr;

use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

/// Larger than any distance on the unit sphere: masks pairs out of a min/max.
const FAR: f32 = 4.0;

/// Which loss `train` minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Triplet loss, hardest positive and hardest negative per anchor (Hermans et al. 2017).
    TripletHard,
    /// Triplet loss, for each positive pair the closest negative farther than the positive
    /// (FaceNet), falling back to the hardest negative when there is none.
    TripletSemiHard,
    /// Contrastive loss: pull positives together, push negatives beyond the margin.
    Contrastive,
}

impl FromStr for LossKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "triplet" | "triplet-hard" | "batch-hard" => Ok(LossKind::TripletHard),
            "triplet-semihard" | "semi-hard" | "semihard" => Ok(LossKind::TripletSemiHard),
            "contrastive" => Ok(LossKind::Contrastive),
            other => Err(format!(
                "unknown loss '{other}' (expected triplet, triplet-semihard or contrastive)"
            )),
        }
    }
}

impl fmt::Display for LossKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LossKind::TripletHard => "triplet",
            LossKind::TripletSemiHard => "triplet-semihard",
            LossKind::Contrastive => "contrastive",
        })
    }
}

/// Positive (same class, not itself) and negative (other class) masks, 1.0 or 0.0.
struct Masks {
    positive: Tensor<2>,
    negative: Tensor<2>,
    /// Anchors with at least one positive and one negative.
    valid_anchor: Tensor<2>,
    valid_count: f32,
    positive_count: f32,
    negative_count: f32,
}

fn masks(labels: &[usize], device: &Device) -> Masks {
    let b = labels.len();
    let mut pos = vec![0.0f32; b * b];
    let mut neg = vec![0.0f32; b * b];
    let mut valid = vec![0.0f32; b];
    for i in 0..b {
        let (mut has_pos, mut has_neg) = (false, false);
        for j in 0..b {
            if labels[i] == labels[j] && i != j {
                pos[i * b + j] = 1.0;
                has_pos = true;
            } else if labels[i] != labels[j] {
                neg[i * b + j] = 1.0;
                has_neg = true;
            }
        }
        valid[i] = f32::from(u8::from(has_pos && has_neg));
    }
    let count = |v: &[f32]| v.iter().sum::<f32>();
    Masks {
        valid_count: count(&valid),
        positive_count: count(&pos),
        negative_count: count(&neg),
        positive: Tensor::from_data(TensorData::new(pos, [b, b]), device),
        negative: Tensor::from_data(TensorData::new(neg, [b, b]), device),
        valid_anchor: Tensor::from_data(TensorData::new(valid, [b, 1]), device),
    }
}

/// Pairwise distances between unit rows: `[b, d]` → `[b, b]`.
pub fn pairwise_distance(embeddings: Tensor<2>) -> Tensor<2> {
    let sim = embeddings.clone().matmul(embeddings.transpose());
    (sim.mul_scalar(-2.0).add_scalar(2.0))
        .clamp_min(1e-12)
        .sqrt()
}

/// The loss of one batch. `embeddings` are unit rows; `labels[i]` is row i's class.
pub fn loss(kind: LossKind, embeddings: Tensor<2>, labels: &[usize], margin: f32) -> Tensor<1> {
    let device = embeddings.device();
    let m = masks(labels, &device);
    let d = pairwise_distance(embeddings);
    match kind {
        LossKind::TripletHard => {
            let hardest_pos = (d.clone() * m.positive.clone()).max_dim(1);
            let hardest_neg = (d + (m.negative.neg().add_scalar(1.0)).mul_scalar(FAR)).min_dim(1);
            let per_anchor = relu(hardest_pos - hardest_neg + margin) * m.valid_anchor;
            per_anchor.sum().div_scalar(m.valid_count.max(1.0))
        }
        LossKind::TripletSemiHard => {
            let b = labels.len();
            let not_neg = m.negative.clone().neg().add_scalar(1.0);
            let hardest_neg = (d.clone() + not_neg.mul_scalar(FAR)).min_dim(1); // [b, 1]
            let d_ap = d.clone().unsqueeze_dim::<3>(2); // [a, p, 1]
            let d_an = d.unsqueeze_dim::<3>(1); // [a, 1, n]
            let farther = d_an.clone().greater(d_ap.clone()).float(); // [a, p, n]
            let semi = farther * m.negative.unsqueeze_dim::<3>(1);
            let candidate = (d_an + semi.clone().neg().add_scalar(1.0).mul_scalar(FAR)).min_dim(2); // [a, p, 1]
            let has_semi = candidate.clone().lower_elem(FAR - 0.5).float();
            let fallback = hardest_neg.unsqueeze_dim::<3>(2).expand([b, b, 1]);
            let chosen = has_semi.clone() * candidate + (has_semi.neg().add_scalar(1.0)) * fallback;
            let per_pair = relu(d_ap - chosen + margin).reshape([b, b]) * m.positive;
            per_pair.sum().div_scalar(m.positive_count.max(1.0))
        }
        LossKind::Contrastive => {
            let pull = (d.clone().powf_scalar(2.0) * m.positive)
                .sum()
                .div_scalar(m.positive_count.max(1.0));
            let push = (relu(d.neg().add_scalar(margin)).powf_scalar(2.0) * m.negative)
                .sum()
                .div_scalar(m.negative_count.max(1.0));
            pull + push
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use crate::model::l2_normalize;

    fn device() -> Device {
        Backend::Ndarray.device().unwrap()
    }

    fn unit(rows: &[[f32; 2]]) -> Tensor<2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        l2_normalize(Tensor::from_data(
            TensorData::new(flat, [rows.len(), 2]),
            &device(),
        ))
    }

    fn value(t: Tensor<1>) -> f32 {
        t.into_scalar()
    }

    #[test]
    fn separated_classes_cost_nothing_and_mixed_ones_do() {
        let labels = [0, 0, 1, 1];
        let separated = unit(&[[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [-1.0, 0.01]]);
        let mixed = unit(&[[1.0, 0.0], [-1.0, 0.0], [1.0, 0.01], [-1.0, 0.01]]);
        for kind in [
            LossKind::TripletHard,
            LossKind::TripletSemiHard,
            LossKind::Contrastive,
        ] {
            let good = value(loss(kind, separated.clone(), &labels, 0.2));
            let bad = value(loss(kind, mixed.clone(), &labels, 0.2));
            assert!(good < 1e-3, "{kind}: separated batch costs {good}");
            assert!(bad > 0.5, "{kind}: mixed batch costs only {bad}");
        }
    }

    #[test]
    fn batch_hard_matches_a_hand_computation() {
        // Anchor 0 at angle 0, its positive at 90°, negatives at 60° and 180°.
        let labels = [0, 0, 1, 1];
        let e = unit(&[[1.0, 0.0], [0.0, 1.0], [0.5, 0.866_025_4], [-1.0, 0.0]]);
        let d = |a: f32| (2.0 - 2.0 * a.to_radians().cos()).sqrt();
        // Hardest positive/negative per anchor, by hand.
        let expected = [
            (d(90.0) - d(60.0) + 0.1).max(0.0), // anchor 0
            (d(90.0) - d(30.0) + 0.1).max(0.0), // anchor 1: closest negative at 60°
            (d(120.0) - d(30.0) + 0.1).max(0.0),
            (d(120.0) - d(90.0) + 0.1).max(0.0),
        ];
        let want = expected.iter().sum::<f32>() / 4.0;
        let got = value(loss(LossKind::TripletHard, e, &labels, 0.1));
        assert!((got - want).abs() < 1e-4, "got {got}, want {want}");
    }

    #[cfg(feature = "autodiff")]
    #[test]
    fn gradients_flow_to_the_embeddings() {
        let dev = device().autodiff();
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.2, -0.3, 1.0, 0.9, 0.1, 0.0, -1.0], [4, 2]),
            &dev,
        )
        .require_grad();
        let l = loss(
            LossKind::TripletHard,
            l2_normalize(x.clone()),
            &[0, 1, 0, 1],
            0.5,
        );
        let grads = l.backward();
        let g: Vec<f32> = x
            .grad(&grads)
            .expect("gradient")
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(g.iter().any(|v| v.abs() > 1e-6));
    }

    #[test]
    fn parses_loss_names() {
        assert_eq!(
            "triplet".parse::<LossKind>().unwrap(),
            LossKind::TripletHard
        );
        assert_eq!(
            "contrastive".parse::<LossKind>().unwrap(),
            LossKind::Contrastive
        );
        assert!("hinge".parse::<LossKind>().unwrap_err().contains("hinge"));
    }
}
