#!/usr/bin/env python3
"""Reference numbers for test/training/full.test.ts (run from the repository root after `npx tsc`:
    python3 test/training/full-reference.py
needs torch (CPU), numpy and what diffusers imports (packaging requests pillow regex importlib_metadata tqdm
pyyaml); diffusers 0.27.2 comes from ../shared/gpu/torch-baseline/diffusers-src.tar.gz as in
../shared/gpu/torch-baseline/baseline.py).

A full fine-tune in PyTorch: diffusers' UNet2DConditionModel with the shared fixture's weights (tiny-sd-torch, written
by full-reference-weights.js under diffusers' parameter names and loaded strictly, so every parameter of the model is
covered exactly once), MSE loss against a target, torch.optim.AdamW over every parameter, two steps on two batches.
Writes full-reference.json: the inputs of each step, its loss, and for every parameter after the two steps the
new weight, its change, exp_avg and exp_avg_sq at a few indices (diffusers layout, flattened).
"""
import json, os, struct, subprocess, sys, tarfile, tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURE = os.path.join(ROOT, '..', 'shared', 'fixtures', 'tiny-sd-torch', 'unet', 'model.onnx')
DIFFUSERS = os.path.join(ROOT, '..', 'shared', 'gpu', 'torch-baseline', 'diffusers-src.tar.gz')
CONFIG = dict(sample_size=32, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(32, 64),
              down_block_types=('DownBlock2D', 'CrossAttnDownBlock2D'),
              up_block_types=('CrossAttnUpBlock2D', 'UpBlock2D'), cross_attention_dim=32, attention_head_dim=8,
              norm_num_groups=32)
LR, WD, STEPS, SAMPLES = 1e-4, 1e-2, 2, 8


def import_diffusers():
    dst = os.path.join(tempfile.gettempdir(), 'vidprior-torch-baseline')
    if not os.path.isdir(os.path.join(dst, 'diffusers')):
        os.makedirs(dst, exist_ok=True)
        with tarfile.open(DIFFUSERS) as t:
            t.extractall(dst)
    sys.path[:0] = [dst, os.path.join(dst, 'stubs')]
    from diffusers import UNet2DConditionModel
    return UNet2DConditionModel


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        assert e['dtype'] == 'F32', e
        a, b = e['data_offsets']
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype='<f4').reshape(e['shape']).copy())
    return out


def r9(values):
    return [float('%.9g' % v) for v in values]


def main():
    torch.set_num_threads(1)  # deterministic summation order
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, 'weights.safetensors')
        subprocess.run(['node', os.path.join(ROOT, 'dist', 'test', 'training', 'full-reference-weights.js'), FIXTURE,
                        weights], check=True)
        state = {k[len('unet.'):]: v for k, v in read_safetensors(weights).items()}
    UNet = import_diffusers()
    unet = UNet(**CONFIG)
    unet.load_state_dict(state, strict=True)
    unet.train()
    base = {n: p.detach().clone() for n, p in unet.named_parameters()}
    opt = torch.optim.AdamW(unet.parameters(), lr=LR, weight_decay=WD, betas=(0.9, 0.999), eps=1e-8)
    g = torch.Generator().manual_seed(1234)
    steps = []
    for i in range(STEPS):
        x = torch.randn(1, 4, 8, 8, generator=g)
        c = torch.randn(1, 77, 32, generator=g)
        target = torch.randn(1, 4, 8, 8, generator=g)
        t = 321 + 100 * i
        loss = torch.nn.functional.mse_loss(unet(x, torch.tensor([t]), c).sample, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps.append(dict(timestep=t, sample=r9(x.flatten().tolist()), context=r9(c.flatten().tolist()),
                          target=r9(target.flatten().tolist()), loss=float(loss)))
    params = {}
    for n, p in unet.named_parameters():
        st = opt.state[p]
        flat = p.detach().flatten()
        count = flat.numel()
        idx = sorted(set(np.linspace(0, count - 1, min(SAMPLES, count)).round().astype(int).tolist()))
        pick = lambda a: r9(a.flatten()[idx].tolist())
        params[n] = dict(dims=list(p.shape), idx=idx, weight=pick(p.detach()), delta=pick(p.detach() - base[n]),
                         m=pick(st['exp_avg']),
                         v=pick(st['exp_avg_sq']))
    out = dict(torch=torch.__version__, config=CONFIG, lr=LR, weight_decay=WD, steps=steps,
               parameters=sum(p.numel() for p in unet.parameters()), params=params)
    with open(os.path.join(HERE, 'full-reference.json'), 'w') as f:
        json.dump(out, f, separators=(',', ':'))
    print(f'{len(params)} parameters ({out["parameters"]} values), losses {[s["loss"] for s in steps]}')


if __name__ == '__main__':
    main()
