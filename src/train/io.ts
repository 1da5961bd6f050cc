/**
 * Saving and loading tfjs LayersModels to a folder in Node without tfjs-node: `model.json` (the
 * standard tfjs format) and `weights.bin`, readable by tf.loadLayersModel through the same handler.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';

function joinWeights(data: tf.io.WeightData | undefined): ArrayBuffer {
  if (data === undefined) return new ArrayBuffer(0);
  if (Array.isArray(data)) return tf.io.CompositeArrayBuffer.join(data);
  return data as ArrayBuffer;
}

export function fileSystemHandler(dir: string): tf.io.IOHandler {
  const modelPath = join(dir, 'model.json'), weightsPath = join(dir, 'weights.bin');
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
      await writeFile(weightsPath, Buffer.from(weights));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
    async load(): Promise<tf.io.ModelArtifacts> {
      let text: string, bin: Buffer;
      try {
        text = await readFile(modelPath, 'utf8');
        bin = await readFile(weightsPath);
      } catch (e) {
        throw new Error(`cannot load a model from ${dir}: ${(e as Error).message}`);
      }
      const json = JSON.parse(text) as tf.io.ModelJSON;
      const weightSpecs = json.weightsManifest.flatMap((g) => g.weights);
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
