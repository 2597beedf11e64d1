// Type declarations of the metricann npm package.

/** An image MetricAnn can read. Node.js: Uint8Array/ArrayBuffer/Blob of encoded bytes, or RGBA pixels. */
export type ImageInput =
  | ImageData
  | ImageBitmap
  | HTMLImageElement
  | HTMLVideoElement
  | HTMLCanvasElement
  | OffscreenCanvas
  | Blob
  | File
  | Uint8Array
  | ArrayBuffer
  | RgbaPixels;

/** Raw RGBA pixels, row by row (what `ImageData` holds). */
export interface RgbaPixels {
  width: number;
  height: number;
  data: Uint8ClampedArray | Uint8Array;
}

export type ErrorCode =
  | 'BAD_IMAGE'
  | 'BAD_INPUT'
  | 'CORRUPT'
  | 'MODEL_MISMATCH'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'QUOTA_EXCEEDED'
  | 'LOCKED'
  | 'IO'
  | 'INTERNAL';

/** Every error MetricAnn throws or rejects with. */
export interface MetricAnnError extends Error {
  name: 'MetricAnnError';
  code: ErrorCode;
  /** For CORRUPT: the name of the damaged stored record. */
  blob?: string;
}

export declare const ERROR_CODES: readonly ErrorCode[];

export interface Progress {
  loaded: number;
  /** Bytes in all, when the server says (Content-Length), else null. */
  total: number | null;
}

export interface OpenOptions {
  /**
   * A model the package ships, by name (`'objects'`, `'glyphs'`), the URL of a
   * model bundle (Node.js: also a file path or file: URL), or its bytes.
   */
  model: ModelName | string | URL | Uint8Array | ArrayBuffer | Blob;
  /** IndexedDB database to keep the gallery in; omitted: an in-memory gallery. */
  gallery?: string;
  /** "auto" (default): WebGPU when the browser has it, else the CPU. */
  backend?: 'auto' | 'webgpu' | 'cpu';
  /** Called as the model downloads. */
  onProgress?: (progress: Progress) => void;
  /** Open a gallery with damaged records, leaving them out (they are listed in stats().damaged). */
  skipDamaged?: boolean;
  /** When the gallery was built by another model: re-embed its kept images with this one. */
  reembed?: boolean;
  /** When the gallery was built by another model: open it anyway (search/enroll refuse until reembed()). */
  allowModelMismatch?: boolean;
}

export interface ImportOptions extends OpenOptions {
  /** Replace a gallery of that name that already exists. */
  overwrite?: boolean;
}

export interface EnrollOptions {
  /** JSON-compatible data returned with every match of the class (replaces the previous). */
  metadata?: unknown;
  /** Store the encoded images too, so that reembed() can rebuild the class with another model. */
  keepImages?: boolean;
}

export interface SearchOptions {
  /** How many classes to return (default 5). */
  k?: number;
  /** Open-set threshold on the score: below it, `unknown` is true. Defaults to
   * the model's calibrated threshold (`stats().threshold`); `-1` turns it off. */
  threshold?: number;
}

export interface ClassMatch {
  label: string;
  /** Cosine similarity of the class's best example to the query. */
  score: number;
  /** 1 − score. */
  distance: number;
  metadata: unknown | null;
}

export interface SearchResult {
  matches: ClassMatch[];
  /** Nothing matched, or the best score is below the threshold. */
  unknown: boolean;
}

export interface ClassInfo {
  label: string;
  examples: number;
  metadata: unknown | null;
  hasImages: boolean;
}

export interface Stats {
  classes: number;
  vectors: number;
  deleted: number;
  segments: { name: string; kind: string; vectors: number; bytes: number; [k: string]: unknown }[];
  bytes: number;
  /** Bytes the index holds in memory: vectors (or int8 codes), graph links, ids. */
  memoryBytes: number;
  /** The module's whole WebAssembly memory (it grows and never shrinks): what to watch for leaks. */
  wasmMemoryBytes: number;
  /** How sealed graphs store vectors: 'none' (float32), 'int8' or 'int8-residual' (after quantize()). */
  quantization: 'none' | 'int8' | 'int8-residual';
  backend: 'webgpu' | 'cpu';
  /** Why "auto" did not take WebGPU. */
  backendFallback: string | null;
  gallery: string | null;
  persistent: boolean;
  /** false while another tab/window/worker holds the gallery for writing. */
  writable: boolean;
  lock: 'held' | 'held-elsewhere' | 'unsupported';
  dim: number;
  /** The threads index builds run on (1 unless the threaded build is running). */
  threads: number;
  fingerprint: string;
  modelFingerprint: string;
  /** The model's calibrated "unknown" threshold, or null for a model without one. */
  threshold: number | null;
  model: string;
  /** The gallery holds another model's vectors (opened with allowModelMismatch). */
  stale: boolean;
  /** The model embeds with the gallery's adapted head (adapt()). */
  adapted: boolean;
  needsMaintenance: boolean;
  damaged: { blob: string; reason: string }[];
}

export interface AdaptOptions {
  /** Optimisation steps (default 150). */
  steps?: number;
  /** Augmented camera-like views of each kept image, besides the image (default 6). */
  views?: number;
  /** AdamW's learning rate (default 1e-3). */
  learningRate?: number;
  /** Triplet margin on the unit sphere (default 0.2). */
  margin?: number;
  /** Classes per batch (default 32) and views of each (default 4). */
  classesPerBatch?: number;
  viewsPerClass?: number;
  /** The same gallery and seed give the same head (default 0). */
  seed?: number;
  /** 'triplet' (batch-hard, the default) or 'proxy' (normalised softmax over one proxy per class). */
  loss?: 'triplet' | 'proxy';
  /** Called as features are computed, then every 10 training steps. */
  onProgress?: (progress: AdaptProgress) => void;
  /** Aborting rejects with an AbortError and leaves the gallery as it was. */
  signal?: AbortSignal;
}

export type AdaptProgress =
  | { phase: 'features'; done: number; total: number }
  | { phase: 'training'; step: number; steps: number; loss: number };

export interface AdaptResult {
  /** The head was kept: the gallery is re-embedded with it and stores it. */
  adapted: boolean;
  /** Whether the held-out check let the head be kept (same as `adapted`). */
  kept: boolean;
  classes: number;
  /** Images trained on (held-out ones excluded) and feature vectors (with their views). */
  images: number;
  views: number;
  steps: number;
  firstLoss: number;
  lastLoss: number;
  /**
   * Top-1 among the gallery's classes of one held-out image per class (of the
   * classes with two or more), with the shipped head and the adapted one. When
   * every class has one image, `views` is true: an augmented view of each was
   * held out, and the head is kept only if it does strictly better on them.
   */
  heldOut: { images: number; views: boolean; top1Before: number; top1After: number } | null;
  featureSeconds: number;
  trainingSeconds: number;
  /** The gallery's fingerprint afterwards (the adapted model's when kept). */
  fingerprint: string;
}

export interface VectorEntry {
  label: string;
  vectors: (Float32Array | number[])[];
  metadata?: unknown;
}

/** The methods shared by MetricAnn and the worker proxy. */
export interface MetricAnnApi {
  embed(image: ImageInput): Promise<Float32Array>;
  enroll(
    label: string,
    images: ImageInput | ImageInput[],
    options?: EnrollOptions,
  ): Promise<{ label: string; examples: number }>;
  /** Precomputed vectors of several classes as one transaction (one chunk, one class page); a bad entry changes nothing. Resolves to the class count. */
  enrollVectors(entries: VectorEntry[]): Promise<number>;
  search(image: ImageInput, options?: SearchOptions): Promise<SearchResult>;
  searchVector(vector: Float32Array | number[], options?: SearchOptions): Promise<SearchResult>;
  remove(label: string): Promise<void>;
  rename(oldLabel: string, newLabel: string): Promise<void>;
  setMetadata(label: string, metadata: unknown | null): Promise<void>;
  classes(): Promise<ClassInfo[]>;
  stats(): Promise<Stats>;
  /** The whole gallery as one file (a Blob; a Uint8Array with { format: "bytes" }). */
  export(options?: { format?: 'blob' | 'bytes' }): Promise<Blob | Uint8Array>;
  /** Rebuild every class from its kept images with the current model (one transaction). */
  reembed(): Promise<{ classes: number; vectors: number }>;
  /**
   * Adapt the model to the gallery's classes on the device: its projection head
   * is retrained on the kept images (every class must have kept them) with a
   * metric loss, and kept only if held-out top-1 does not drop; then it is
   * stored with the gallery (IndexedDB, export) and the gallery re-embedded
   * with it, in one transaction. New classes still enroll without training.
   */
  adapt(options?: AdaptOptions): Promise<AdaptResult>;
  /** Go back to the shipped head (re-embedding the kept images); resolves to whether the model was adapted. */
  resetAdaptation(): Promise<boolean>;
  /** Run pending index sealing/merging now; resolves to whether there was any. */
  maintain(): Promise<boolean>;
  /**
   * Store the gallery's graphs as int8 codes from now on: about a quarter of the
   * vectors' memory, at a small cost in recall (README, "int8"). With
   * 'int8-residual', each vector also keeps a residual code a dimension, read only
   * when ranking the final candidates: about half the memory of float32 and its
   * recall, at int8's search speed. One transaction; 'int8-residual' can later
   * become 'int8', but there is no way back to float32 (or from 'int8' to
   * 'int8-residual') short of enrolling again.
   */
  quantize(mode?: 'int8' | 'int8-residual'): Promise<Stats>;
  /**
   * Rebuild the whole index into one graph, in one transaction: after a bulk
   * load, for the fastest search (each segment is searched per query). Slow: a
   * graph build over every vector.
   */
  optimize(): Promise<Stats>;
  close(): Promise<void>;
}

export declare class MetricAnn implements MetricAnnApi {
  private constructor();
  static open(options: OpenOptions): Promise<MetricAnn>;
  /** A gallery from an export() file, into IndexedDB (options.gallery) or memory. */
  static import(data: Blob | Uint8Array | ArrayBuffer, options: ImportOptions): Promise<MetricAnn>;
  /** Delete a gallery's IndexedDB database. */
  static deleteGallery(name: string): Promise<void>;
  static readonly version: string;
  /** The threads graph builds run on (1 before `initialize`, or without a Worker pool). */
  static readonly threads: number;
  embed(image: ImageInput): Promise<Float32Array>;
  enroll(
    label: string,
    images: ImageInput | ImageInput[],
    options?: EnrollOptions,
  ): Promise<{ label: string; examples: number }>;
  enrollVectors(entries: VectorEntry[]): Promise<number>;
  search(image: ImageInput, options?: SearchOptions): Promise<SearchResult>;
  searchVector(vector: Float32Array | number[], options?: SearchOptions): Promise<SearchResult>;
  remove(label: string): Promise<void>;
  rename(oldLabel: string, newLabel: string): Promise<void>;
  setMetadata(label: string, metadata: unknown | null): Promise<void>;
  classes(): Promise<ClassInfo[]>;
  stats(): Promise<Stats>;
  export(options?: { format?: 'blob' | 'bytes' }): Promise<Blob | Uint8Array>;
  reembed(): Promise<{ classes: number; vectors: number }>;
  adapt(options?: AdaptOptions): Promise<AdaptResult>;
  resetAdaptation(): Promise<boolean>;
  maintain(): Promise<boolean>;
  quantize(mode?: 'int8' | 'int8-residual'): Promise<Stats>;
  optimize(): Promise<Stats>;
  close(): Promise<void>;
}

export interface MetricAnnWorker {
  readonly worker: Worker;
  open(options: OpenOptions): Promise<MetricAnnApi>;
  import(data: Blob | Uint8Array | ArrayBuffer, options: ImportOptions): Promise<MetricAnnApi>;
  deleteGallery(name: string): Promise<void>;
  terminate(): void;
}

/** Run MetricAnn in a module Web Worker with the same Promise API. */
export declare function createWorker(options?: { worker?: Worker }): MetricAnnWorker;

export interface InitializeOptions {
  /**
   * The Web Workers graph builds (enrollment in bulk, merges, optimize) run on:
   * 'auto' (the default) is `navigator.hardwareConcurrency` (at most 16) on a
   * cross-origin isolated page and 1 elsewhere; 1 keeps the single-threaded build,
   * the one with WebGPU (the threaded build embeds on the CPU). Searches always run
   * on the caller's thread.
   */
  threads?: 'auto' | number;
}

/**
 * Load the WebAssembly module now (open/import do it on demand). `wasm`, when
 * given, is the single-threaded build (`metricann_bg.wasm`) unless `options.threads`
 * is given too: then it must be the build that selects (`threads/metricann_bg.wasm`
 * when `threadsSupported()` and threads is not 1).
 */
export declare function initialize(
  wasm?: string | URL | Response | BufferSource | WebAssembly.Module,
  options?: InitializeOptions,
): Promise<void>;

/** Whether this context can run the threaded build (cross-origin isolated, with Web Workers). */
export declare function threadsSupported(): boolean;

export default MetricAnn;

/** The names of the models the package ships. */
export type ModelName = 'objects' | 'glyphs';
/** Where each shipped model lies inside the package. */
export const MODELS: Readonly<Record<ModelName, string>>;
