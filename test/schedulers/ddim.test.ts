import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { DdimScheduler, img2imgTimesteps, loadScheduler, linspaceF32 } from '../../src/schedulers/index.js';
import { VidpriorError } from '../../src/errors.js';
import { Rng } from '../../src/random.js';

// Numbers from test/schedulers/ddim-reference.py (diffusers' formulas restated in numpy float32).
const REF = JSON.parse(readFileSync('test/schedulers/ddim-reference.json', 'utf8')) as Record<string, unknown>;
const x = Float32Array.from(REF.x as number[]);
const e = Float32Array.from(REF.e as number[]);
const SD = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  set_alpha_to_one: false,
  steps_offset: 1,
  prediction_type: 'epsilon',
  clip_sample: false,
} as const;

/** Max |a−b| / (|b| + floor). */
function close(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number, what: string, floor = 1e-3): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / (Math.abs(expected[i]!) + floor));
  }
  assert.ok(worst <= rel, `${what}: relative error ${worst} > ${rel}`);
}

function alphasAt(s: DdimScheduler, table: Record<string, number>): [number[], number[]] {
  const keys = Object.keys(table);
  return [keys.map((k) => s.alphasCumprod[Number(k)]!), keys.map((k) => table[k]!)];
}

test('scaled_linear alphas_cumprod and leading timesteps match the reference (SD 1.x config)', () => {
  const s = new DdimScheduler(SD);
  close(...alphasAt(s, REF.sd_alphas_cumprod as Record<string, number>), 1e-7, 'alphas_cumprod', 0);
  assert.deepEqual(s.setTimesteps(50), REF.sd_timesteps_50);
  assert.equal(s.timesteps[0], 981);
  assert.equal(s.finalAlphaCumprod, s.alphasCumprod[0]);
});

test('DDIM step, eta 0 and 1, addNoise and getVelocity match the float32 reference', () => {
  const s = new DdimScheduler(SD);
  s.setTimesteps(50);
  close(s.step(e, 961, x).prevSample, REF.sd_step_961 as number[], 1e-7, 'step t=961');
  close(s.step(e, 1, x).prevSample, REF.sd_step_1_final as number[], 1e-7, 'step t=1 (final alpha)');
  const eta1 = s.step(e, 961, x, { eta: 1, varianceNoise: new Float32Array(16) });
  close(eta1.prevSample, REF.sd_step_961_eta1_noiseless_part as number[], 1e-7, 'step eta=1');
  close(s.addNoise(x, e, 500), REF.sd_add_noise_500 as number[], 1e-7, 'addNoise');
  close(s.getVelocity(x, e, 500), REF.sd_velocity_500 as number[], 1e-7, 'getVelocity');
  // eta > 0 draws its noise from the explicit Rng: same seed, same result.
  const a = s.step(e, 961, x, { eta: 1, rng: new Rng(7) }).prevSample;
  const b = s.step(e, 961, x, { eta: 1, rng: new Rng(7) }).prevSample;
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, eta1.prevSample);
});

test('a 50-step loop stays on the reference', () => {
  const s = new DdimScheduler(SD);
  let lat: Float32Array = x;
  for (const t of s.setTimesteps(50)) {
    // the fake model of the reference script, in float32: 0.1·x + 0.05·e
    const mo = lat.map((v, i) =>
      Math.fround(Math.fround(Math.fround(0.1) * v) + Math.fround(Math.fround(0.05) * e[i]!)),
    );
    lat = s.step(mo, t, lat).prevSample;
  }
  close(lat, REF.sd_loop_50 as number[], 1e-7, '50-step loop');
});

test('v-prediction, trailing spacing and zero-terminal-SNR rescaling match the reference', () => {
  const s = new DdimScheduler({
    ...SD,
    prediction_type: 'v_prediction',
    timestep_spacing: 'trailing',
    rescale_betas_zero_snr: true,
    set_alpha_to_one: true,
  });
  close(...alphasAt(s, REF.zsnr_alphas_cumprod as Record<string, number>), 1e-7, 'zero-SNR alphas_cumprod', 1e-9);
  assert.equal(s.alphasCumprod[999], 0);
  for (const [n, ts] of Object.entries(REF.trailing_timesteps as Record<string, number[]>))
    assert.deepEqual(s.setTimesteps(Number(n)), ts, `trailing ${n}`);
  s.setTimesteps(10);
  close(s.step(e, 999, x).prevSample, REF.v_step_999 as number[], 1e-7, 'v-prediction step at t=999');
});

test('sample prediction with clip_sample, linear and cosine schedules, linspace spacing', () => {
  const s = new DdimScheduler({ ...SD, prediction_type: 'sample', clip_sample: true, clip_sample_range: 1 });
  s.setTimesteps(50);
  close(
    s.step(
      x.map((v) => v * 2),
      481,
      x,
    ).prevSample,
    REF.sample_clip_step_481 as number[],
    1e-7,
    'sample + clip',
  );
  const lin = {
    num_train_timesteps: 1000,
    beta_start: 0.0001,
    beta_end: 0.02,
    beta_schedule: 'linear',
    set_alpha_to_one: true,
    steps_offset: 0,
    timestep_spacing: 'linspace',
  } as const;
  const l = new DdimScheduler(lin);
  close(...alphasAt(l, REF.linear_alphas_cumprod as Record<string, number>), 1e-7, 'linear alphas_cumprod', 0);
  for (const [n, ts] of Object.entries(REF.linspace_timesteps as Record<string, number[]>))
    assert.deepEqual(l.setTimesteps(Number(n)), ts, `linspace ${n}`);
  const c = new DdimScheduler({ ...lin, beta_schedule: 'squaredcos_cap_v2' });
  close(...alphasAt(c, REF.cosine_alphas_cumprod as Record<string, number>), 1e-7, 'cosine alphas_cumprod', 1e-12);
});

test('torch-style float32 linspace: exact ends, symmetric halves', () => {
  const v = linspaceF32(0.1, 0.9, 5);
  assert.equal(v[0], Math.fround(0.1));
  assert.equal(v[4], Math.fround(0.9));
  assert.equal(
    v[2],
    Math.fround(Math.fround(0.9) - Math.fround(2 * Math.fround(Math.fround(Math.fround(0.9) - Math.fround(0.1)) / 4))),
  );
});

test('img2img timestep slicing follows get_timesteps (int(n·strength) steps from the end)', () => {
  const s = new DdimScheduler(SD);
  const all = s.setTimesteps(50);
  const r = img2imgTimesteps(all, 50, 0.45);
  assert.equal(r.numSteps, 22); // int(50 × 0.45) = 22
  assert.equal(r.startIndex, 28);
  assert.deepEqual(r.timesteps, all.slice(28));
  assert.equal(r.latentTimestep, 421);
  assert.equal(img2imgTimesteps(all, 50, 1).latentTimestep, 981);
  assert.equal(img2imgTimesteps(all, 50, 0.75).numSteps, 37);
  assert.throws(
    () => img2imgTimesteps(all, 50, 0.01),
    (err: unknown) => err instanceof VidpriorError && err.code === 'E_BAD_REQUEST' && /0\.01/.test(err.message),
  );
  assert.throws(
    () => img2imgTimesteps(all, 50, 1.5),
    (err: unknown) => err instanceof VidpriorError && /strength/.test(err.message),
  );
});

test('bad configs and arguments get errors that name the value', () => {
  assert.throws(
    () => new DdimScheduler({ beta_schedule: 'cubic' as never }),
    (err: unknown) => err instanceof VidpriorError && /cubic/.test(err.message),
  );
  assert.throws(
    () => new DdimScheduler({ prediction_type: 'x0' as never }),
    (err: unknown) => err instanceof VidpriorError && /x0/.test(err.message),
  );
  const s = new DdimScheduler(SD);
  assert.throws(
    () => s.setTimesteps(0),
    (err: unknown) => err instanceof VidpriorError && err.code === 'E_BAD_REQUEST',
  );
  assert.throws(
    () => s.setTimesteps(1001),
    (err: unknown) => err instanceof VidpriorError && /1001/.test(err.message),
  );
  assert.throws(
    () => s.step(e, 961, x),
    (err: unknown) => err instanceof VidpriorError && /setTimesteps/.test(err.message),
  );
  s.setTimesteps(50);
  assert.throws(
    () => s.step(e.subarray(1), 961, x),
    (err: unknown) => err instanceof VidpriorError && err.code === 'E_SHAPE',
  );
});

test('dynamic thresholding clamps x̂₀ per sample to its quantile (sample_max_value bounds it)', () => {
  const s = new DdimScheduler({
    ...SD,
    prediction_type: 'sample',
    thresholding: true,
    sample_max_value: 1.5,
    dynamic_thresholding_ratio: 0.5,
  });
  s.setTimesteps(50);
  const big = Float32Array.from({ length: 8 }, (_, i) => (i - 3.5) * 1.0); // |x| = 3.5 2.5 1.5 .5 .5 1.5 2.5 3.5
  const { predOriginalSample } = s.step(big, 481, new Float32Array(8), { batch: 2 });
  // each half: |x| sorted .5 1.5 2.5 3.5 → median 2 → clamped to 1.5; x clamped to ±1.5 then / 1.5
  assert.deepEqual([...predOriginalSample], [-1, -1, -1, -1 / 3, 1 / 3, 1, 1, 1].map(Math.fround));
});

test('loading a model folder: DDIM config, foreign class (PNDM) and missing file, with SD pipeline fix-ups', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-sched-'));
  try {
    mkdirSync(join(dir, 'scheduler'));
    const file = join(dir, 'scheduler', 'scheduler_config.json');
    writeFileSync(
      file,
      JSON.stringify({
        _class_name: 'PNDMScheduler',
        beta_start: 0.00085,
        beta_end: 0.012,
        beta_schedule: 'scaled_linear',
        num_train_timesteps: 1000,
        skip_prk_steps: true,
        set_alpha_to_one: false,
        steps_offset: 0,
        clip_sample: true,
      }),
    );
    const pndm = await loadScheduler(dir);
    assert.equal(pndm.className, 'PNDMScheduler');
    assert.equal(pndm.scheduler.config.steps_offset, 1);
    assert.equal(pndm.scheduler.config.clip_sample, false);
    assert.ok(pndm.notes.some((n) => /PNDMScheduler/.test(n) && /skip_prk_steps/.test(n)));
    assert.ok(pndm.notes.some((n) => /steps_offset/.test(n)));
    assert.deepEqual(pndm.scheduler.alphasCumprod, new DdimScheduler(SD).alphasCumprod);
    const raw = await loadScheduler(dir, { sdPipelineFixups: false });
    assert.equal(raw.scheduler.config.steps_offset, 0);
    writeFileSync(file, '{"beta_schedule": 3}');
    await assert.rejects(
      loadScheduler(dir),
      (err: unknown) =>
        err instanceof VidpriorError &&
        err.code === 'E_MODEL_INPUT' &&
        err.message.includes('beta_schedule') &&
        err.message.includes(file),
    );
    rmSync(join(dir, 'scheduler'), { recursive: true });
    const none = await loadScheduler(dir);
    assert.equal(none.file, null);
    assert.deepEqual(none.scheduler.alphasCumprod, new DdimScheduler(SD).alphasCumprod);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the shared real export's scheduler config loads as DDIM", {
  skip: readable('../shared/fixtures/tiny-sd-torch/scheduler/scheduler_config.json')
    ? false
    : 'needs ../shared/fixtures',
}, async () => {
  const { scheduler, className, notes } = await loadScheduler('../shared/fixtures/tiny-sd-torch');
  assert.equal(className, 'DDIMScheduler');
  assert.deepEqual(notes, []);
  assert.equal(scheduler.config.steps_offset, 1);
  assert.equal(scheduler.config.prediction_type, 'epsilon');
});

function readable(p: string): boolean {
  try {
    readFileSync(p);
    return true;
  } catch {
    return false;
  }
}

test('a step count whose schedule passes the last training timestep is refused by name', () => {
  const s = new DdimScheduler({ steps_offset: 1, timestep_spacing: 'leading' });
  assert.throws(() => s.setTimesteps(1000), /steps 1000 .* reaches timestep 1000, past its 1000 training steps/);
  assert.equal(s.setTimesteps(999).length, 999);
});
