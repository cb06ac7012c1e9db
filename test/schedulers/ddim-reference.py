#!/usr/bin/env python3
"""Reference numbers for test/schedulers/ddim.test.ts (run: python3 test/schedulers/ddim-reference.py).

Restates diffusers' DDIMScheduler formulas with numpy, in float32 where diffusers uses float32 torch tensors
(betas, alphas, alphas_cumprod, the 0-dim scalars and the element-wise step), cumprod accumulated in double like
torch's CPU kernel. numpy's linspace is computed in double and cast, torch's in float32: the test allows for that
ulp-level difference. torch.linspace(float32) on the CPU computes its step in float32 and fills the first half as
start + step*i, the second as end - step*(n-1-i) (aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp); that is
reproduced here (torch_linspace_f32). Its SIMD path rounds a few elements differently by 1 ulp, which changes
alphas_cumprod by < 1e-7 relative. Also prints how far numpy's double linspace and a pure float64 computation land
from this float32 reference.
"""
import json
import math
import numpy as np

F = np.float32


def torch_linspace_f32(start, end, n):
    s, e = F(start), F(end)
    step = (e - s) / F(n - 1)
    half = n // 2
    return np.array([s + step * F(i) if i < half else e - step * F(n - i - 1) for i in range(n)], dtype=F)


def betas_for(cfg, linspace=torch_linspace_f32):
    n = cfg['num_train_timesteps']
    if cfg['beta_schedule'] == 'scaled_linear':
        b = linspace(cfg['beta_start'] ** 0.5, cfg['beta_end'] ** 0.5, n)
        return b * b
    if cfg['beta_schedule'] == 'linear':
        return linspace(cfg['beta_start'], cfg['beta_end'], n)
    abar = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return np.array([min(1 - abar((i + 1) / n) / abar(i / n), 0.999) for i in range(n)], dtype=F)


def rescale_zero_snr(betas):
    ac = np.cumprod((F(1) - betas).astype(np.float64)).astype(F)
    s = np.sqrt(ac)
    s0, sT = s[0], s[-1]
    s = (s - sT) * (s0 / (s0 - sT))
    ab = s * s
    alphas = np.concatenate([ab[:1], ab[1:] / ab[:-1]]).astype(F)
    return F(1) - alphas


def scheduler(cfg):
    betas = betas_for(cfg)
    if cfg.get('rescale_betas_zero_snr'):
        betas = rescale_zero_snr(betas)
    alphas = F(1) - betas
    ac = np.cumprod(alphas.astype(np.float64)).astype(F)
    final = F(1) if cfg['set_alpha_to_one'] else ac[0]
    return ac, final


def timesteps(cfg, n):
    N = cfg['num_train_timesteps']
    sp = cfg.get('timestep_spacing', 'leading')
    if sp == 'linspace':
        return np.linspace(0, N - 1, n).round()[::-1].astype(np.int64)
    if sp == 'leading':
        r = N // n
        return (np.arange(0, n) * r).round()[::-1].astype(np.int64) + cfg['steps_offset']
    r = N / n
    return np.round(np.arange(N, 0, -r)).astype(np.int64) - 1


def step(cfg, ac, final, n, mo, t, x, eta=0.0):
    prev = t - cfg['num_train_timesteps'] // n
    a = ac[t]
    ap = ac[prev] if prev >= 0 else final
    b = F(1) - a
    pt = cfg['prediction_type']
    if pt == 'epsilon':
        x0 = (x - np.sqrt(b) * mo) / np.sqrt(a)
        eps = mo
    elif pt == 'sample':
        x0 = mo
        eps = (x - np.sqrt(a) * x0) / np.sqrt(b)
    else:
        x0 = np.sqrt(a) * x - np.sqrt(b) * mo
        eps = np.sqrt(a) * mo + np.sqrt(b) * x
    if cfg.get('clip_sample'):
        r = F(cfg.get('clip_sample_range', 1.0))
        x0 = np.clip(x0, -r, r)
    var = ((F(1) - ap) / b) * (F(1) - a / ap)
    std = F(eta) * np.sqrt(var)
    direction = np.sqrt(F(1) - ap - std * std) * eps
    return (np.sqrt(ap) * x0 + direction).astype(F), x0.astype(F)


SD = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule='scaled_linear',
          set_alpha_to_one=False, steps_offset=1, prediction_type='epsilon', clip_sample=False)
x = np.array([math.sin(0.7 * i + 0.3) * 1.3 for i in range(16)], dtype=F)
e = np.array([math.cos(1.1 * i - 0.2) for i in range(16)], dtype=F)
out = {'x': x.tolist(), 'e': e.tolist()}

ac, final = scheduler(SD)
out['sd_alphas_cumprod'] = {str(i): float(ac[i]) for i in (0, 1, 250, 499, 500, 981, 999)}
ts = timesteps(SD, 50)
out['sd_timesteps_50'] = ts.tolist()
out['sd_step_961'] = step(SD, ac, final, 50, e, 961, x)[0].tolist()
out['sd_step_1_final'] = step(SD, ac, final, 50, e, 1, x)[0].tolist()
out['sd_step_961_eta1_noiseless_part'] = step(SD, ac, final, 50, e, 961, x, eta=1.0)[0].tolist()
out['sd_add_noise_500'] = (np.sqrt(ac[500]) * x + np.sqrt(F(1) - ac[500]) * e).astype(F).tolist()
out['sd_velocity_500'] = (np.sqrt(ac[500]) * e - np.sqrt(F(1) - ac[500]) * x).astype(F).tolist()
# A 50-step loop with a fixed fake model: accumulated float32 behaviour.
lat = x.copy()
for t in ts:
    mo = (F(0.1) * lat + F(0.05) * e).astype(F)
    lat = step(SD, ac, final, 50, mo, int(t), lat)[0]
out['sd_loop_50'] = lat.tolist()

V = dict(SD, prediction_type='v_prediction', timestep_spacing='trailing', rescale_betas_zero_snr=True, set_alpha_to_one=True)
acv, finalv = scheduler(V)
out['zsnr_alphas_cumprod'] = {str(i): float(acv[i]) for i in (0, 500, 998, 999)}
out['trailing_timesteps'] = {str(n): timesteps(V, n).tolist() for n in (3, 7, 10, 50)}
out['v_step_999'] = step(V, acv, finalv, 10, e, 999, x)[0].tolist()
S = dict(SD, prediction_type='sample', clip_sample=True, clip_sample_range=1.0)
out['sample_clip_step_481'] = step(S, ac, final, 50, x * 2, 481, x)[0].tolist()
L = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule='linear', set_alpha_to_one=True,
         steps_offset=0, prediction_type='epsilon', timestep_spacing='linspace')
acl, _ = scheduler(L)
out['linear_alphas_cumprod'] = {str(i): float(acl[i]) for i in (0, 999)}
out['linspace_timesteps'] = {str(n): timesteps(L, n).tolist() for n in (3, 4, 10)}
C = dict(L, beta_schedule='squaredcos_cap_v2')
acc, _ = scheduler(C)
out['cosine_alphas_cumprod'] = {str(i): float(acc[i]) for i in (0, 500, 999)}

# How much does float32 matter? numpy's double linspace cast to float32, then everything in float64.
np_ac = np.cumprod((F(1) - betas_for(SD, lambda a, b, n: np.linspace(a, b, n).astype(F))).astype(np.float64)).astype(F)
out['numpy_linspace_vs_torch_linspace_alphas_cumprod_max_rel'] = float(np.max(np.abs(np_ac - ac) / ac))
b64 = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
ac64 = np.cumprod(1 - b64)
out['float64_vs_float32_alphas_cumprod_max_abs'] = float(np.max(np.abs(ac64 - ac)))
out['float64_vs_float32_alphas_cumprod_max_rel'] = float(np.max(np.abs(ac64 - ac) / ac64))
print(json.dumps(out, indent=1))
