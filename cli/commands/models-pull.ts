/**
 * `vidprior models pull <owner/name> [--revision] [--variant fp16] [--format]`: the files an SD 1.x pipeline
 * needs, from the Hugging Face hub (HF_ENDPOINT) into the hub cache that diffusers shares (HF_HOME /
 * HF_HUB_CACHE), with the CLI's progress bar (progress.ts) on a terminal. HF_TOKEN opens gated and private repos;
 * HF_HUB_OFFLINE answers from the cache alone. An interrupted pull resumes when run again.
 */
import type { CommandModule } from 'yargs';
import { config } from '../../src/config.js';
import { type PullProgress, pullModel } from '../../src/models/hub/pull.js';
import type { PullFormat } from '../../src/models/hub/select.js';
import { type Reporter, makeReporter } from './output.js';
import { stopAllProgress } from './progress.js';
import { withSigint } from './model-session.js';

interface PullArgs {
  repo: string;
  revision: string;
  variant?: string;
  format: PullFormat;
  json: boolean;
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** Progress through the CLI's one progress view: a bar with ETA on a terminal, JSON lines, or plain lines. */
function progressView(reporter: Reporter): { on: (p: PullProgress) => void; stop: () => void } {
  let total = 0;
  let done = 0;
  return {
    on(p) {
      if (p.phase === 'plan') {
        total = p.bytes;
        done = p.cachedBytes;
        reporter.note(
          `${p.format === 'onnx' ? 'ONNX export' : 'diffusers pipeline'} at ${p.commit.slice(0, 12)}: ${p.files} files, ${mib(p.bytes)}${p.cachedBytes ? ` (${mib(p.cachedBytes)} already cached)` : ''}`,
        );
      } else if (p.phase === 'bytes') {
        // The first call of a file reports the part kept from an interrupted pull (delta 0): count it as done.
        done += p.delta > 0 ? p.delta : p.received;
        reporter.progress(
          { event: 'progress', file: p.path, received: p.received, size: p.size, done, total },
          `${mib(done)} of ${mib(total)}: ${p.path}`,
          total > 0 ? done / total : undefined,
        );
      } else if (p.phase === 'file' && !p.cached) {
        reporter.progress({ event: 'file', path: p.path, index: p.index, files: p.files, size: p.size });
      }
    },
    stop() {
      stopAllProgress();
    },
  };
}

export const pullCommand: CommandModule<object, PullArgs> = {
  command: 'pull <repo>',
  describe: 'Download an SD 1.x pipeline from the Hugging Face hub into its cache (diffusers shares it)',
  builder: (yargs) =>
    yargs
      .positional('repo', { type: 'string', demandOption: true, describe: 'the model id, owner/name' })
      .option('revision', { type: 'string', default: 'main', describe: 'a branch, tag or commit' })
      .option('variant', { type: 'string', describe: 'weights variant, e.g. fp16 (diffusers repos)' })
      .option('format', {
        type: 'string',
        choices: ['auto', 'diffusers', 'onnx'],
        default: 'auto',
        describe: 'which files: an ONNX export when the repo has one (auto), or the diffusers safetensors',
      })
      .option('json', { type: 'boolean', default: false, describe: 'progress and result as JSON lines on stdout' })
      .example(
        '$0 models pull runwayml/stable-diffusion-v1-5 --variant fp16',
        'then: --model runwayml/stable-diffusion-v1-5',
      )
      .example('$0 models pull some/sd15-onnx --revision onnx', 'an ONNX export kept on a branch') as never,
  handler: async (argv) => {
    const reporter = makeReporter(argv.json);
    const c = config();
    const view = progressView(reporter);
    let r: Awaited<ReturnType<typeof pullModel>>;
    try {
      r = await withSigint((signal) =>
        pullModel(argv.repo, {
          hubCache: c.hfHubCache,
          endpoint: c.hfEndpoint,
          token: c.hfToken,
          tokenPath: c.hfTokenPath,
          offline: c.hfOffline,
          revision: argv.revision,
          variant: argv.variant,
          format: argv.format,
          signal,
          onProgress: view.on,
        }),
      );
    } finally {
      view.stop();
    }
    for (const n of r.notes) reporter.note(n);
    reporter.result(
      {
        repo: r.repo,
        revision: r.revision,
        commit: r.commit,
        dir: r.dir,
        format: r.format,
        files: r.files,
        downloaded: r.downloaded,
        offline: r.offline,
      },
      r.offline
        ? `${r.repo} is in the cache (offline): ${r.dir}`
        : `${r.repo}@${r.revision} (${r.commit.slice(0, 12)}): ${r.files.length} files, ${mib(r.downloaded)} downloaded → ${r.dir}`,
    );
  },
};
