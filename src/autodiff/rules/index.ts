/**
 * The one table of gradient rules: ONNX operator (default domain) → rule. An operator missing here has no
 * gradient; `buildGradients` fails with E_NO_GRADIENT naming it and the node when a gradient must flow through
 * it. Operators that pass no gradient at all (shape arithmetic, comparisons, integer ops) are listed with no
 * differentiable inputs, so they never lie on a gradient path.
 */
import type { GradRule } from './context.js';
import { CONV_RULES } from './conv.js';
import { ELEMENTWISE_RULES } from './elementwise.js';
import { INDEXING_RULES } from './indexing.js';
import { LAYOUT_RULES } from './layout.js';
import { LINEAR_RULES } from './linear.js';
import { NORMALIZATION_RULES } from './normalization.js';
import { POOLING_RULES } from './pooling.js';

const NO_GRADIENT: GradRule = { differentiable: () => [] };

/** Operators whose outputs do not depend differentiably on any input. */
export const NON_DIFFERENTIABLE_OPS = [
  'Constant',
  'Shape',
  'Size',
  'ConstantOfShape',
  'Range',
  'EyeLike',
  'OneHot',
  'NonZero',
  'Equal',
  'Less',
  'LessOrEqual',
  'Greater',
  'GreaterOrEqual',
  'Not',
  'And',
  'Or',
  'Xor',
  'IsNaN',
  'IsInf',
  'ArgMax',
  'ArgMin',
  'Floor',
  'Ceil',
  'Round',
  'Sign',
  'BitShift',
  'RandomNormal',
  'RandomUniform',
  'RandomNormalLike',
  'RandomUniformLike',
  'Multinomial',
  'Bernoulli',
] as const;

export const GRADIENT_RULES: Readonly<Record<string, GradRule>> = Object.freeze({
  ...Object.fromEntries(NON_DIFFERENTIABLE_OPS.map((op) => [op, NO_GRADIENT])),
  ...ELEMENTWISE_RULES,
  ...LINEAR_RULES,
  ...CONV_RULES,
  ...NORMALIZATION_RULES,
  ...LAYOUT_RULES,
  ...INDEXING_RULES,
  ...POOLING_RULES,
});

/** Operators with a gradient rule (differentiable ones), for docs and coverage tests. */
export function differentiableOps(): string[] {
  return Object.entries(GRADIENT_RULES)
    .filter(([, r]) => r.backward)
    .map(([op]) => op)
    .sort();
}
