// The view's state in the URL hash, so a view can be shared. TensorBoard keeps its own state in the top
// page's hash as `#tab&key=value&...` (tf_storage); our keys ride along there as `sw.run=...`, leaving its
// keys alone. Without access to the top page (a frame of another origin) the frame's own hash is used.

const KEYS = ['run', 'epoch', 'item', 'mode', 'ref', 'alpha'];

function hostWindow() {
  try {
    if (window.parent !== window && window.parent.location.href) return window.parent;
  } catch (error) {
    // another origin: fall through to our own frame
  }
  return window;
}

function components(hash) {
  return hash.replace(/^#/, '').split('&').filter(Boolean);
}

export function readState() {
  const state = {};
  for (const part of components(hostWindow().location.hash)) {
    const at = part.indexOf('=');
    if (at < 0) continue;
    const key = decodeURIComponent(part.slice(0, at));
    if (key.startsWith('sw.') && KEYS.includes(key.slice(3))) {
      state[key.slice(3)] = decodeURIComponent(part.slice(at + 1));
    }
  }
  return state;
}

export function writeState(state) {
  const host = hostWindow();
  const kept = components(host.location.hash).filter((part) => !part.startsWith('sw.'));
  if (host !== window && kept.length === 0) kept.push('segwatch_viewer');
  for (const key of KEYS) {
    if (state[key] !== undefined && state[key] !== null && state[key] !== '') {
      kept.push(`sw.${key}=${encodeURIComponent(String(state[key]))}`);
    }
  }
  const url = new URL(host.location.href);
  url.hash = kept.join('&');
  // replaceState fires no hashchange, so TensorBoard does not re-route for every slider step.
  host.history.replaceState(host.history.state, '', url.toString());
}
