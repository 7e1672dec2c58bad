// The large view: a picture drawn at whole or fractional zoom with nearest-neighbour scaling, panned by
// dragging and zoomed by the wheel around the cursor. Picture pixels map to canvas pixels by
// canvas = offset + picture * scale.

const MIN_SCALE = 0.05;
const MAX_SCALE = 64;

export class ZoomView {
  constructor(canvas, {onHover, onLeave}) {
    this.canvas = canvas;
    this.context = canvas.getContext('2d', {willReadFrequently: true});
    this.picture = null; // an OffscreenCanvas at the stored resolution
    this.scale = 1;
    this.offset = [0, 0];
    this.fitted = false;
    this.onHover = onHover;
    this.onLeave = onLeave;
    this._drag = null;
    canvas.addEventListener('wheel', (event) => this._wheel(event), {passive: false});
    canvas.addEventListener('pointerdown', (event) => this._down(event));
    canvas.addEventListener('pointermove', (event) => this._move(event));
    canvas.addEventListener('pointerup', (event) => this._up(event));
    canvas.addEventListener('pointerleave', () => this.onLeave());
    canvas.addEventListener('dblclick', () => this.reset());
    new ResizeObserver(() => this._resize()).observe(canvas.parentElement);
  }

  /** Show new pixels; the zoom and pan stay while the picture keeps its size (stepping epochs). */
  show(rgba, width, height) {
    const same = this.picture && this.picture.width === width && this.picture.height === height;
    if (!same) this.picture = new OffscreenCanvas(width, height);
    this.picture.getContext('2d').putImageData(new ImageData(rgba, width, height), 0, 0);
    if (!same) this.reset();
    else this.draw();
  }

  /** True pixels when the picture fits, else the largest scale that shows all of it. */
  reset() {
    if (!this.picture) return;
    const {width, height} = this.canvas;
    const fit = Math.min(width / this.picture.width, height / this.picture.height);
    this.scale = fit >= 1 ? Math.max(1, Math.floor(fit)) : fit;
    this.offset = [
      Math.round((width - this.picture.width * this.scale) / 2),
      Math.round((height - this.picture.height * this.scale) / 2),
    ];
    this.draw();
  }

  draw() {
    const {context, canvas} = this;
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.clearRect(0, 0, canvas.width, canvas.height);
    if (!this.picture) return;
    context.imageSmoothingEnabled = false;
    context.setTransform(this.scale, 0, 0, this.scale, this.offset[0], this.offset[1]);
    context.drawImage(this.picture, 0, 0);
    context.setTransform(1, 0, 0, 1, 0, 0);
  }

  /** Picture pixel under a canvas point, or null outside the picture. */
  pictureAt(cx, cy) {
    if (!this.picture) return null;
    const x = Math.floor((cx - this.offset[0]) / this.scale);
    const y = Math.floor((cy - this.offset[1]) / this.scale);
    if (x < 0 || y < 0 || x >= this.picture.width || y >= this.picture.height) return null;
    return [x, y];
  }

  /** Canvas point at the centre of a picture pixel (for tests and tools). */
  canvasAt(x, y) {
    return [this.offset[0] + (x + 0.5) * this.scale, this.offset[1] + (y + 0.5) * this.scale];
  }

  _point(event) {
    const box = this.canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * this.canvas.width) / box.width,
      ((event.clientY - box.top) * this.canvas.height) / box.height,
    ];
  }

  _resize() {
    const box = this.canvas.parentElement.getBoundingClientRect();
    const width = Math.max(1, Math.floor(box.width));
    const height = Math.max(1, Math.floor(box.height));
    if (width === this.canvas.width && height === this.canvas.height) return;
    this.canvas.width = width;
    this.canvas.height = height;
    this.reset();
  }

  _wheel(event) {
    event.preventDefault();
    const [cx, cy] = this._point(event);
    const factor = Math.exp(-event.deltaY * 0.0015);
    const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    // Keep the picture point under the cursor where it is.
    this.offset = [cx - ((cx - this.offset[0]) * scale) / this.scale, cy - ((cy - this.offset[1]) * scale) / this.scale];
    this.scale = scale;
    this.draw();
  }

  _down(event) {
    this._drag = {start: this._point(event), offset: [...this.offset]};
    this.canvas.setPointerCapture(event.pointerId);
  }

  _move(event) {
    const [cx, cy] = this._point(event);
    if (this._drag) {
      this.offset = [this._drag.offset[0] + cx - this._drag.start[0], this._drag.offset[1] + cy - this._drag.start[1]];
      this.draw();
    }
    const at = this.pictureAt(cx, cy);
    if (at) this.onHover(at[0], at[1]);
    else this.onLeave();
  }

  _up(event) {
    this._drag = null;
    if (this.canvas.hasPointerCapture(event.pointerId)) this.canvas.releasePointerCapture(event.pointerId);
  }
}
