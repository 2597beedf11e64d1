//! Data-parallel training: a replica of the network and of its optimizer on
//! every device, each stepping on its own P×K batch in its own thread. After
//! the backward pass each replica lays its gradients end to end in one vector
//! ([`gradients::flatten`]) and burn's collective all-reduce (NCCL on CUDA)
//! averages that vector across the devices in one call; the optimizers then
//! take the same step from the same weights, so the replicas stay equal.
//!
//! Batch-hard mining stays within each device's batch: a step of N devices is
//! N batches of P×K, each mined on its own, their gradients averaged.
//!
//! Each replica keeps one stream of burn's work queue for the whole run: burn
//! gives every new thread a new stream, and a tensor met on another stream than
//! its own costs a blocking hand-over. The device threads live one epoch, so
//! without a fixed stream every epoch would hand over every weight and
//! optimizer moment again. Replica 0's stream is the caller's, where it is
//! validated and checkpointed.

use std::sync::mpsc::{Receiver, channel, sync_channel};

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::distributed::{
    DistributedConfig, DistributedContext, ReduceOperation, all_reduce,
};
use burn::tensor::{Device, StreamId};

use metricann::model::EmbeddingModel;
use metricann::{Error, Result};

use super::{Batch, Run, gradients};

/// The network and optimizer on each training device.
pub(super) struct Replicas {
    /// Replica 0 is the one validated and checkpointed: all hold the same weights.
    models: Vec<EmbeddingModel>,
    optimizers: Vec<ModuleOptimizer>,
    devices: Vec<Device>,
    /// The stream each replica's work is queued on.
    streams: Vec<StreamId>,
    /// burn's collective for `devices`, open while they train; none on one device.
    collective: Option<DistributedContext>,
}

/// How a replica's gradients become the step's gradients.
pub(super) enum Exchange<'a> {
    /// One device: its gradients as they are.
    Alone,
    /// Their mean over these devices, by burn's all-reduce.
    AllReduce(&'a [Device]),
}

impl Exchange<'_> {
    pub(super) fn apply(&self, model: &EmbeddingModel, grads: GradientsParams) -> GradientsParams {
        let Exchange::AllReduce(devices) = self else {
            return grads;
        };
        match gradients::flatten(model, grads) {
            Some((flat, layout)) => {
                let mean = all_reduce(flat, ReduceOperation::Mean, devices.to_vec()).resolve();
                gradients::unflatten(model, mean, &layout)
            }
            None => GradientsParams::new(),
        }
    }
}

impl Replicas {
    /// The plain loop: one device, no collective.
    pub(super) fn single(
        model: EmbeddingModel,
        optimizer: ModuleOptimizer,
        device: Device,
    ) -> Self {
        Replicas {
            models: vec![model],
            optimizers: vec![optimizer],
            devices: vec![device],
            streams: vec![StreamId::current()],
            collective: None,
        }
    }

    /// Starts burn's collective for `devices` and puts a copy of `model`
    /// (the same weights and parameter ids) and of `optimizer` on each.
    pub(super) fn data_parallel(
        model: EmbeddingModel,
        optimizer: ModuleOptimizer,
        devices: Vec<Device>,
    ) -> Self {
        let collective = DistributedContext::init(
            devices.clone(),
            DistributedConfig {
                all_reduce_op: ReduceOperation::Mean,
            },
        );
        let streams: Vec<StreamId> = (0..devices.len())
            .map(|i| match i {
                0 => StreamId::current(),
                _ => StreamId::allocate(),
            })
            .collect();
        let models = devices
            .iter()
            .zip(&streams)
            .map(|(device, stream)| stream.executes(|| model.clone().fork(device)))
            .collect();
        tracing::info!(devices = devices.len(), "data-parallel training");
        Replicas {
            models,
            optimizers: vec![optimizer; devices.len()],
            devices,
            streams,
            collective: Some(collective),
        }
    }

    /// How many devices train; a step takes one batch for each.
    pub(super) fn len(&self) -> usize {
        self.models.len()
    }

    /// The network and optimizer to validate and checkpoint.
    pub(super) fn first(&self) -> (&EmbeddingModel, &ModuleOptimizer) {
        (&self.models[0], &self.optimizers[0])
    }

    /// Runs every whole step that `batches` holds, the first at schedule index
    /// `first_step`, reporting each step's loss (the devices' mean) and images.
    pub(super) fn run_steps(
        &mut self,
        run: &Run,
        batches: Receiver<Batch>,
        first_step: usize,
        epoch: usize,
        on_step: &mut dyn FnMut(f32, usize) -> Result<()>,
    ) -> Result<()> {
        if self.collective.is_none() {
            let mut model = self.models.remove(0);
            let mut outcome = Ok(());
            for (i, batch) in batches.into_iter().enumerate() {
                let images = batch.1.len();
                let device = &self.devices[0];
                let (next, loss) = run.batch(
                    model,
                    &mut self.optimizers[0],
                    device,
                    &Exchange::Alone,
                    run.rates(first_step + i, epoch),
                    batch,
                );
                model = next;
                outcome = on_step(loss, images);
                if outcome.is_err() {
                    break;
                }
            }
            self.models.insert(0, model);
            return outcome;
        }
        self.run_parallel_steps(run, batches, first_step, epoch, on_step)
    }

    /// One thread a device; the caller's thread hands out one batch to each
    /// device per step (all or none, or a device would wait forever in the
    /// all-reduce) and collects the losses.
    fn run_parallel_steps(
        &mut self,
        run: &Run,
        batches: Receiver<Batch>,
        first_step: usize,
        epoch: usize,
        on_step: &mut dyn FnMut(f32, usize) -> Result<()>,
    ) -> Result<()> {
        let n = self.len();
        let models = std::mem::take(&mut self.models);
        let optimizers = std::mem::take(&mut self.optimizers);
        let devices = self.devices.clone();
        let exchange = &Exchange::AllReduce(&self.devices);
        let (outcome, replicas) = std::thread::scope(|scope| {
            let (losses_tx, losses) = channel::<(usize, f32)>();
            let mut inputs = Vec::with_capacity(n);
            let mut workers = Vec::with_capacity(n);
            let replicas = models.into_iter().zip(optimizers).zip(devices);
            for (i, (((mut model, mut optimizer), device), &stream)) in
                replicas.zip(&self.streams).enumerate()
            {
                let (input, work) = sync_channel::<Batch>(1);
                inputs.push(input);
                let losses_tx = losses_tx.clone();
                workers.push(scope.spawn(move || {
                    for (k, batch) in work.into_iter().enumerate() {
                        let rates = run.rates(first_step + k, epoch);
                        let (next, loss) = stream.executes(|| {
                            run.batch(model, &mut optimizer, &device, exchange, rates, batch)
                        });
                        model = next;
                        if losses_tx.send((i, loss)).is_err() {
                            break;
                        }
                    }
                    (model, optimizer)
                }));
            }
            drop(losses_tx);
            let outcome = feed_steps(&batches, &inputs, &losses, on_step);
            drop(inputs);
            let replicas: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
            (outcome, replicas)
        });
        for replica in replicas {
            let (model, optimizer) = replica
                .map_err(|_| Error::Internal("a training device's thread panicked".into()))?;
            self.models.push(model);
            self.optimizers.push(optimizer);
        }
        outcome
    }
}

/// Hands each device one batch a step and reports the step once every device
/// has finished it.
fn feed_steps(
    batches: &Receiver<Batch>,
    inputs: &[std::sync::mpsc::SyncSender<Batch>],
    losses: &Receiver<(usize, f32)>,
    on_step: &mut dyn FnMut(f32, usize) -> Result<()>,
) -> Result<()> {
    let n = inputs.len();
    loop {
        let step: Vec<Batch> = batches.iter().take(n).collect();
        if step.len() < n {
            return Ok(());
        }
        let images = step.iter().map(|(_, labels)| labels.len()).sum();
        for (input, batch) in inputs.iter().zip(step) {
            input
                .send(batch)
                .map_err(|_| Error::Internal("a training device stopped".into()))?;
        }
        let mut sum = 0.0;
        for _ in 0..n {
            let (_, loss) = losses
                .recv()
                .map_err(|_| Error::Internal("a training device stopped".into()))?;
            sum += loss;
        }
        on_step(sum / n as f32, images)?;
    }
}
