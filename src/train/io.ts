/**
 * Saving and loading tfjs LayersModels to a folder in Node without tfjs-node: `model.json` (the
 * standard tfjs format) and `weights.bin`, readable by tf.loadLayersModel through the same handler.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe } from '../kernels/validate.js';

/** tfjs 4.22 hands weights over as one ArrayBuffer or as several (one per large tensor). */
function joinWeights(data: tf.io.WeightData | undefined): ArrayBuffer {
  if (data === undefined) return new ArrayBuffer(0);
  if (Array.isArray(data)) return tf.io.CompositeArrayBuffer.join(data);
  return data as ArrayBuffer;
}

async function read(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    // keeps Node's code (ENOENT, EACCES, ...) so callers can branch on it as on any fs error
    const code = (e as NodeJS.ErrnoException)?.code;
    throw Object.assign(new Error(`cannot load a model: ${what} ${path} could not be read (${(e as Error).message})`, { cause: e }), code ? { code } : {});
  }
}

/**
 * An IOHandler for `model.save(handler)` and `tf.loadLayersModel(handler)` that keeps the model
 * in the folder `dir` (created on save). Loading follows the manifest's paths, so model.json files
 * written by other tools with several weight shards load too.
 */
export function fileSystemHandler(dir: string): tf.io.IOHandler {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError(`dir must be a non-empty string, got ${describe(dir)}`);
  const modelPath = join(dir, 'model.json');
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) throw new TypeError('fileSystemHandler saves JSON model topologies only');
      const weights = joinWeights(artifacts.weightData);
      const json: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.trainingConfig) json.trainingConfig = artifacts.trainingConfig;
      if (artifacts.userDefinedMetadata) json.userDefinedMetadata = artifacts.userDefinedMetadata;
      await mkdir(dir, { recursive: true });
      await writeFile(modelPath, JSON.stringify(json));
      await writeFile(join(dir, 'weights.bin'), Buffer.from(weights));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },

    async load(): Promise<tf.io.ModelArtifacts> {
      const text = (await read(modelPath, 'its topology')).toString('utf8');
      let json: tf.io.ModelJSON;
      try {
        json = JSON.parse(text) as tf.io.ModelJSON;
      } catch (e) {
        throw new Error(`cannot load a model: ${modelPath} is not valid JSON (${(e as Error).message})`);
      }
      if (json === null || typeof json !== 'object' || json.modelTopology == null || !Array.isArray(json.weightsManifest)) {
        throw new Error(`cannot load a model: ${modelPath} lacks modelTopology or weightsManifest`);
      }
      // The manifest's groups and their shards, in order, are the bytes of its weight specs, in order.
      const weightSpecs = json.weightsManifest.flatMap((g) => g.weights);
      const shards: Buffer[] = [];
      for (const g of json.weightsManifest) for (const p of g.paths) shards.push(await read(join(dir, p), 'its weights'));
      const bin = shards.length === 1 ? shards[0]! : Buffer.concat(shards);
      const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) as ArrayBuffer;
      const out: tf.io.ModelArtifacts = { modelTopology: json.modelTopology, weightSpecs, weightData };
      if (json.format) out.format = json.format;
      if (json.generatedBy) out.generatedBy = json.generatedBy;
      if (json.convertedBy) out.convertedBy = json.convertedBy;
      if (json.trainingConfig) out.trainingConfig = json.trainingConfig;
      if (json.userDefinedMetadata) out.userDefinedMetadata = json.userDefinedMetadata;
      return out;
    },
  };
}
