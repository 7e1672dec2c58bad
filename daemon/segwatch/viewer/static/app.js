// The viewer page: wiring of controls, data and pictures. State lives in `state`; every change goes
// through `update()`, which loads what is missing and repaints.

import {listRuns, loadLayers, readEpoch} from './api.js';
import {element, renderGallery, renderLegend, renderTable} from './panels.js';
import * as pixels from './pixels.js';
import {readState, writeState} from './state.js';
import {ZoomView} from './view.js';

const MODES = [
  ['pred', 'prediction', 'prediction over the image'],
  ['gt', 'ground truth', 'ground truth over the image'],
  ['side', 'GT | pred', 'ground truth and prediction side by side'],
  ['error', 'errors', 'correct, false positive, false negative, ignored'],
  ['boundary', 'boundaries', 'class boundaries of the prediction over the image'],
  ['change', 'change', 'change against the compared epoch or run'],
];
const GAP = 8; // pixels between the two halves of the side-by-side view
const POLL_MS = 4000;
const LABELS = {
  correct: 'correct', fp: 'false positive', fn: 'false negative', ignored: 'ignored', other: 'wrong, classes hidden',
  became_right: 'became right', became_wrong: 'became wrong', stayed_wrong: 'stayed wrong', stayed_right: 'stayed right',
};

export class ViewerApp {
  constructor(root) {
    this.root = root;
    const saved = readState();
    this.state = {
      runs: [], run: saved.run ?? null, step: saved.epoch !== undefined ? Number(saved.epoch) : null,
      item: saved.item !== undefined ? Number(saved.item) : null, mode: saved.mode || 'pred',
      alpha: saved.alpha !== undefined ? Number(saved.alpha) : 0.6, ref: saved.ref || 'prev',
      flip: false, hidden: new Set(), filter: '', sort: {key: 'id', asc: true},
    };
    this.paints = 0; // completed repaints, for tests and tools
    this.busy = false;
    this.token = 0;
    this.build();
  }

  // --- layout ----------------------------------------------------------------------------------------

  build() {
    const s = this.state;
    this.runSelect = element('select', {id: 'run', title: 'run', onchange: () => this.set({run: this.runSelect.value, step: null})});
    this.epochSlider = element('input', {id: 'epoch', type: 'range', min: 0, max: 0, step: 1, title: 'epoch (← →)', oninput: () => this.set({step: this.entry().steps[Number(this.epochSlider.value)]})});
    this.epochLabel = element('span', {id: 'epoch-label', class: 'value'});
    this.modeButtons = MODES.map(([mode, label, title]) =>
      element('button', {class: 'mode', 'data-mode': mode, title, text: label, onclick: () => this.set({mode})}),
    );
    this.alphaSlider = element('input', {id: 'alpha', type: 'range', min: 0, max: 100, step: 1, value: Math.round(s.alpha * 100), title: 'opacity of the labels', oninput: () => this.set({alpha: Number(this.alphaSlider.value) / 100})});
    this.alphaLabel = element('span', {class: 'value', id: 'alpha-label'});
    this.refSelect = element('select', {id: 'ref', title: 'compare with', onchange: () => this.set({ref: this.refSelect.value})});
    this.flipLabel = element('span', {id: 'flip', class: 'hint'});
    this.status = element('span', {id: 'status', class: 'status'});
    this.canvas = element('canvas', {id: 'view', tabindex: 0});
    this.readout = element('div', {id: 'readout', class: 'readout', text: 'hover the picture'});
    this.counts = element('div', {id: 'counts', class: 'counts'});
    this.gallery = element('div', {id: 'gallery', class: 'gallery'});
    this.table = element('div', {id: 'table'});
    this.filterBox = element('input', {id: 'filter', type: 'search', placeholder: 'filter classes', oninput: () => this.set({filter: this.filterBox.value})});
    this.legend = element('div', {id: 'legend'});
    const allNone = [
      element('button', {text: 'all', title: 'show every class', onclick: () => this.set({hidden: new Set()})}),
      element('button', {text: 'none', title: 'hide every class', onclick: () => this.set({hidden: new Set(this.classes().class_names.map((_, c) => c))})}),
    ];
    this.root.replaceChildren(
      element('header', {class: 'bar'}, [
        element('label', {}, ['run ', this.runSelect]),
        element('span', {class: 'group'}, [
          'epoch ',
          element('button', {text: '◀', title: 'previous epoch (←)', onclick: () => this.stepBy(-1)}),
          this.epochSlider,
          element('button', {text: '▶', title: 'next epoch (→)', onclick: () => this.stepBy(1)}),
          this.epochLabel,
        ]),
        element('span', {class: 'group modes'}, this.modeButtons),
        element('label', {}, ['opacity ', this.alphaSlider, this.alphaLabel]),
        element('label', {}, ['compare with ', this.refSelect]),
        this.flipLabel,
        this.status,
      ]),
      element('main', {class: 'body'}, [
        element('aside', {class: 'items-panel'}, [this.gallery, this.table]),
        element('section', {class: 'stage'}, [element('div', {class: 'canvas-box'}, this.canvas), this.readout, this.counts]),
        element('aside', {class: 'legend-panel'}, [element('div', {class: 'legend-tools'}, [this.filterBox, ...allNone]), this.legend]),
      ]),
    );
    this.view = new ZoomView(this.canvas, {onHover: (x, y) => this.hover(x, y), onLeave: () => this.hover(null, null)});
    document.addEventListener('keydown', (event) => this.key(event));
  }

  // --- state ------------------------------------------------------------------------------------------

  entry(run = this.state.run) {
    return this.state.runs.find((r) => r.run === run) || null;
  }

  classes() {
    return this.entry().classes;
  }

  set(changes) {
    Object.assign(this.state, changes);
    return this.update();
  }

  stepBy(delta) {
    const steps = this.entry() ? this.entry().steps : [];
    const at = steps.indexOf(this.state.step);
    const next = Math.min(steps.length - 1, Math.max(0, at + delta));
    if (next !== at) this.set({step: steps[next]});
  }

  itemBy(delta) {
    const ids = (this.epochInfo ? this.epochInfo.items : []).map((row) => row.id);
    const at = ids.indexOf(this.state.item);
    const next = Math.min(ids.length - 1, Math.max(0, at + delta));
    if (ids.length && next !== at) this.set({item: ids[next]});
  }

  key(event) {
    if (event.target.matches && event.target.matches('input[type=search], select')) return;
    const actions = {ArrowLeft: () => this.stepBy(-1), ArrowRight: () => this.stepBy(1), ArrowUp: () => this.itemBy(-1), ArrowDown: () => this.itemBy(1), f: () => this.set({flip: !this.state.flip})};
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault(); // a focused slider would also move by itself
    action();
  }

  /** The compared layers' source: the previous epoch, another epoch, or the same epoch of another run. */
  reference() {
    const {ref, run, step} = this.state;
    const steps = this.entry().steps;
    if (ref === 'prev') {
      const at = steps.indexOf(step);
      return at > 0 ? {run, step: steps[at - 1]} : null;
    }
    if (ref.startsWith('e:')) return {run, step: Number(ref.slice(2))};
    if (ref.startsWith('r:')) {
      const other = this.entry(ref.slice(2));
      return other && other.steps.includes(step) ? {run: other.run, step} : null;
    }
    return null;
  }

  // --- loading and painting ---------------------------------------------------------------------------

  async start() {
    await this.poll();
    this.detectDarkMode();
    setInterval(() => this.poll().catch((error) => this.fail(error)), POLL_MS);
  }

  async poll() {
    const runs = await listRuns();
    const before = this.entry();
    const wasLatest = before && before.steps[before.steps.length - 1] === this.state.step;
    const changed = JSON.stringify(runs.map((r) => [r.run, r.steps])) !== JSON.stringify(this.state.runs.map((r) => [r.run, r.steps]));
    this.state.runs = runs;
    if (!changed) return;
    const current = this.entry();
    // New epochs arrive while the daemon runs: someone watching the newest one keeps watching the newest.
    if (current && wasLatest) this.state.step = current.steps[current.steps.length - 1];
    await this.update();
  }

  async update() {
    const s = this.state;
    if (!s.runs.length) {
      this.status.textContent = 'No segwatch viewer data yet: start segwatch with viewer.enabled (the default).';
      return;
    }
    if (!this.entry()) s.run = s.runs[0].run;
    const entry = this.entry();
    if (!entry.steps.includes(s.step)) s.step = entry.steps[entry.steps.length - 1];
    if (!entry.items.includes(s.item)) s.item = entry.items[0];
    writeState({run: s.run, epoch: s.step, item: s.item, mode: s.mode, ref: s.ref, alpha: s.alpha});
    this.syncControls();
    const token = ++this.token;
    this.busy = true;
    try {
      const reference = this.reference();
      const at = entry.steps.indexOf(s.step);
      const refEntry = reference ? this.entry(reference.run) : null;
      const [epochInfo, previous, refEpoch] = await Promise.all([
        readEpoch(s.run, entry.prefix, s.step),
        at > 0 ? readEpoch(s.run, entry.prefix, entry.steps[at - 1]) : Promise.resolve(null),
        reference ? readEpoch(reference.run, refEntry.prefix, reference.step) : Promise.resolve(null),
      ]);
      const encoding = entry.classes.encoding;
      const [layers, refLayers] = await Promise.all([
        loadLayers(s.run, entry.prefix, s.step, s.item, encoding, known(epochInfo, s.item)),
        reference ? loadLayers(reference.run, refEntry.prefix, reference.step, s.item, encoding, known(refEpoch, s.item)) : Promise.resolve(null),
      ]);
      if (token !== this.token) return; // a newer request took over
      Object.assign(this, {epochInfo, previousInfo: previous, layers, refLayers});
      this.paint();
      this.panels();
      this.status.textContent = '';
      // ms since this frame started loading: the time to the first picture, for the benchmark.
      if (this.paints === 0) this.firstPictureMs = performance.now();
      this.paints++;
    } catch (error) {
      if (token === this.token) this.fail(error);
    } finally {
      if (token === this.token) this.busy = false;
    }
  }

  fail(error) {
    this.status.textContent = String(error.message || error);
  }

  syncControls() {
    const s = this.state;
    const entry = this.entry();
    const names = s.runs.map((r) => r.run);
    if (JSON.stringify([...this.runSelect.options].map((o) => o.value)) !== JSON.stringify(names)) {
      this.runSelect.replaceChildren(...names.map((name) => element('option', {value: name, text: name || '.'})));
    }
    this.runSelect.value = s.run;
    this.epochSlider.max = String(entry.steps.length - 1);
    this.epochSlider.value = String(entry.steps.indexOf(s.step));
    this.epochLabel.textContent = `${s.step} (${entry.steps.indexOf(s.step) + 1} of ${entry.steps.length})`;
    for (const button of this.modeButtons) button.classList.toggle('active', button.dataset.mode === s.mode);
    this.alphaSlider.value = String(Math.round(s.alpha * 100));
    this.alphaLabel.textContent = `${Math.round(s.alpha * 100)}%`;
    const options = [['prev', 'previous epoch'], ...entry.steps.filter((st) => st !== s.step).map((st) => [`e:${st}`, `epoch ${st}`]), ...s.runs.filter((r) => r.run !== s.run).map((r) => [`r:${r.run}`, `run ${r.run || '.'}, same epoch`])];
    this.refSelect.replaceChildren(...options.map(([value, text]) => element('option', {value, text})));
    if (!options.some(([value]) => value === s.ref)) s.ref = 'prev';
    this.refSelect.value = s.ref;
    this.flipLabel.textContent = s.flip ? 'flipped: GT ⇄ prediction (f)' : 'f: flip GT ⇄ prediction';
  }

  paint() {
    const s = this.state;
    const {layers, refLayers} = this;
    const classes = this.classes();
    const options = {alpha: s.alpha, hidden: s.hidden, colourOf: pixels.colourTable(classes), ignoreCode: classes.ignore_code};
    const shown = s.flip ? layers.gt : layers.pred;
    const other = s.flip ? layers.pred : layers.gt;
    let rgba;
    let width = layers.width;
    let counts = null;
    if (s.mode === 'pred') rgba = pixels.paintOverlay(layers, shown, options);
    else if (s.mode === 'gt') rgba = pixels.paintOverlay(layers, other, options);
    else if (s.mode === 'boundary') rgba = pixels.paintBoundaries(layers, shown, options);
    else if (s.mode === 'error') {
      rgba = pixels.paintErrors(layers, options);
      counts = pixels.errorCounts(layers, s.hidden, classes.ignore_code);
    } else if (s.mode === 'change') {
      if (refLayers && refLayers.width === layers.width && refLayers.height === layers.height) {
        rgba = pixels.paintChanges(refLayers, layers, options);
        counts = pixels.changeCounts(refLayers, layers, classes.ignore_code);
      } else {
        rgba = pixels.paintOverlay(layers, shown, options);
        this.status.textContent = refLayers ? 'the compared item has another size' : 'nothing to compare with: choose an epoch or run';
      }
    } else {
      const left = pixels.paintOverlay(layers, other, options);
      const right = pixels.paintOverlay(layers, shown, options);
      width = 2 * layers.width + GAP;
      rgba = new Uint8ClampedArray(width * layers.height * 4);
      for (let y = 0; y < layers.height; y++) {
        const row = y * layers.width * 4;
        rgba.set(left.subarray(row, row + layers.width * 4), y * width * 4);
        rgba.set(right.subarray(row, row + layers.width * 4), (y * width + layers.width + GAP) * 4);
      }
    }
    this.view.show(rgba, width, layers.height);
    this.countsValue = counts;
    this.counts.dataset.counts = counts ? JSON.stringify(counts) : '';
    this.counts.replaceChildren(
      ...(counts ? Object.entries(counts).map(([kind, n]) => element('span', {class: `count ${kind}`, 'data-kind': kind}, [element('i', {style: swatchStyle(kind)}), `${LABELS[kind]} ${n.toLocaleString('en')}`])) : []),
    );
  }

  panels() {
    const s = this.state;
    const classes = this.classes();
    renderLegend(this.legend, {
      classes, info: this.layers.info, epochIou: this.epochInfo.iou, refInfo: this.refLayers ? this.refLayers.info : null,
      hidden: s.hidden, filter: s.filter,
      onToggle: (c) => { const hidden = new Set(s.hidden); hidden.has(c) ? hidden.delete(c) : hidden.add(c); this.set({hidden}); },
      onSolo: (c) => {
        const solo = s.hidden.size === classes.num_classes - 1 && !s.hidden.has(c);
        this.set({hidden: solo ? new Set() : new Set(classes.class_names.map((_, k) => k).filter((k) => k !== c))});
      },
    });
    renderTable(this.table, {
      items: this.epochInfo.items, previous: this.previousInfo, sort: s.sort, current: s.item,
      // A new column sorts ascending: worst mIoU, or the largest drop, first.
      onSort: (key) => this.set({sort: {key, asc: s.sort.key === key ? !s.sort.asc : true}}),
      onOpen: (item) => this.set({item}),
    });
    this.thumbnails();
  }

  /** Thumbnails follow the epoch, a little after the main view so stepping stays quick. */
  thumbnails() {
    const s = this.state;
    const entry = this.entry();
    const key = `${s.run}|${s.step}|${s.alpha}|${[...s.hidden].join(',')}`;
    const slots = renderGallery(this.gallery, {items: this.epochInfo.items, current: s.item, onOpen: (item) => this.set({item})});
    this.thumbKey = key;
    const classes = this.classes();
    const options = {alpha: s.alpha, hidden: s.hidden, colourOf: pixels.colourTable(classes)};
    clearTimeout(this.thumbTimer);
    this.thumbTimer = setTimeout(async () => {
      for (const [id, canvas] of slots) {
        if (this.thumbKey !== key) return;
        try {
          const layers = id === s.item ? this.layers : await loadLayers(s.run, entry.prefix, s.step, id, classes.encoding, known(this.epochInfo, id));
          if (this.thumbKey !== key) return;
          const rgba = pixels.paintThumbnail(layers, canvas.width, canvas.height, options);
          canvas.getContext('2d').putImageData(new ImageData(rgba, canvas.width, canvas.height), 0, 0);
        } catch (error) {
          this.fail(error);
        }
      }
    }, 250);
  }

  hover(x, y) {
    if (x === null || !this.layers) {
      this.readout.textContent = 'hover the picture';
      delete this.readout.dataset.gt;
      return;
    }
    const {layers} = this;
    const classes = this.classes();
    let px = x;
    if (this.state.mode === 'side') {
      if (px >= layers.width && px < layers.width + GAP) return;
      if (px >= layers.width + GAP) px -= layers.width + GAP;
    }
    const i = y * layers.width + px;
    const name = (code) => (code === classes.ignore_code ? 'ignore' : classes.class_names[code] ?? `id ${code}`);
    const [height, width] = layers.info.size;
    // The stored map was sampled nearest at pixel centres: this is the original pixel each one came from.
    const ox = Math.floor(((2 * px + 1) * width) / (2 * layers.width));
    const oy = Math.floor(((2 * y + 1) * height) / (2 * layers.height));
    const parts = [`x ${ox}, y ${oy}`, `GT ${name(layers.gt[i])}`, `pred ${name(layers.pred[i])}`];
    if (this.refLayers && this.refLayers.width === layers.width && this.refLayers.height === layers.height) {
      parts.push(`compared pred ${name(this.refLayers.pred[i])}`);
    }
    this.readout.textContent = parts.join(' · ');
    Object.assign(this.readout.dataset, {x: ox, y: oy, gt: layers.gt[i], pred: layers.pred[i]});
  }

  detectDarkMode() {
    const apply = (dark) => document.documentElement.classList.toggle('dark', dark);
    try {
      const body = window.parent.document.body;
      const follow = () => apply(body.classList.contains('dark-mode'));
      new MutationObserver(follow).observe(body, {attributes: true, attributeFilter: ['class']});
      follow();
    } catch (error) {
      const query = window.matchMedia('(prefers-color-scheme: dark)');
      apply(query.matches);
      query.addEventListener('change', (event) => apply(event.matches));
    }
  }
}

/** An item's info from an epoch index, or null when the index lacks it. */
function known(epochInfo, id) {
  return (epochInfo && epochInfo.items.find((row) => row.id === id)) || null;
}

function swatchStyle(kind) {
  const colour = pixels.ERROR_COLOURS[kind] || pixels.CHANGE_COLOURS[kind];
  return colour ? `background: rgb(${colour.join(',')})` : 'background: transparent';
}

