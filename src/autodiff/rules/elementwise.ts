/**
 * Gradient rules of elementwise operators: arithmetic with numpy broadcasting (the gradient is summed back over
 * broadcast axes), unary math and activations. Rules reuse the forward output where the derivative is a
 * function of it (Sigmoid, Tanh, Exp, Sqrt) instead of storing anything new.
 */
import { type GradRule, type RuleContext, FLOAT_TYPES } from './context.js';
import { ELEM_TYPE_BY_CODE, attrFloat, attrInt, attrString } from '../../onnx/ir.js';

/** A unary rule: dX = f(ctx, dY). */
function unary(f: (ctx: RuleContext, dY: string) => string): GradRule {
  return { backward: (ctx, [dY]) => [dY ? f(ctx, dY) : undefined] };
}

/** The forward output's shape (the shape every incoming gradient has). */
const outShape = (ctx: RuleContext) => ctx.shape(ctx.output());

const add: GradRule = {
  backward: (ctx, [dY]) => [
    ctx.needs(0) ? ctx.toInput(dY!, outShape(ctx), 0) : undefined,
    ctx.needs(1) ? ctx.toInput(dY!, outShape(ctx), 1) : undefined,
  ],
};

const sub: GradRule = {
  backward: (ctx, [dY]) => [
    ctx.needs(0) ? ctx.toInput(dY!, outShape(ctx), 0) : undefined,
    // Negate after reducing: the reduced tensor is the smaller one.
    ctx.needs(1) ? ctx.neg(ctx.toInput(dY!, outShape(ctx), 1)) : undefined,
  ],
};

const mul: GradRule = {
  backward: (ctx, [dY]) => {
    const y = outShape(ctx);
    return [
      ctx.needs(0) ? ctx.toInput(ctx.mul(dY!, ctx.input(1)), y, 0) : undefined,
      ctx.needs(1) ? ctx.toInput(ctx.mul(dY!, ctx.input(0)), y, 1) : undefined,
    ];
  },
};

// y = a / b: da = dY / b, db = -da · y (reuses the output instead of recomputing a / b²).
const div: GradRule = {
  backward: (ctx, [dY]) => {
    const y = outShape(ctx);
    const da = ctx.div(dY!, ctx.input(1));
    return [
      ctx.needs(0) ? ctx.toInput(da, y, 0) : undefined,
      ctx.needs(1) ? ctx.neg(ctx.toInput(ctx.mul(da, ctx.output()), y, 1)) : undefined,
    ];
  },
};

// y = x^e. dx = dY·e·x^(e-1); de = dY·y·ln x. A constant exponent (the usual Pow(x, 2) of exported
// LayerNorm/GroupNorm) becomes a constant of x's type.
const pow: GradRule = {
  backward: (ctx, [dY]) => {
    const x = ctx.input(0),
      e = ctx.input(1);
    const y = outShape(ctx);
    let dx: string | undefined;
    if (ctx.needs(0)) {
      const ev = ctx.shapes.constInts(e);
      let slope: string;
      if (ev && ev.length === 1) {
        const k = ev[0]!;
        slope =
          k === 2
            ? ctx.mul(x, ctx.scalar(2, x))
            : k === 1
              ? ctx.op('Identity', [ctx.scalar(1, x)])
              : ctx.mul(ctx.op('Pow', [x, ctx.scalar(k - 1, x)]), ctx.scalar(k, x));
      } else {
        const eT = ctx.type(e) === ctx.type(x) ? e : ctx.op('Cast', [e], { to: typeCode(ctx.type(x)) });
        slope = ctx.mul(ctx.op('Pow', [x, ctx.sub(eT, ctx.scalar(1, x))]), eT);
      }
      dx = ctx.toInput(ctx.mul(dY!, slope), y, 0);
    }
    const de = ctx.needs(1) ? ctx.toInput(ctx.mul(ctx.mul(dY!, ctx.output()), ctx.op('Log', [x])), y, 1) : undefined;
    return [dx, de];
  },
};

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const INV_SQRT_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

// Gelu (opset 20). none: dx = dY·(Φ(x) + x·φ(x)); tanh: the derivative of 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))).
function geluGrad(ctx: RuleContext, dY: string): string {
  const x = ctx.input(0);
  const c = (v: number) => ctx.scalar(v, x);
  if (attrString(ctx.node, 'approximate', 'none') === 'tanh') {
    const k = Math.sqrt(2 / Math.PI);
    const x2 = ctx.mul(x, x);
    const inner = ctx.mul(ctx.mul(x, ctx.add(c(1), ctx.mul(x2, c(0.044715)))), c(k));
    const t = ctx.op('Tanh', [inner]);
    const dInner = ctx.mul(ctx.add(c(1), ctx.mul(x2, c(3 * 0.044715))), c(k));
    const sech2 = ctx.sub(c(1), ctx.mul(t, t));
    const slope = ctx.mul(ctx.add(ctx.add(c(1), t), ctx.mul(ctx.mul(x, sech2), dInner)), c(0.5));
    return ctx.mul(dY, slope);
  }
  const cdf = ctx.mul(ctx.add(ctx.op('Erf', [ctx.mul(x, c(INV_SQRT_2))]), c(1)), c(0.5));
  const pdf = ctx.mul(ctx.op('Exp', [ctx.mul(ctx.mul(x, x), c(-0.5))]), c(INV_SQRT_2PI));
  return ctx.mul(dY, ctx.add(cdf, ctx.mul(x, pdf)));
}

const where: GradRule = {
  differentiable: () => [1, 2],
  backward: (ctx, [dY]) => {
    const y = outShape(ctx);
    const cond = ctx.input(0);
    const zero = () => ctx.scalar(0, ctx.output());
    return [
      undefined,
      ctx.needs(1) ? ctx.toInput(ctx.op('Where', [cond, dY!, zero()]), y, 1) : undefined,
      ctx.needs(2) ? ctx.toInput(ctx.op('Where', [cond, zero(), dY!]), y, 2) : undefined,
    ];
  },
};

// Float-to-float casts pass the gradient back in the input's type; casts to integers or bool pass none.
const cast: GradRule = {
  differentiable: (n) => (FLOAT_TYPES.has(ELEM_TYPE_BY_CODE[attrInt(n, 'to', 1)]!) ? [0] : []),
  backward: (ctx, [dY]) => {
    const from = ctx.type(ctx.input(0));
    if (!FLOAT_TYPES.has(from)) return [undefined];
    return [from === ctx.type(ctx.output()) ? dY : ctx.op('Cast', [dY!], { to: typeCode(from) })];
  },
};

// CastLike(x, like): the gradient goes back in x's type; `like` only lends its type.
const castLike: GradRule = {
  differentiable: () => [0],
  backward: (ctx, [dY]) => {
    const from = ctx.type(ctx.input(0));
    if (!FLOAT_TYPES.has(from) || !FLOAT_TYPES.has(ctx.type(ctx.output()))) return [undefined];
    return [from === ctx.type(ctx.output()) ? dY : ctx.op('Cast', [dY!], { to: typeCode(from) })];
  },
};

// Variadic Sum/Mean: each input gets dY (scaled by 1/n for Mean), summed over its broadcast axes.
function variadic(mean: boolean): GradRule {
  return {
    backward: (ctx, [dY]) => {
      const n = ctx.node.inputs.length;
      const g = mean && n > 1 ? ctx.mul(dY!, ctx.scalar(1 / n, ctx.output())) : dY!;
      return ctx.node.inputs.map((_, i) => (ctx.needs(i) ? ctx.toInput(g, outShape(ctx), i) : undefined));
    },
  };
}

// Clip(x, min, max): the gradient passes where min ≤ x ≤ max (bounds are constants in exports: no gradient).
const clip: GradRule = {
  differentiable: () => [0],
  backward: (ctx, [dY]) => {
    const x = ctx.input(0);
    let inside: string | undefined;
    if (ctx.node.inputs[1]) inside = ctx.op('GreaterOrEqual', [x, ctx.input(1)]);
    if (ctx.node.inputs[2]) {
      const below = ctx.op('LessOrEqual', [x, ctx.input(2)]);
      inside = inside ? ctx.op('And', [inside, below]) : below;
    }
    return [inside ? ctx.op('Where', [inside, dY!, ctx.scalar(0, x)]) : dY];
  },
};

// Dropout in an inference graph is the identity (its mask output carries no gradient).
const dropout: GradRule = {
  differentiable: () => [0],
  backward: (ctx, [dY]) => {
    if (ctx.node.inputs[2])
      ctx.fail('a training_mode input is not supported (dropout is an identity only at inference)');
    return [dY];
  },
};

function typeCode(t: string): number {
  return ({ float32: 1, float16: 10, float64: 11, bfloat16: 16 } as Record<string, number>)[t] ?? 1;
}

// Max/Min of two inputs: the gradient goes to the input that won (ties to the first).
function select(op: 'GreaterOrEqual' | 'LessOrEqual'): GradRule {
  return {
    backward: (ctx, [dY]) => {
      const y = outShape(ctx);
      if (ctx.node.inputs.length !== 2) ctx.fail('only the two-input form is supported');
      const firstWins = ctx.op(op, [ctx.input(0), ctx.input(1)]);
      const zero = () => ctx.scalar(0, ctx.output());
      const a = ctx.op('Where', [firstWins, dY!, zero()]);
      const bGrad = ctx.op('Where', [firstWins, zero(), dY!]);
      return [ctx.needs(0) ? ctx.toInput(a, y, 0) : undefined, ctx.needs(1) ? ctx.toInput(bGrad, y, 1) : undefined];
    },
  };
}

export const ELEMENTWISE_RULES: Record<string, GradRule> = {
  Add: add,
  Sub: sub,
  Mul: mul,
  Div: div,
  Pow: pow,
  Max: select('GreaterOrEqual'),
  Min: select('LessOrEqual'),
  Neg: unary((ctx, dY) => ctx.neg(dY)),
  Identity: unary((_ctx, dY) => dY),
  Sqrt: unary((ctx, dY) => ctx.div(ctx.mul(dY, ctx.scalar(0.5, ctx.output())), ctx.output())),
  Exp: unary((ctx, dY) => ctx.mul(dY, ctx.output())),
  Log: unary((ctx, dY) => ctx.div(dY, ctx.input(0))),
  Reciprocal: unary((ctx, dY) => ctx.neg(ctx.mul(dY, ctx.mul(ctx.output(), ctx.output())))),
  Abs: unary((ctx, dY) => ctx.mul(dY, ctx.op('Sign', [ctx.input(0)]))),
  Erf: unary((ctx, dY) => {
    const x = ctx.input(0);
    return ctx.mul(dY, ctx.mul(ctx.op('Exp', [ctx.neg(ctx.mul(x, x))]), ctx.scalar(TWO_OVER_SQRT_PI, x)));
  }),
  Sigmoid: unary((ctx, dY) => {
    const y = ctx.output();
    return ctx.mul(dY, ctx.mul(y, ctx.sub(ctx.scalar(1, y), y)));
  }),
  Tanh: unary((ctx, dY) => {
    const y = ctx.output();
    return ctx.mul(dY, ctx.sub(ctx.scalar(1, y), ctx.mul(y, y)));
  }),
  Relu: unary((ctx, dY) =>
    ctx.op('Where', [ctx.op('Greater', [ctx.input(0), ctx.scalar(0, ctx.input(0))]), dY, ctx.scalar(0, ctx.input(0))]),
  ),
  Softplus: unary((ctx, dY) => ctx.mul(dY, ctx.op('Sigmoid', [ctx.input(0)]))),
  // y = x for x > 0, αx otherwise: dY where x > 0, α·dY elsewhere (at 0 the left slope, like PyTorch).
  LeakyRelu: unary((ctx, dY) => {
    const x = ctx.input(0);
    const slope = ctx.mul(dY, ctx.scalar(attrFloat(ctx.node, 'alpha', 0.01), x));
    return ctx.op('Where', [ctx.op('Greater', [x, ctx.scalar(0, x)]), dY, slope]);
  }),
  Gelu: unary(geluGrad),
  Sin: unary((ctx, dY) => ctx.mul(dY, ctx.op('Cos', [ctx.input(0)]))),
  Cos: unary((ctx, dY) => ctx.neg(ctx.mul(dY, ctx.op('Sin', [ctx.input(0)])))),
  Where: where,
  Cast: cast,
  CastLike: castLike,
  Sum: variadic(false),
  Mean: variadic(true),
  Clip: clip,
  Dropout: dropout,
};
