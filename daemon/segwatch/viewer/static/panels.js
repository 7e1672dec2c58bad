// The side panels: the class legend, the per-item table and the thumbnail gallery. Each renders from
// plain values and reports clicks through callbacks; none fetches anything.

export function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of [].concat(children)) if (child) node.append(child);
  return node;
}

export const percent = (value) => (value === null || value === undefined ? '—' : `${(100 * value).toFixed(1)}`);
const signed = (value) =>
  value === null || value === undefined ? '' : `${value >= 0 ? '+' : '−'}${(100 * Math.abs(value)).toFixed(1)}`;

/** Per class of an item's info: {iou, share}. Classes absent from the item have neither. */
export function itemClassStats(info) {
  const stats = new Map();
  if (!info || !info.classes) return stats;
  const labelled = info.labelled || 0;
  info.classes.forEach((c, k) => {
    stats.set(c, {iou: info.iou[k], share: labelled ? info.gt_pixels[k] / labelled : 0});
  });
  return stats;
}

/** The legend: colour, name, IoU in the item at this epoch, the epoch's IoU, pixel share, and the change
 *  of the item's IoU against the reference when comparing. */
export function renderLegend(box, {classes, info, epochIou, refInfo, hidden, filter, onToggle, onSolo}) {
  const stats = itemClassStats(info);
  const refStats = refInfo ? itemClassStats(refInfo) : null;
  const needle = filter.trim().toLowerCase();
  const rows = [];
  classes.class_names.forEach((name, c) => {
    if (needle && !name.toLowerCase().includes(needle) && String(c) !== needle) return;
    const stat = stats.get(c);
    const before = refStats ? refStats.get(c) : null;
    const delta = stat && before && stat.iou !== null && before.iou !== null ? stat.iou - before.iou : null;
    const row = element(
      'tr',
      {
        class: `class-row${hidden.has(c) ? ' hidden' : ''}${stat ? '' : ' absent'}`,
        'data-class': c,
        title: 'click: show/hide · alt-click: show only this class',
        onclick: (event) => (event.altKey ? onSolo(c) : onToggle(c)),
      },
      [
        element('td', {}, element('span', {class: 'swatch', style: `background:${classes.palette[c]}`})),
        element('td', {class: 'name', text: name}),
        element('td', {class: 'num', text: stat ? percent(stat.iou) : ''}),
        element('td', {class: 'num epoch', text: epochIou && epochIou[c] !== undefined ? percent(epochIou[c]) : ''}),
        element('td', {class: 'num', text: stat ? percent(stat.share) : ''}),
        element('td', {class: `num delta ${delta > 0 ? 'up' : delta < 0 ? 'down' : ''}`, text: signed(delta)}),
      ],
    );
    rows.push(row);
  });
  const head = element('tr', {}, [
    element('th', {}),
    element('th', {text: 'class'}),
    element('th', {class: 'num', text: 'IoU', title: "IoU in this item at this epoch (%)"}),
    element('th', {class: 'num', text: 'epoch', title: 'IoU over the whole epoch (%)'}),
    element('th', {class: 'num', text: 'share', title: 'share of the labelled pixels of this item (%)'}),
    element('th', {class: 'num', text: refInfo ? 'Δ' : '', title: 'IoU change against the compared view'}),
  ]);
  box.replaceChildren(element('table', {class: 'legend'}, [element('thead', {}, head), element('tbody', {}, rows)]));
}

/** The item table: id, mIoU at this epoch and its change since the previous epoch; sortable. */
export function renderTable(box, {items, previous, sort, current, onSort, onOpen}) {
  const before = new Map((previous ? previous.items : []).map((row) => [row.id, row.miou]));
  const rows = items.map((row) => {
    const was = before.get(row.id);
    const delta = row.miou !== null && row.miou !== undefined && was !== null && was !== undefined ? row.miou - was : null;
    return {...row, delta};
  });
  const key = sort.key;
  const missing = sort.asc ? Infinity : -Infinity;
  const value = (row) => (row[key] === null || row[key] === undefined ? missing : row[key]);
  rows.sort((a, b) => (sort.asc ? value(a) - value(b) : value(b) - value(a)) || a.id - b.id);
  const arrow = (name) => (sort.key === name ? (sort.asc ? ' ▲' : ' ▼') : '');
  const header = (name, label, title) =>
    element('th', {class: 'num sortable', 'data-sort': name, title, text: label + arrow(name), onclick: () => onSort(name)});
  const body = rows.map((row) =>
    element(
      'tr',
      {class: row.id === current ? 'current' : '', 'data-item': row.id, onclick: () => onOpen(row.id)},
      [
        element('td', {class: 'num', text: String(row.id)}),
        element('td', {class: 'num', text: percent(row.miou)}),
        element('td', {class: `num delta ${row.delta > 0 ? 'up' : row.delta < 0 ? 'down' : ''}`, text: signed(row.delta)}),
        element('td', {class: 'num size', text: `${row.size[1]}×${row.size[0]}`}),
      ],
    ),
  );
  box.replaceChildren(
    element('table', {class: 'items'}, [
      element('thead', {}, element('tr', {}, [
        header('id', 'item', 'item index in the epoch'),
        header('miou', 'mIoU', 'mean IoU of the item at this epoch (%)'),
        header('delta', 'Δ', 'mIoU change since the previous epoch'),
        element('th', {class: 'num', text: 'size'}),
      ])),
      element('tbody', {}, body),
    ]),
  );
}

/** Thumbnail slots, one per item; `fill(id, canvas)` paints a slot when its pixels arrive. */
export function renderGallery(box, {items, current, onOpen}) {
  const slots = new Map();
  box.replaceChildren(
    ...items.map((row) => {
      const canvas = element('canvas', {width: 72, height: Math.max(1, Math.round((72 * row.stored[0]) / row.stored[1]))});
      slots.set(row.id, canvas);
      return element('button', {class: `thumb${row.id === current ? ' current' : ''}`, 'data-item': row.id, title: `item ${row.id}`, onclick: () => onOpen(row.id)}, [
        canvas,
        element('span', {text: String(row.id)}),
      ]);
    }),
  );
  return slots;
}
