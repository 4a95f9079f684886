// Pieces shared by the panels: error regions and ranked item lists.

import { explainError } from './api.js';
import { describeChange } from './diff.js';
import { clear, h } from './dom.js';

/** Shows an error in a role="alert" region; showError(region, null) hides it. */
export function showError(region, err, context = '') {
  if (!err) {
    region.hidden = true;
    clear(region);
    return;
  }
  const [head, lines] = explainError(err);
  clear(region,
    h('p', { class: 'error-head' }, context ? `${context}: ${head}` : head),
    lines.map((line) => h('p', { class: 'error-line' }, line)));
  region.hidden = false;
}

/** Fills an <ol> with ranked items. With diff annotations (diff.js) each item carries its change
 *  as a class (change-up, change-down, change-same, change-new, change-removed, change-kept) and as
 *  data-change / data-delta attributes, plus a visible badge and a screen-reader description. */
export function renderRanking(list, items, { annotate = true } = {}) {
  clear(list, items.map((item) => {
    const change = annotate ? item.change : null;
    const described = change && change !== 'kept' ? describeChange(item) : null;
    return h('li', {
      class: `item${change ? ` change-${change}` : ''}`,
      dataset: { id: item.id, ...(change ? { change } : {}), ...(item.delta !== undefined && item.delta !== null ? { delta: String(item.delta) } : {}) },
    },
    h('span', { class: 'rank', 'aria-hidden': 'true' }, String(item.rank)),
    h('span', { class: 'item-main' },
      h('span', { class: 'item-title' }, item.title),
      h('span', { class: 'item-meta' }, h('code', null, item.id), ` · score ${Number(item.score).toFixed(3)}`)),
    described ? h('span', { class: 'badge', 'aria-hidden': 'true' }, described.badge) : null,
    described ? h('span', { class: 'visually-hidden' }, `, ${described.text}`) : null);
  }));
}
