/**
 * docs/flamenco/vidprior.js, the Flamenco job type, run outside Flamenco: compileJob() with stand-ins for the
 * Manager's globals (author, path, frameChunker, job) must author the three stages with the right commands and
 * dependencies. This checks the script's own logic only; on a real Flamenco it is untested (docs/cluster.md).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { test } from 'node:test';
import { runInNewContext } from 'node:vm';

interface Task {
  name: string;
  type: string;
  commands: { name: string; params: Record<string, unknown> }[];
  deps: Task[];
  addCommand(c: { name: string; params: Record<string, unknown> }): void;
  addDependency(t: Task): void;
}

/** Flamenco's frameChunker for a plain range: '0-9', 4 → ['0-3', '4-7', '8-9']. */
function frameChunker(frames: string, size: number): string[] {
  const [a, b] = frames.split('-').map(Number) as [number, number];
  const out: string[] = [];
  for (let s = a; s <= b; s += size) {
    const e = Math.min(s + size - 1, b);
    out.push(s === e ? `${s}` : `${s}-${e}`);
  }
  return out;
}

function compile(settings: Record<string, unknown>): Task[] {
  const tasks: Task[] = [];
  const author = {
    Task: (name: string, type: string): Task => ({
      name,
      type,
      commands: [],
      deps: [],
      addCommand(c) {
        this.commands.push(c);
      },
      addDependency(t) {
        this.deps.push(t);
      },
    }),
    Command: (name: string, params: Record<string, unknown>) => ({ name, params }),
  };
  const sandbox: Record<string, unknown> = { author, path: posix, frameChunker, print: () => {} };
  runInNewContext(
    `${readFileSync('docs/flamenco/vidprior.js', 'utf8')}\nthis.JOB_TYPE = JOB_TYPE; this.compileJob = compileJob;`,
    sandbox,
  );
  const jobType = sandbox.JOB_TYPE as { settings: { key: string; default?: unknown }[] };
  const defaults = Object.fromEntries(jobType.settings.filter((s) => 'default' in s).map((s) => [s.key, s.default]));
  (sandbox.compileJob as (job: unknown) => void)({
    settings: { ...defaults, ...settings },
    addTask: (t: Task) => tasks.push(t),
  });
  return tasks;
}

test('the Flamenco job type authors fine-tune → stylize chunks → video', () => {
  const tasks = compile({
    input_frames: '/shared/shot/in',
    frames: '0-9',
    chunk_size: 4,
    prompt: "a 'watercolor'",
    edits: '0=/shared/e0.png; 5=/shared/e5.png',
    output_dir: '/shared/shot/out',
  });
  assert.deepEqual(
    tasks.map((t) => t.name),
    ['vidprior-finetune', 'vidprior-stylize-0-3', 'vidprior-stylize-4-7', 'vidprior-stylize-8-9', 'vidprior-video'],
  );
  const [finetune, first, , last, video] = tasks as [Task, Task, Task, Task, Task];
  assert.deepEqual(
    [...(finetune.commands[0]!.params.args as string[])],
    [
      'finetune',
      '--input=/shared/shot/in',
      '--edit=0=/shared/e0.png',
      '--edit=5=/shared/e5.png',
      "--prompt=a 'watercolor'",
      '--iters=1000',
      '--frames=30',
      '--seed=0',
      '--ep=auto',
      '--output=/shared/shot/out/adapter.safetensors',
    ],
  );
  assert.equal(first.commands[0]!.name, 'exec');
  assert.deepEqual(
    [...(first.commands[0]!.params.args as string[]).slice(-2)],
    ['--frame-range=0-3', '--skip-existing'],
  );
  assert.deepEqual(last.deps, [finetune]);
  assert.equal(video.deps.length, 3);
});

test('with an adapter there is no fine-tune; without edits or adapter the job is refused', () => {
  const base = { input_frames: '/in', frames: '0-0', prompt: 'x', output_dir: '/out', video_fps: 0 };
  const tasks = compile({ ...base, adapter: '/a.safetensors' });
  assert.deepEqual(
    tasks.map((t) => t.name),
    ['vidprior-stylize-0-0'],
  );
  assert.deepEqual(tasks[0]!.deps, []);
  assert.throws(() => compile(base), /edited keyframe/);
});
