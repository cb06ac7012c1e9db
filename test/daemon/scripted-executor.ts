// A job executor for tests of the daemon around the model (queue, paths, watched folders, hostile clients): it
// plans one output per input frame like stylize and emits given PNG bytes, optionally waiting at a gate first.
import type { ExecutorContext, JobExecutor } from '../../daemon/jobs/executor.js';
import { outputFrameName } from '../../src/io/inputs.js';

export interface ScriptedExecutor extends JobExecutor {
  /** How many times run() started. */
  runs: number;
  /** Holds every job before its frame `at` until open() (all frames pass when no gate is set). */
  gate(at: number): void;
  open(): void;
  /** Resolves when a job reaches the gate. */
  waiting(): Promise<void>;
  /** Waits this long before each frame (0: none). */
  pace(ms: number): void;
}

export function scriptedExecutor(
  png: () => Uint8Array | Promise<Uint8Array>,
  kind = 'stylize' as const,
): ScriptedExecutor {
  let gateAt = Number.POSITIVE_INFINITY;
  let paceMs = 0;
  let release: (() => void) | null = null;
  let opened: Promise<void> = Promise.resolve();
  let arrived: () => void = () => {};
  let arrival = new Promise<void>((r) => {
    arrived = r;
  });
  const ex: ScriptedExecutor = {
    kind,
    runs: 0,
    unavailable: () => null,
    plan: ({ inputNames }) => inputNames.map(outputFrameName),
    async run(ctx: ExecutorContext) {
      ex.runs++;
      for (let i = 0; i < ctx.spec.outputs.length; i++) {
        if (i === gateAt) {
          arrived();
          await Promise.race([
            opened,
            new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
          ]);
        }
        if (paceMs) await new Promise((r) => setTimeout(r, paceMs));
        ctx.signal.throwIfAborted();
        if (!ctx.isDone(i)) await ctx.emitFrame(i, await png());
      }
      return {};
    },
    gate(at) {
      gateAt = at;
      opened = new Promise<void>((r) => {
        release = r;
      });
      arrival = new Promise<void>((r) => {
        arrived = r;
      });
    },
    open() {
      gateAt = Number.POSITIVE_INFINITY;
      release?.();
    },
    waiting: () => arrival,
    pace(ms) {
      paceMs = ms;
    },
  };
  return ex;
}
