//! Data-parallel training's half that runs without a GPU: the parameters a
//! replica marks for burn's gradient all-reduce. ndarray tensors cannot carry
//! the marks, so this runs on burn's wgpu backend over Mesa's lavapipe. The
//! all-reduce itself needs CUDA (NCCL) and is checked on the GPU machine
//! (docs/training.md, "Several GPUs"). Skipped, saying why, only when no
//! Vulkan adapter exists.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::AdamWConfig;
use burn::tensor::wgpu::WgpuBackend;
use burn::tensor::{Device, Distribution, Tensor};
use metricann::model::loss::LossKind;
use metricann::model::{Architecture, EmbeddingModel, ResNetConfig};
use metricann_trainer::train::{Rates, mark_distributed, step};

const LAVAPIPE_ICD: &str = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json";

/// Each trained float parameter (batch norm's running statistics are float
/// parameters without gradients, left out): its id, its values, whether it is
/// marked.
struct Parameters(Vec<(ParamId, Vec<f32>, bool)>);

impl ModuleVisitor for Parameters {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        if tensor.is_require_grad() {
            let marked = tensor.is_distributed();
            let values: Vec<f32> = tensor.into_data().try_to_vec().unwrap();
            self.0.push((param.id, values, marked));
        }
    }
}

fn parameters(model: &EmbeddingModel) -> Vec<(ParamId, Vec<f32>, bool)> {
    let mut found = Parameters(Vec::new());
    model.visit(&mut found);
    found.0
}

fn lavapipe() -> Option<Device> {
    if std::env::var_os("VK_ICD_FILENAMES").is_none() && std::path::Path::new(LAVAPIPE_ICD).exists()
    {
        // SAFETY: this test binary holds this one test, which sets the variable
        // before any wgpu/Vulkan code runs; no other thread reads the environment.
        unsafe { std::env::set_var("VK_ICD_FILENAMES", LAVAPIPE_ICD) };
    }
    match Device::wgpu_options()
        .graphics_api(WgpuBackend::Vulkan)
        .init()
    {
        Ok(device) => Some(device),
        Err(e) => {
            println!(
                "SKIPPED a_replica_marks_every_parameter_and_alone_trains_as_before: \
                 no Vulkan adapter ({e}); install mesa-vulkan-drivers"
            );
            None
        }
    }
}

#[test]
fn a_replica_marks_every_parameter_and_alone_trains_as_before() {
    let Some(gpu) = lavapipe() else { return };
    let device = gpu.autodiff();
    device.seed(7);
    let model = Architecture::from(ResNetConfig::tiny(16))
        .init(&device)
        .unwrap();
    let marked = mark_distributed(model.clone());

    let (before, after) = (parameters(&model), parameters(&marked));
    assert!(!before.is_empty());
    assert!(
        before.iter().all(|(_, _, m)| !m),
        "nothing is marked before"
    );
    assert!(
        after.iter().all(|(_, _, m)| *m),
        "every trained parameter is marked"
    );
    let unmarked = |p: &[(ParamId, Vec<f32>, bool)]| -> Vec<(ParamId, Vec<f32>)> {
        p.iter().map(|(id, v, _)| (*id, v.clone())).collect()
    };
    assert_eq!(
        unmarked(&before),
        unmarked(&after),
        "same ids, same weights"
    );

    // With no collective running, the marks alone change nothing: one step
    // from the same weights on the same batch lands on the same weights, and
    // the optimizer keeps the marks on the stepped parameters.
    let input = Tensor::<4>::random([8, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let labels: Vec<usize> = (0..8).map(|i| i / 2).collect();
    let stepped = |model: EmbeddingModel| {
        let mut optimizer = AdamWConfig::new().init();
        let (model, loss) = step(
            model,
            &mut optimizer,
            input.clone(),
            &labels,
            LossKind::TripletHard,
            0.2,
            Rates::uniform(1e-2),
        );
        (parameters(&model), loss.into_scalar::<f32>())
    };
    let ((plain, plain_loss), (replica, replica_loss)) = (stepped(model), stepped(marked));
    assert_eq!(plain_loss, replica_loss);
    assert!(
        replica.iter().all(|(_, _, m)| *m),
        "the step keeps the marks"
    );
    let moved = plain
        .iter()
        .zip(&before)
        .any(|((_, now, _), (_, was, _))| now != was);
    assert!(moved, "the step changed the weights");
    for ((id, a, _), (_, b, _)) in plain.iter().zip(&replica) {
        let gap = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(gap <= 1e-6, "parameter {id:?}: {gap}");
    }
}
