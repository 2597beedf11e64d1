//! A step's gradients as one flat vector and back, so that data-parallel
//! training exchanges them in a single collective call a step (as PyTorch's
//! DDP does with its gradient buckets) rather than one call a parameter;
//! and a module's share of the gradients split off from the rest, so that
//! the backbone and the head can step at different rates.

use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Where each parameter's gradient lies in a [`flatten`]ed vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Parameter, first element, element count; in the module's visiting order.
    slots: Vec<(ParamId, usize, usize)>,
}

impl Layout {
    /// Elements of the flat vector.
    pub fn len(&self) -> usize {
        self.slots.last().map_or(0, |&(_, start, n)| start + n)
    }

    /// True when no parameter had a gradient.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every gradient of `module`'s float parameters found in `grads`, reshaped
/// to one dimension and concatenated in the module's visiting order (the same
/// on every replica, which hold the same network); `None` when there are none.
pub fn flatten<M: Module>(module: &M, mut grads: GradientsParams) -> Option<(Tensor<1>, Layout)> {
    let mut gather = Gather {
        grads: &mut grads,
        parts: Vec::new(),
        layout: Layout { slots: Vec::new() },
    };
    module.visit(&mut gather);
    let Gather { parts, layout, .. } = gather;
    (!parts.is_empty()).then(|| (Tensor::cat(parts, 0), layout))
}

/// The gradients of a [`flatten`]ed vector, each in its parameter's shape.
pub fn unflatten<M: Module>(module: &M, flat: Tensor<1>, layout: &Layout) -> GradientsParams {
    let mut scatter = Scatter {
        flat,
        slots: layout
            .slots
            .iter()
            .map(|&(id, start, n)| (id, (start, n)))
            .collect(),
        grads: GradientsParams::new(),
    };
    module.visit(&mut scatter);
    scatter.grads
}

/// Removes the gradients of `part`'s parameters from `grads` and returns them.
pub fn split_off<M: Module>(grads: &mut GradientsParams, part: &M) -> GradientsParams {
    let mut split = SplitOff {
        from: grads,
        into: GradientsParams::new(),
    };
    part.visit(&mut split);
    split.into
}

struct Gather<'a> {
    grads: &'a mut GradientsParams,
    parts: Vec<Tensor<1>>,
    layout: Layout,
}

impl ModuleVisitor for Gather<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            let n = grad.shape().num_elements();
            let start = self.layout.len();
            self.layout.slots.push((param.id, start, n));
            self.parts.push(grad.reshape([n]));
        }
    }
}

struct Scatter {
    flat: Tensor<1>,
    slots: HashMap<ParamId, (usize, usize)>,
    grads: GradientsParams,
}

impl ModuleVisitor for Scatter {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(&(start, n)) = self.slots.get(&param.id) {
            let dims: [usize; D] = param.val().dims();
            let grad = self.flat.clone().narrow(0, start, n).reshape(dims);
            self.grads.register::<D>(param.id, grad);
        }
    }
}

struct SplitOff<'a> {
    from: &'a mut GradientsParams,
    into: GradientsParams,
}

impl ModuleVisitor for SplitOff<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.from.remove::<D>(param.id) {
            self.into.register::<D>(param.id, grad);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use metricann::model::{Architecture, EmbeddingModel, ResNetConfig};

    /// A gradient for every float parameter but the `skip`-th, whose values
    /// tell the parameter's index and the element's position, so that a
    /// misplaced element shows; and every parameter's id.
    fn numbered(model: &EmbeddingModel, skip: Option<usize>) -> (GradientsParams, Vec<ParamId>) {
        struct Number(Device, Option<usize>, GradientsParams, Vec<ParamId>);
        impl ModuleVisitor for Number {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let k = self.3.len();
                self.3.push(param.id);
                if self.1 == Some(k) {
                    return;
                }
                let dims: [usize; D] = param.val().dims();
                let n: usize = dims.iter().product();
                let values: Vec<f32> = (0..n).map(|i| (1000 * k + i) as f32).collect();
                let grad = Tensor::<1>::from_data(TensorData::new(values, [n]), &self.0);
                self.2.register::<D>(param.id, grad.reshape(dims));
            }
        }
        let mut number = Number(Device::default(), skip, GradientsParams::new(), Vec::new());
        model.visit(&mut number);
        (number.2, number.3)
    }

    fn model() -> EmbeddingModel {
        Architecture::from(ResNetConfig::tiny(8))
            .init(&Device::default())
            .unwrap()
    }

    /// Asserts that `a` and `b` hold the same gradients for the same
    /// parameters of `model`; how many they hold.
    fn assert_same(model: &EmbeddingModel, a: &GradientsParams, b: &GradientsParams) -> usize {
        struct Compare<'a>(&'a GradientsParams, &'a GradientsParams, usize);
        impl ModuleVisitor for Compare<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let (a, b) = (self.0.get::<D>(param.id), self.1.get::<D>(param.id));
                assert_eq!(a.is_some(), b.is_some(), "{:?}", param.id);
                if let (Some(a), Some(b)) = (a, b) {
                    assert_eq!(a.dims(), b.dims());
                    assert_eq!(a.into_data(), b.into_data());
                    self.2 += 1;
                }
            }
        }
        let mut compare = Compare(a, b, 0);
        model.visit(&mut compare);
        compare.2
    }

    #[test]
    fn flatten_lays_the_gradients_end_to_end_and_unflatten_restores_them() {
        let model = model();
        let (grads, ids) = numbered(&model, None);
        let (flat, layout) = flatten(&model, grads).unwrap();
        let flat_values: Vec<f32> = flat.clone().into_data().try_to_vec().unwrap();
        assert_eq!(flat_values.len(), layout.len());
        assert_eq!(layout.slots.len(), ids.len());
        for (k, &(id, start, n)) in layout.slots.iter().enumerate() {
            assert_eq!(id, ids[k], "the module's visiting order");
            let expected: Vec<f32> = (0..n).map(|i| (1000 * k + i) as f32).collect();
            assert_eq!(flat_values[start..start + n], expected[..], "parameter {k}");
        }
        let back = unflatten(&model, flat, &layout);
        let (original, _) = numbered(&model, None);
        assert_eq!(assert_same(&model, &original, &back), ids.len());
    }

    #[test]
    fn a_parameter_without_a_gradient_takes_no_slot_and_gets_none_back() {
        let model = model();
        let (grads, ids) = numbered(&model, Some(1));
        let (flat, layout) = flatten(&model, grads).unwrap();
        assert_eq!(layout.slots.len(), ids.len() - 1);
        assert!(layout.slots.iter().all(|(id, _, _)| *id != ids[1]));
        let back = unflatten(&model, flat, &layout);
        let (original, _) = numbered(&model, Some(1));
        assert_eq!(assert_same(&model, &original, &back), ids.len() - 1);
    }

    #[test]
    fn nothing_to_flatten_is_none() {
        assert!(flatten(&model(), GradientsParams::new()).is_none());
    }

    #[test]
    fn split_off_moves_the_part_and_leaves_the_rest() {
        let model = model();
        let (mut grads, ids) = numbered(&model, None);
        let stranger = split_off(&mut grads, &self::model());
        assert!(
            stranger.is_empty(),
            "another network's parameters have other ids"
        );
        assert_eq!(grads.len(), ids.len());
        let part = split_off(&mut grads, &model);
        assert_eq!((part.len(), grads.len()), (ids.len(), 0));
    }
}
