/** Frames and videos in and out, and .npy arrays. */
export {
  IMAGE_EXTENSIONS,
  isImageFile,
  naturalCompare,
  listFrameFiles,
  imageSize,
  readFrame,
  writeFramePng,
  hwcToTensor,
  tensorToRgb8,
  type FrameFile,
  type Size,
  type ReadFrameOptions,
} from './frames.js';
export {
  planFit,
  fitIsIdentity,
  padFrame,
  cropFrame,
  reflectIndex,
  type FitPlan,
  type FitMode,
  type PadMode,
} from './size.js';
export {
  VIDEO_EXTENSIONS,
  isVideoFile,
  probeVideo,
  decodeVideo,
  encodeVideo,
  encoderArgs,
  decodedFrameName,
  DECODED_FRAME_PATTERN,
  type VideoInfo,
  type EncodeOptions,
} from './video.js';
export {
  openFrameSource,
  openFrameSink,
  outputFrameName,
  type FrameSource,
  type FrameSink,
  type FrameSourceOptions,
  type FrameSinkOptions,
} from './inputs.js';
export { parseNpy, readNpy, readNpyFloat32, encodeNpy, writeNpy, type NpyArray, type NpyDtype } from './npy.js';
