/**
 * The GPU session's summary (bench/gpu/session.sh, last step): reads results.jsonl and the stylize CLI's JSON
 * lines, writes summary.md and prints it. Every ratio is to PyTorch measured in the same call; a variant
 * whose output disagrees with the original graph is marked incorrect and gets no ratio.
 *
 *   node dist/bench/gpu/summary.js --results $OUT/results.jsonl --stylize $OUT/stylize.jsonl --out $OUT/summary.md
 */
import { readFile, writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';

type Rec = Record<string, unknown> & { phase?: string };

async function readLines(path: string | undefined): Promise<Rec[]> {
  if (!path) return [];
  const text = await readFile(path, 'utf8').catch(() => '');
  const out: Rec[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Rec);
    } catch {
      /* a line cut by a timeout */
    }
  }
  return out;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const f = (v: number | null, digits = 3): string => (v === null ? '—' : Number(v.toPrecision(digits)).toString());
const ratio = (a: number | null, b: number | null): string => (a !== null && b ? `${(a / b).toFixed(2)}×` : '—');

/** Frames/s and the first frame's time from the CLI's progress lines (when it was cut before its result). */
function stylizeFromProgress(lines: Rec[]): Record<string, number | null> {
  const done = lines.filter((l) => l.event === 'progress' && l.phase === 'frame' && num(l.seconds) !== null);
  const loaded = num(lines.find((l) => l.event === 'loaded')?.seconds);
  if (done.length === 0) return { frames: 0, firstFrameSeconds: null, framesPerSecond: null, loadSeconds: loaded };
  const first = num(done[0]!.seconds)!;
  const last = num(done.at(-1)!.seconds)!;
  return {
    frames: done.length,
    firstFrameSeconds: first,
    loadSeconds: loaded,
    // steady rate: frames after the first over the time after it
    framesPerSecond: done.length > 1 ? (done.length - 1) / (last - first) : null,
  };
}

export function summarize(results: Rec[], stylize: Rec[]): string {
  const by = (phase: string): Rec[] => results.filter((r) => r.phase === phase);
  const session = by('session')[0] ?? {};
  const torch = by('torch')[0] ?? {};
  const t32 = num(torch.infer_steps_per_s_fp32);
  const t16 = num(torch.infer_steps_per_s_fp16);
  const out: string[] = [];
  out.push(`# vidprior GPU session: ${session.gpu || 'no GPU named'}, ${session.date ?? ''}`);
  out.push('');
  out.push(
    `Preset ${session.preset}, ${session.ep}, ${session.cpus} CPUs; PyTorch ${torch.torch ?? '—'} (diffusers ${torch.diffusers ?? '—'}) on ${torch.device ?? '—'}.`,
  );
  out.push('');

  // UNet table.
  const latent = (by('unet').find((r) => Array.isArray(r.latent))?.latent as number[] | undefined) ?? [];
  out.push(`## UNet steps/s (batch ${latent[0] ?? 2}, latents ${latent.slice(1).join('×') || '?'}, timestep 500)`);
  out.push('');
  out.push(
    '| variant | steps/s | ratio to PyTorch fp32 | ratio to PyTorch fp16 | max abs diff | host round trip | notes |',
  );
  out.push('| --- | --- | --- | --- | --- | --- | --- |');
  out.push(`| PyTorch eager fp32 | ${f(t32)} | 1.00× | ${ratio(t32, t16)} | — | — | same call |`);
  if (t16 !== null) out.push(`| PyTorch eager fp16 | ${f(t16)} | ${ratio(t16, t32)} | 1.00× | — | — | same call |`);
  for (const r of by('unet')) {
    const name = `${r.variant}${r.ep && r.ep !== session.ep ? ` (${r.ep})` : ''}`;
    if (r.skipped) {
      out.push(`| ${name} | — | — | — | — | — | skipped: ${r.skipped} |`);
      continue;
    }
    if (r.error) {
      out.push(`| ${name} | — | — | — | — | — | failed: ${String(r.error).slice(0, 160)} |`);
      continue;
    }
    const s = num(r.stepsPerSecondResident) ?? num(r.stepsPerSecondRoundTrip);
    const ok = r.correct === true;
    const notes = [
      ok ? '' : '**INCORRECT**: not a speed-up',
      r.vouchedBy ? `its fused kernels in float32: ${r.vouchedBy}` : '',
      num(r.sessionSeconds) !== null ? `session ${f(num(r.sessionSeconds))} s` : '',
      num(r.prepareSeconds) !== null ? `graph ${f(num(r.prepareSeconds))} s${r.built ? ' (built)' : ''}` : '',
    ].filter(Boolean);
    out.push(
      `| ${name} | ${f(s)} | ${ok ? ratio(s, t32) : '—'} | ${ok ? ratio(s, t16) : '—'} | ${r.maxAbsDiff ?? '—'} | ${f(num(r.stepsPerSecondRoundTrip))} | ${notes.join('; ')} |`,
    );
  }
  out.push('');
  out.push(
    'steps/s: GPU-resident (feeds uploaded once, each output fed back, as the denoising loop runs), else host round trip.',
  );
  const cpu = by('cpu-check')[0];
  if (cpu)
    out.push(`Original graph on the CPU provider vs the GPU: max abs diff ${cpu.maxAbsDiff} (${cpu.seconds} s).`);
  out.push('');

  // End to end.
  const res = stylize.find((l) => l.event === 'result');
  const progress = stylizeFromProgress(stylize);
  const variant = by('stylize-variant')[0]?.variant ?? '?';
  out.push('## End to end: `vidprior stylize`');
  out.push('');
  const mem = (name: string): string => {
    const m = by('gpu-memory').find((r) => r.name === name);
    return m ? (m.peakMiB !== undefined ? `${m.peakMiB} MiB` : String(m.note)) : '—';
  };
  if (res) {
    const t = (res.timings ?? {}) as Record<string, number | null>;
    const total = num(res.seconds) ?? 0;
    const share = (x: number | null | undefined): string =>
      total > 0 && x != null ? `${((100 * x) / total).toFixed(1)} %` : '—';
    const outside = total > 0 && t.denoise != null ? 100 - (100 * t.denoise) / total : null;
    out.push(
      `${res.frames} frames of ${res.width}×${res.height}, ${res.steps} steps each, guidance, UNet graph ${res.unetVariant ?? variant}, ${res.loop} loop.`,
    );
    out.push('');
    out.push('| measure | value |');
    out.push('| --- | --- |');
    out.push(`| frames/s (pipeline) | ${f(num(res.framesPerSecond))} |`);
    out.push(`| steady frames/s (after the first) | ${f(progress.framesPerSecond)} |`);
    out.push(`| time to first frame (from process start) | ${f(num(res.firstFrameSeconds))} s |`);
    out.push(`| of which model load (sessions, cached graph variant) | ${f(num(res.loadSeconds))} s |`);
    const built = by('unet').find((r) => r.variant === res.unetVariant && r.built === true);
    if (built)
      out.push(`| building that graph variant (once per model, done in phase b) | ${f(num(built.prepareSeconds))} s |`);
    out.push(`| peak GPU memory (nvidia-smi) | ${mem('stylize')} |`);
    out.push(`| share outside the denoising loop | ${outside === null ? '—' : `${outside.toFixed(1)} %`} |`);
    for (const part of ['prompt', 'read', 'encode', 'denoise', 'decode', 'sink'] as const)
      out.push(`| ${part} | ${f(t[part] ?? null)} s (${share(t[part])}) |`);
    const steps = num(res.steps);
    if (steps && t.denoise) out.push(`| denoising loop steps/s | ${f((num(res.frames)! * steps) / t.denoise)} |`);
  } else {
    out.push(
      `No result line (cut by its timeout?): ${progress.frames} frames done, first at ${f(progress.firstFrameSeconds)} s, ` +
        `steady ${f(progress.framesPerSecond)} frames/s, model loaded at ${f(progress.loadSeconds)} s; peak GPU memory ${mem('stylize')}.`,
    );
  }
  const notes = stylize.filter((l) => l.event === 'note').map((l) => String(l.message));
  for (const n of notes) out.push(`- ${n}`);
  out.push('');

  // Profile, CUDA, phases.
  for (const p of by('profile')) {
    out.push(`## Profile of ${p.variant} (${p.source}, ${p.totalMs} ms in all)`);
    out.push('');
    out.push('| op | ms | share | kernels |');
    out.push('| --- | --- | --- | --- |');
    for (const k of (p.byOp ?? []) as { name: string; ms: number; share: number; count: number }[])
      out.push(`| ${k.name} | ${k.ms} | ${(100 * k.share).toFixed(1)} % | ${k.count} |`);
    out.push('');
    out.push(
      `Top programs: ${((p.byKernel ?? []) as { name: string; share: number }[]).map((k) => `${k.name} ${(100 * k.share).toFixed(1)} %`).join(', ')}`,
    );
    out.push('');
  }
  const cuda = by('cuda-check')[0];
  if (cuda) out.push(`CUDA provider: ${cuda.finding ?? cuda.error ?? JSON.stringify(cuda)}`, '');
  const train = by('status').find((s) => s.name === 'training');
  if (train)
    out.push(
      `Training phase: ${train.skipped ?? `rc ${train.rc}, ${train.seconds} s of ${train.budget} s`} (results in training/).`,
      '',
    );
  out.push('| phase | rc | seconds | budget |');
  out.push('| --- | --- | --- | --- |');
  for (const s of by('status'))
    out.push(
      `| ${s.name} | ${s.rc ?? '—'}${s.timedOut ? ' (timed out)' : ''} | ${s.seconds ?? '—'} | ${s.budget ?? '—'} |`,
    );
  const inputs = by('inputs')[0];
  if (inputs)
    out.push(
      '',
      `Model build: ${inputs.buildSeconds} s (${f(num(inputs.modelBytes)! / 2 ** 30)} GiB); frames: ${inputs.framesSeconds} s.`,
    );
  return `${out.join('\n')}\n`;
}

function option(args: string[], name: string): string | undefined {
  const k = args.indexOf(name);
  return k >= 0 ? args[k + 1] : undefined;
}

export async function main(args: string[]): Promise<void> {
  const md = summarize(await readLines(option(args, '--results')), await readLines(option(args, '--stylize')));
  const out = option(args, '--out');
  if (out) await writeFile(out, md);
  process.stdout.write(md);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
