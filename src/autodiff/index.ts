/** Reverse-mode autodiff over ONNX graphs (see gradients.ts). */
export { buildGradients, type GradientOptions, type GradientResult } from './gradients.js';
export { annotatedShapes, staticShapes, type ShapeOracle, type ValueMeta } from './rules/shapes.js';
export { GRADIENT_RULES, NON_DIFFERENTIABLE_OPS, differentiableOps } from './rules/index.js';
export type { GradRule, RuleContext } from './rules/context.js';
