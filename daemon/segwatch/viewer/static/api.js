// The plugin's routes, and PNG blobs decoded to raw pixels. URLs are relative to the plugin's base
// (TensorBoard's plugin_entry.html sets <base href="plugin/segwatch_viewer/">).

import {decodeCodes} from './pixels.js';

async function getJson(path, params) {
  const url = params ? `./${path}?${new URLSearchParams(params)}` : `./${path}`;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${await response.text()}`);
  return response.json();
}

export const listRuns = () => getJson('runs').then((body) => body.runs);
export const readEpoch = (run, prefix, step) => getJson('epoch', {run, prefix, step});
export const readItem = (run, prefix, step, item, known) =>
  getJson('item', known ? {run, prefix, step, item, gt_step: known.gt_step, image_step: known.image_step ?? 'none'} : {run, prefix, step, item});

const decoded = new Map(); // blob key → Promise of {width, height, rgba}
const MAX_DECODED = 400;

/** A PNG blob's pixels exactly as stored: no colour management, no premultiplication. */
export function decodeBlob(key) {
  let found = decoded.get(key);
  if (!found) {
    found = (async () => {
      const response = await fetch(`./blob?${new URLSearchParams({key})}`);
      if (!response.ok) throw new Error(`blob: HTTP ${response.status}`);
      const bitmap = await createImageBitmap(await response.blob(), {
        colorSpaceConversion: 'none',
        premultiplyAlpha: 'none',
      });
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const context = canvas.getContext('2d', {willReadFrequently: true});
      context.drawImage(bitmap, 0, 0);
      const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
      bitmap.close();
      return {width: canvas.width, height: canvas.height, rgba};
    })();
    if (decoded.size >= MAX_DECODED) decoded.delete(decoded.keys().next().value);
    decoded.set(key, found);
    found.catch(() => decoded.delete(key));
  }
  return found;
}

/** An item at a step as layers: {info, width, height, gt, pred (codes), image (RGBA or null)}. `known` is
 *  the item's info from the epoch index, when at hand: the server then need not read it. */
export async function loadLayers(run, prefix, step, item, encoding, known = null) {
  const response = await readItem(run, prefix, step, item, known);
  const info = known || response.info;
  const {blobs} = response;
  const [pred, gt, image] = await Promise.all([
    decodeBlob(blobs.pred),
    decodeBlob(blobs.gt),
    blobs.image ? decodeBlob(blobs.image) : Promise.resolve(null),
  ]);
  return {
    info,
    width: pred.width,
    height: pred.height,
    pred: decodeCodes(pred.rgba, encoding),
    gt: decodeCodes(gt.rgba, encoding),
    image: image ? image.rgba : null,
  };
}
