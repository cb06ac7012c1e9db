// Shared synthetic data for the metrics tests (re-exports plus a few conveniences).
import { resizeRgb, type RgbImage } from '../../src/metrics/image.js';
export {
  consistentStyle,
  renderShifted,
  renderWithSquare,
  scaleBrightness,
  smoothTexture,
} from '../../src/metrics/synthetic.js';

export function resizeRgbFrames(frames: RgbImage[], width: number, height: number): RgbImage[] {
  return frames.map((f) => resizeRgb(f, width, height));
}
