// `vidprior jobs list` against a daemon: a training job counts iterations (it has no frames), not "0/0 frames".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { JobExecutor } from '../../../daemon/jobs/executor.js';
import { startTestDaemon, testPng } from '../../daemon/helpers.js';
import { runCli } from '../run-cli.js';

/** A finetune that reports three iterations and waits at the second until told to go on. */
function pausedTraining(): { executor: JobExecutor; atSecond: Promise<void>; go: () => void } {
  let reached = (): void => {};
  let go = (): void => {};
  const atSecond = new Promise<void>((r) => {
    reached = r;
  });
  const proceed = new Promise<void>((r) => {
    go = r;
  });
  return {
    atSecond,
    go,
    executor: {
      kind: 'finetune',
      unavailable: () => null,
      plan: () => [],
      async run(ctx) {
        for (let k = 1; k <= 3; k++) {
          ctx.progress({ stage: 'training', fraction: k / 3, iteration: k, iterations: 3 });
          if (k === 2) {
            reached();
            await proceed;
          }
        }
        return {};
      },
    },
  };
}

const cli = (args: string[]) => runCli(args);

test('jobs list shows the iterations of a training job, while it runs and when done', async () => {
  const training = pausedTraining();
  const d = await startTestDaemon({ executors: [training.executor] });
  try {
    const c = await d.connect();
    const job = await c.submit({
      kind: 'finetune',
      params: { prompt: 'ink', iters: 3 },
      frames: [{ png: await testPng(0, 16, 16) }],
    });
    await training.atSecond;
    const running = await cli(['jobs', 'list', '--url', d.url]);
    assert.equal(running.code, 0, running.stderr);
    assert.match(running.stdout, new RegExp(`${job.id}\\s+finetune\\s+running .* 2/3 iterations`));
    assert.doesNotMatch(running.stdout, /0\/0 frames/);
    training.go();
    await job.done;
    const [summary] = await c.listJobs();
    assert.equal(summary!.iterations_total, 3);
    assert.equal(summary!.iterations_done, 3);
    const done = await cli(['jobs', 'list', '--url', d.url]);
    assert.match(done.stdout, /finetune\s+done .* 3\/3 iterations/);
  } finally {
    training.go();
    await d.close();
  }
});
