#!/usr/bin/env node
// Comments that name a source file must name one that exists: a moved or deleted file otherwise leaves comments
// pointing nowhere. Checks .ts/.mjs/.py/.md/.sh names in comments of the project's code; a name matches when some
// tracked file's path ends with it ("builder/weights.ts", "PROTOCOL.md"). Names of data files a model or job
// holds (model.onnx, job.json…) are not checked. Exits 1 listing each dangling name.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

const tracked = execFileSync('git', ['ls-files'], { encoding: 'utf8' }).split('\n').filter(Boolean);
const code = tracked.filter((f) => /\.(ts|mjs|py|sh)$/.test(f) || f.startsWith('.ci/'));
const NAME = /(?<![\w/.@-])((?:[\w.-]+\/)*[\w-]+(?:\.[\w-]+)*\.(?:ts|mjs|py|md|sh))\b/g;
// Files outside the repo that comments cite on purpose: reference code the project follows, and what
// ../shared/gpu/bundle.sh generates on the GPU machine.
const EXTERNAL = new Set([
  'compute_flow_occlusion.py', // fast_blind_video_consistency (Lai et al. 2018), the E_warp reference
  'evaluate_WarpError.py', // the same
  'simple_tokenizer.py', // openai/CLIP's original tokenizer, which src/tokenizer follows
  'openaimodel.py', // the original SD UNet (ldm/modules/diffusionmodules), whose key layout checkpoints keep
  '.gpu/prelude.sh', // written by ../shared/gpu/bundle.sh
]);
const exists = (name) =>
  EXTERNAL.has(name) ||
  (name.startsWith('../') && (!existsSync('../shared') || existsSync(name))) ||
  tracked.some((f) => f === name || f.endsWith(`/${name}`));

function comments(file, text) {
  const hash = /\.(py|sh)$/.test(file) || file.startsWith('.ci/');
  const out = [];
  text.split('\n').forEach((line, i) => {
    const m = hash ? line.match(/(?:^|\s)#(.*)$/) : line.match(/(?:\/\/|^\s*\/?\*)(.*)$/);
    if (m) out.push({ line: i + 1, text: m[1].replace(/https?:\/\/\S+/g, '') });
  });
  if (file.endsWith('.py')) {
    // docstrings
    for (const m of text.matchAll(/"""([\s\S]*?)"""/g)) {
      const line = text.slice(0, m.index).split('\n').length;
      out.push({ line, text: m[1].replace(/https?:\/\/\S+/g, '') });
    }
  }
  return out;
}

let dangling = 0;
for (const file of code) {
  for (const c of comments(file, readFileSync(file, 'utf8'))) {
    for (const m of c.text.matchAll(NAME)) {
      if (!exists(m[1])) {
        dangling++;
        console.log(`${file}:${c.line}: names ${m[1]}, which does not exist`);
      }
    }
  }
}
if (dangling) {
  console.error(`check-comment-paths: ${dangling} comment(s) name files that do not exist`);
  process.exit(1);
}
console.log('check-comment-paths: every file named in a comment exists');
