/** Small numeric helpers shared by the schedulers and image I/O, so both round exactly as numpy does. */

/** Round half to even, as numpy's round does (for any sign). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
