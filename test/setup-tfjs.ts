/**
 * Keeps tfjs's "Hi, looks like you are running TensorFlow.js in Node.js" banner (and its other
 * console notes) out of the test output with its public switch, tf.enableProdMode(): in tfjs 4 the
 * PROD flag only silences tfjs's own warn/log messages. The README explains the banner.
 */
import { enableProdMode } from '@tensorflow/tfjs-core';

enableProdMode();
