// Entry point: TensorBoard's plugin frame imports this module and calls render().

import {ViewerApp} from './app.js';

export async function render() {
  const style = document.createElement('link');
  style.rel = 'stylesheet';
  style.href = './static/viewer.css';
  document.head.append(style);
  const root = document.createElement('div');
  root.id = 'segwatch-viewer';
  document.body.append(root);
  const app = new ViewerApp(root);
  // Tools and tests read the view's state here (paint count, pixel mapping, counts).
  window.segwatchViewer = app;
  await app.start();
}
