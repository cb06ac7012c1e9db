/**
 * Style-LoRA merge cost: the low-rank products of an SD 1.5-sized LoRA (rank 32 on the attention projections,
 * proj_in/proj_out and feed-forward of every transformer block, 320/640/1280 channels, 768-wide text), computed
 * in JavaScript (float64, exact) and as a MatMul on the runtime (what `--lora` uses), timed interleaved in the
 * same run. One block per width is measured; the totals scale it by the 16 blocks SD 1.5 has.
 *
 *   node dist/bench/lora.js [--ep cpu] [--quick]      (also part of `npm run bench`)
 */
import { pathToFileURL } from 'node:url';
import { jsProduct, runtimeProduct } from '../src/models/lora/product.js';
import { openRuntime } from '../src/runtime/index.js';
import { Rng } from '../src/random.js';
import { type BenchContext, type BenchModule, hostInfo, round, timeInterleaved } from './common.js';

/** [out, in] of each adapted layer of one SD 1.x transformer block with `c` channels. */
function blockLayers(c: number): [number, number][] {
  return [
    [c, c], // attn1.to_q, to_k, to_v, to_out.0 and attn2.to_q, to_out.0
    [c, c],
    [c, c],
    [c, c],
    [c, c],
    [c, c],
    [c, 768], // attn2.to_k, to_v (the text width)
    [c, 768],
    [8 * c, c], // ff.net.0.proj (GEGLU: 2 × 4c)
    [c, 4 * c], // ff.net.2
    [c, c], // proj_in, proj_out
    [c, c],
  ];
}
/** SD 1.5's transformer blocks per width: 2 down + 3 up at 320 and 640; 2 down + 3 up + mid at 1280. */
const BLOCKS: Record<number, number> = { 320: 5, 640: 5, 1280: 6 };

export async function loraBench(ctx: BenchContext): Promise<unknown> {
  const rank = 32;
  const rng = new Rng(1);
  const runtime = await openRuntime({ ep: ctx.ep });
  const fast = await runtimeProduct(runtime);
  try {
    const widths = ctx.quick ? [320] : [320, 640, 1280];
    const perWidth: Record<string, unknown> = {};
    let js = 0;
    let rt = 0;
    let macs = 0;
    for (const c of widths) {
      const layers = blockLayers(c).map(([out, inF]) => ({
        out,
        inF,
        a: Float64Array.from(rng.normalArray(out * rank)),
        b: Float64Array.from(rng.normalArray(rank * inF)),
      }));
      const block = (product: typeof jsProduct) => async () => {
        for (const l of layers) await product(l.a, l.b, l.out, rank, l.inF);
      };
      const t = await timeInterleaved(
        { javascript: block(jsProduct), runtime: block(fast.product) },
        1,
        ctx.quick ? 1 : 3,
      );
      const blockMacs = layers.reduce((s, l) => s + l.out * l.inF * rank, 0);
      perWidth[c] = {
        blocks: BLOCKS[c],
        gMacPerBlock: round(blockMacs / 1e9),
        javascriptSeconds: round(t.javascript.median),
        runtimeSeconds: round(t.runtime.median),
        ratio: round(t.javascript.median / t.runtime.median, 3),
      };
      ctx.log(
        `width ${c}: JavaScript ${t.javascript.median.toFixed(2)} s, runtime ${t.runtime.median.toFixed(2)} s per block`,
      );
      js += t.javascript.median * BLOCKS[c]!;
      rt += t.runtime.median * BLOCKS[c]!;
      macs += blockMacs * BLOCKS[c]!;
    }
    return {
      host: hostInfo(),
      ep: runtime.decision.ep,
      rank,
      perWidth,
      unetLoraGMac: round(macs / 1e9),
      unetLoraSeconds: { javascript: round(js), runtime: round(rt), ratio: round(js / rt, 3) },
      note: ctx.quick ? 'quick: the 320-wide blocks only' : 'all 16 transformer blocks of SD 1.5',
    };
  } finally {
    await fast.release();
    await runtime.close();
  }
}

export const loraMergeBench: BenchModule = {
  name: 'lora',
  describe: 'style-LoRA merge: SD 1.5-sized rank-32 products in JavaScript vs on the runtime, same run',
  run: loraBench,
};

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv.includes('--quick');
  const ep = (process.argv[process.argv.indexOf('--ep') + 1] ?? 'cpu') as BenchContext['ep'];
  const result = await loraBench({
    ep: process.argv.includes('--ep') ? ep : 'cpu',
    preset: 'sd15',
    dtype: 'float32',
    quick,
    modelsDir: '',
    log: (l) => process.stderr.write(`${l}\n`),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
