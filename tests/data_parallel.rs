//! Data-parallel training's arithmetic, without a GPU: one step of two
//! replicas, each on its own P×K batch, their gradients laid end to end
//! (`gradients::flatten`), averaged, laid back (`gradients::unflatten`) and
//! applied by each replica's optimizer, lands both replicas on the weights
//! that one device reaches by stepping on the mean of the two batches'
//! losses. The trainer averages with burn's all-reduce, which only CUDA has
//! (NCCL); here the mean of the two flat vectors is taken on the CPU, which
//! is what that all-reduce computes. The collective itself is checked on the
//! GPU machine (docs/training.md, "Several GPUs").

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};
use metricann::backend::Backend;
use metricann::model::loss::{LossKind, loss};
use metricann::model::{Architecture, EmbeddingModel, ResNetConfig};
use metricann_trainer::train::gradients::{flatten, unflatten};
use metricann_trainer::train::{Rates, backward, update};

const MARGIN: f32 = 0.2;
const RATES: Rates = Rates {
    head: 1e-2,
    backbone: 1e-2,
};

/// The trained parameters' values (batch norm's running statistics, which
/// have no gradient and each replica keeps on its own batches, left out).
fn trained(model: &EmbeddingModel) -> Vec<Vec<f32>> {
    struct Trained(Vec<Vec<f32>>);
    impl ModuleVisitor for Trained {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let tensor = param.val();
            if tensor.is_require_grad() {
                self.0.push(tensor.into_data().try_to_vec().unwrap());
            }
        }
    }
    let mut found = Trained(Vec::new());
    model.visit(&mut found);
    found.0
}

fn largest_gap(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

struct Batch {
    input: Tensor<4>,
    labels: Vec<usize>,
}

fn batch(device: &Device, first_class: usize) -> Batch {
    Batch {
        input: Tensor::random([8, 3, 32, 32], Distribution::Normal(0.0, 1.0), device),
        labels: (0..8).map(|i| first_class + i / 2).collect(),
    }
}

/// One device: a single backward pass through the mean of both batches'
/// losses, each batch forwarded (and mined) on its own.
fn one_device(model: EmbeddingModel, batches: &[Batch]) -> EmbeddingModel {
    let losses: Vec<Tensor<1>> = batches
        .iter()
        .map(|b| {
            let embeddings = model.forward(b.input.clone());
            loss(LossKind::TripletHard, embeddings, &b.labels, MARGIN)
        })
        .collect();
    let mean = Tensor::cat(losses, 0).mean();
    let grads = GradientsParams::from_grads(mean.backward(), &model);
    update(model, &mut AdamWConfig::new().init(), grads, RATES)
}

/// Two replicas, each with its own optimizer, their flat gradients averaged.
fn two_replicas(model: &EmbeddingModel, batches: &[Batch]) -> Vec<EmbeddingModel> {
    let replicas: Vec<EmbeddingModel> = batches.iter().map(|_| model.clone()).collect();
    let flat: Vec<_> = replicas
        .iter()
        .zip(batches)
        .map(|(replica, b)| {
            let (_, grads) = backward(
                replica,
                b.input.clone(),
                &b.labels,
                LossKind::TripletHard,
                MARGIN,
            );
            flatten(replica, grads).expect("every trained parameter has a gradient")
        })
        .collect();
    assert_eq!(
        flat[0].1, flat[1].1,
        "the replicas lay their gradients out alike"
    );
    let mean = (flat[0].0.clone() + flat[1].0.clone()) / 2.0;
    replicas
        .into_iter()
        .map(|replica| {
            let grads = unflatten(&replica, mean.clone(), &flat[0].1);
            update(replica, &mut AdamWConfig::new().init(), grads, RATES)
        })
        .collect()
}

#[test]
fn two_replicas_averaging_their_gradients_step_like_one_device_on_both_batches() {
    let device = Backend::Ndarray.training_device().unwrap();
    device.seed(7);
    let model = Architecture::from(ResNetConfig::tiny(16))
        .init(&device)
        .unwrap();
    let batches = [batch(&device, 0), batch(&device, 4)];
    let before = trained(&model);

    let single = trained(&one_device(model.clone(), &batches));
    let replicas: Vec<_> = two_replicas(&model, &batches).iter().map(trained).collect();

    assert!(
        largest_gap(&before, &single) > 1e-3,
        "the step moved the weights"
    );
    assert_eq!(replicas[0], replicas[1], "the replicas stay equal");
    let gap = largest_gap(&single, &replicas[0]);
    assert!(gap <= 1e-5, "one device and two differ by {gap}");

    // Either replica's gradients alone would step elsewhere: the average matters.
    let alone = {
        let (_, grads) = backward(
            &model,
            batches[0].input.clone(),
            &batches[0].labels,
            LossKind::TripletHard,
            MARGIN,
        );
        trained(&update(
            model.clone(),
            &mut AdamWConfig::new().init(),
            grads,
            RATES,
        ))
    };
    assert!(largest_gap(&single, &alone) > 1e-4);
}
