/**
 * Test helper: puts the weights of a real diffusers export (../shared/fixtures/tiny-sd-torch) into a graph the
 * builder made from the same config, so both can be run on the same inputs. Exporters name some weights by
 * their state-dict key (behind a wrapper prefix: `u.`, `m.`, `v.`) and others anonymously (`onnx::MatMul_123`,
 * deduplicated when equal); the anonymous ones are named here after the node that consumes them.
 */
import type { Model, TensorValue, TypedData } from '../../../src/onnx/ir.js';

/** Fixture weights by the builder's parameter name. */
export function fixtureWeights(fixture: Model, wrapperPrefix: string, replacement: string): Map<string, TensorValue> {
  const g = fixture.graph;
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  // Identity nodes alias deduplicated tensors under their own names.
  const alias = new Map<string, string>();
  for (const n of g.nodes)
    if (n.opType === 'Identity' && inits.has(n.inputs[0]!)) alias.set(n.outputs[0]!, n.inputs[0]!);
  const resolve = (name: string): TensorValue | undefined => inits.get(alias.get(name) ?? name);
  const rename = (key: string): string =>
    key.startsWith(wrapperPrefix) ? replacement + key.slice(wrapperPrefix.length) : key;

  const out = new Map<string, TensorValue>();
  // 1. Tensors named by their state-dict key (directly or through an Identity alias).
  for (const name of [...inits.keys(), ...alias.keys()]) {
    const t = resolve(name);
    if (t && !name.startsWith('onnx::') && (t.type === 'float32' || t.type === 'float16')) out.set(rename(name), t);
  }
  // 2. Anonymous ones, after the consuming node: /<wrapper>/<module path>/MatMul → <path>.weight, GroupNorm's
  //    Mul → <path>.weight and Add → <path>.bias.
  const wrapperScope = `/${wrapperPrefix.replace(/\.$/, '')}/`;
  for (const n of g.nodes) {
    for (const input of n.inputs) {
      if (!input.startsWith('onnx::')) continue;
      const t = resolve(input);
      if (!t || (t.type !== 'float32' && t.type !== 'float16')) continue;
      let path = n.name.startsWith(wrapperScope) ? n.name.slice(wrapperScope.length) : n.name.replace(/^\//, '');
      path = path.slice(0, path.lastIndexOf('/'));
      const key = `${replacement}${path.replaceAll('/', '.')}`;
      if (n.opType === 'MatMul' || n.opType === 'Mul') out.set(`${key}.weight`, t);
      else if (n.opType === 'Add') out.set(`${key}.bias`, t);
    }
  }
  return out;
}

/** Fills every parameter of a shapes-only build from `weights`; throws naming the first one missing or misshapen. */
export function loadWeightsInto(model: Model, params: Iterable<string>, weights: Map<string, TensorValue>): void {
  const byName = new Map(model.graph.initializers.map((t) => [t.name, t]));
  for (const name of params) {
    const src = weights.get(name);
    const dst = byName.get(name);
    if (!src || !dst) throw new Error(`no fixture weight for parameter ${name}`);
    if (src.dims.join(',') !== dst.dims.join(','))
      throw new Error(`${name}: fixture [${src.dims}] vs built [${dst.dims}]`);
    dst.data = src.data as TypedData;
  }
}
