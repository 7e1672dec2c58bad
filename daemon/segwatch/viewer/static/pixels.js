// Pure pixel work on decoded layers: class codes in, RGBA pictures and counts out. No DOM here.
//
// A layer set is {width, height, gt, pred: Uint32Array of class codes, image: Uint8ClampedArray RGBA or null}.
// Codes are class ids, except `ignoreCode`, which marks pixels whose ground truth is ignored.

export const ERROR_COLOURS = {
  correct: null, // the image, dimmed
  fp: [255, 170, 0],
  fn: [230, 30, 60],
  other: null, // wrong, but neither class is shown: the image, dimmed further
};
export const CHANGE_COLOURS = {
  became_right: [40, 200, 90],
  became_wrong: [230, 30, 60],
  stayed_wrong: [250, 200, 40],
};
const NO_IMAGE_GREY = 128;

export function hexToRgb(hex) {
  const value = parseInt(hex.slice(1), 16);
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

/** Class codes from decoded PNG pixels: the grey value, or r << 16 | g << 8 | b. */
export function decodeCodes(rgba, encoding) {
  const count = rgba.length / 4;
  const codes = new Uint32Array(count);
  if (encoding === 'rgb24') {
    for (let i = 0, j = 0; i < count; i++, j += 4) {
      codes[i] = (rgba[j] << 16) | (rgba[j + 1] << 8) | rgba[j + 2];
    }
  } else {
    for (let i = 0, j = 0; i < count; i++, j += 4) codes[i] = rgba[j];
  }
  return codes;
}

/** A lookup from code to colour: classes from the palette, the ignore code its own colour. */
export function colourTable(classes) {
  const palette = classes.palette.map(hexToRgb);
  const ignore = hexToRgb(classes.ignore_colour);
  return (code) => (code === classes.ignore_code ? ignore : palette[code] || ignore);
}

function baseAt(image, j) {
  return image ? [image[j], image[j + 1], image[j + 2]] : [NO_IMAGE_GREY, NO_IMAGE_GREY, NO_IMAGE_GREY];
}

function blend(out, j, colour, base, alpha) {
  out[j] = Math.round(alpha * colour[0] + (1 - alpha) * base[0]);
  out[j + 1] = Math.round(alpha * colour[1] + (1 - alpha) * base[1]);
  out[j + 2] = Math.round(alpha * colour[2] + (1 - alpha) * base[2]);
  out[j + 3] = 255;
}

/** Labels over the image at `alpha`; hidden classes show the image (grey without one). */
export function paintOverlay(layers, labels, {alpha, hidden, colourOf}) {
  const out = new Uint8ClampedArray(layers.width * layers.height * 4);
  for (let i = 0, j = 0; i < labels.length; i++, j += 4) {
    const code = labels[i];
    const base = baseAt(layers.image, j);
    blend(out, j, colourOf(code), base, hidden.has(code) ? 0 : alpha);
  }
  return out;
}

/** Class boundaries (a pixel whose right or lower neighbour differs) in the class colour, over the image. */
export function paintBoundaries(layers, labels, {hidden, colourOf}) {
  const {width, height} = layers;
  const out = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const j = i * 4;
      const code = labels[i];
      const edge =
        (x + 1 < width && labels[i + 1] !== code) ||
        (y + 1 < height && labels[i + width] !== code) ||
        (x > 0 && labels[i - 1] !== code) ||
        (y > 0 && labels[i - width] !== code);
      const base = baseAt(layers.image, j);
      if (edge && !hidden.has(code)) blend(out, j, colourOf(code), base, 1);
      else blend(out, j, [0, 0, 0], base, 0.35);
    }
  }
  return out;
}

/** One pixel's error class. Wrong pixels are false negatives of a shown ground-truth class, or false
 *  positives of a shown predicted class whose ground truth is hidden; solo one class for its binary view. */
export function errorKind(gt, pred, hidden, ignoreCode) {
  if (gt === ignoreCode) return 'ignored';
  if (gt === pred) return 'correct';
  if (!hidden.has(gt)) return 'fn';
  if (!hidden.has(pred)) return 'fp';
  return 'other';
}

export function errorCounts(layers, hidden, ignoreCode) {
  const counts = {correct: 0, fp: 0, fn: 0, ignored: 0, other: 0};
  for (let i = 0; i < layers.gt.length; i++) {
    counts[errorKind(layers.gt[i], layers.pred[i], hidden, ignoreCode)]++;
  }
  return counts;
}

export function paintErrors(layers, {hidden, ignoreCode, colourOf}) {
  const out = new Uint8ClampedArray(layers.width * layers.height * 4);
  const ignore = colourOf(ignoreCode);
  for (let i = 0, j = 0; i < layers.gt.length; i++, j += 4) {
    const kind = errorKind(layers.gt[i], layers.pred[i], hidden, ignoreCode);
    const base = baseAt(layers.image, j);
    if (kind === 'fp' || kind === 'fn') blend(out, j, ERROR_COLOURS[kind], base, 1);
    else if (kind === 'ignored') blend(out, j, ignore, base, 1);
    else blend(out, j, [0, 0, 0], base, kind === 'correct' ? 0.45 : 0.7);
  }
  return out;
}

/** How each pixel changed from a reference (epoch or run) to the current one. */
export function changeKind(refGt, refPred, gt, pred, ignoreCode) {
  if (gt === ignoreCode || refGt === ignoreCode) return 'ignored';
  const wasRight = refGt === refPred;
  const isRight = gt === pred;
  if (isRight) return wasRight ? 'stayed_right' : 'became_right';
  return wasRight ? 'became_wrong' : 'stayed_wrong';
}

export function changeCounts(reference, layers, ignoreCode) {
  const counts = {became_right: 0, became_wrong: 0, stayed_wrong: 0, stayed_right: 0, ignored: 0};
  for (let i = 0; i < layers.gt.length; i++) {
    counts[changeKind(reference.gt[i], reference.pred[i], layers.gt[i], layers.pred[i], ignoreCode)]++;
  }
  return counts;
}

export function paintChanges(reference, layers, {ignoreCode, colourOf}) {
  const out = new Uint8ClampedArray(layers.width * layers.height * 4);
  const ignore = colourOf(ignoreCode);
  for (let i = 0, j = 0; i < layers.gt.length; i++, j += 4) {
    const kind = changeKind(reference.gt[i], reference.pred[i], layers.gt[i], layers.pred[i], ignoreCode);
    const base = baseAt(layers.image, j);
    if (kind === 'ignored') blend(out, j, ignore, base, 1);
    else if (kind === 'stayed_right') blend(out, j, [0, 0, 0], base, 0.55);
    else blend(out, j, CHANGE_COLOURS[kind], base, 1);
  }
  return out;
}

/** A small preview: labels over the image, sampled nearest to `width` x `height`. */
export function paintThumbnail(layers, width, height, {alpha, hidden, colourOf}) {
  const out = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    const sy = Math.floor(((2 * y + 1) * layers.height) / (2 * height));
    for (let x = 0; x < width; x++) {
      const sx = Math.floor(((2 * x + 1) * layers.width) / (2 * width));
      const i = sy * layers.width + sx;
      const code = layers.pred[i];
      blend(out, (y * width + x) * 4, colourOf(code), baseAt(layers.image, i * 4), hidden.has(code) ? 0 : alpha);
    }
  }
  return out;
}
