//! `LoraLinear` on CUDA (`--features cuda-tests`, on a GPU machine): the
//! same layer copied to the GPU gives the CPU's outputs and gradients, and
//! merges there. Fails, never skips, when libtorch sees no CUDA device.

#![cfg(feature = "cuda-tests")]
#![allow(clippy::unwrap_used, clippy::panic)]

use graft_lora::{LoraConfig, LoraLinear};
use tch::{nn, Device, Kind, Tensor};

fn gpu() -> Device {
    assert!(
        tch::Cuda::is_available(),
        "cuda-tests enabled but libtorch sees no CUDA device (is libtorch_cuda linked? see graft-build)"
    );
    Device::Cuda(0)
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_device(Device::Cpu) - b.to_device(Device::Cpu))
        .abs()
        .max()
        .double_value(&[])
}

/// A layer on `device` with the given base weights and a non-zero `B`.
fn layer(device: Device, w: &Tensor, b: &Tensor, lora_b: &Tensor) -> (nn::VarStore, LoraLinear) {
    let vs = nn::VarStore::new(device);
    tch::manual_seed(7);
    let cfg = LoraConfig::new(4, 8.0);
    let l = LoraLinear::new(
        &vs.root().sub("layer"),
        &w.to_device(device),
        Some(&b.to_device(device)),
        &cfg,
    )
    .unwrap();
    tch::no_grad(|| {
        l.lora_b().shallow_clone().copy_(&lora_b.to_device(device));
    });
    (vs, l)
}

#[test]
fn lora_linear_on_cuda_matches_the_cpu() {
    let device = gpu();
    tch::manual_seed(0);
    let opts = (Kind::Float, Device::Cpu);
    let w = Tensor::randn([24, 40], opts) / 40f64.sqrt();
    let b = Tensor::randn([24], opts);
    let lb = Tensor::randn([24, 4], opts) * 0.5;
    let x = Tensor::randn([5, 3, 40], opts);
    let (_vc, mut cpu) = layer(Device::Cpu, &w, &b, &lb);
    let (_vg, mut cuda) = layer(device, &w, &b, &lb);
    // The same A (copied), so the same function.
    tch::no_grad(|| {
        cuda.lora_a()
            .shallow_clone()
            .copy_(&cpu.lora_a().to_device(device));
    });
    let (yc, yg) = (
        cpu.forward_t(&x, false),
        cuda.forward_t(&x.to_device(device), false),
    );
    assert_eq!(yg.device(), device);
    let d = max_abs(&yc, &yg);
    assert!(d < 1e-4, "forward {d}");
    // Gradients of the adapters, not of the frozen base.
    yc.sum(Kind::Float).backward();
    yg.sum(Kind::Float).backward();
    assert!(max_abs(&cpu.lora_a().grad(), &cuda.lora_a().grad()) < 1e-3);
    assert!(max_abs(&cpu.lora_b().grad(), &cuda.lora_b().grad()) < 1e-3);
    assert!(!cuda.weight().requires_grad());
    // Merging on the GPU keeps the function.
    assert!(cuda.merge().unwrap());
    let merged = tch::no_grad(|| cuda.forward_t(&x.to_device(device), false));
    assert!(max_abs(&merged, &yc) < 1e-4);
    assert!(cuda.unmerge().unwrap());
    assert!(cpu.merge().unwrap());
}
