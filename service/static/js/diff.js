// How a steered ranking differs from the unsteered one. Pure: lists of {id, ...} in rank order in,
// annotated copies out. Ranks are positions (1-based), as the API numbers them.
//
// steered items:   change 'up' | 'down' (delta = old rank - new rank, positive when moved up),
//                  'same' (delta 0), or 'new' (not in the unsteered list; delta null)
// unsteered items: change 'kept' or 'removed' (absent from the steered list)

export function diffRankings(before, after) {
  const previous = new Map(before.map((item, i) => [item.id, i + 1]));
  const present = new Set(after.map((item) => item.id));
  const counts = { up: 0, down: 0, same: 0, new: 0, removed: 0 };
  const steered = after.map((item, i) => {
    const rank = i + 1;
    const previousRank = previous.has(item.id) ? previous.get(item.id) : null;
    let change = 'new';
    let delta = null;
    if (previousRank !== null) {
      delta = previousRank - rank;
      change = delta > 0 ? 'up' : delta < 0 ? 'down' : 'same';
    }
    counts[change] += 1;
    return { ...item, rank, previousRank, change, delta };
  });
  const unsteered = before.map((item, i) => {
    const change = present.has(item.id) ? 'kept' : 'removed';
    if (change === 'removed') counts.removed += 1;
    return { ...item, rank: i + 1, change };
  });
  return { unsteered, steered, counts };
}

/** A short human summary of the counts, e.g. "2 up, 1 down, 3 new, 3 removed" or "no change". */
export function summarize(counts) {
  const parts = [];
  if (counts.up) parts.push(`${counts.up} up`);
  if (counts.down) parts.push(`${counts.down} down`);
  if (counts.new) parts.push(`${counts.new} new`);
  if (counts.removed) parts.push(`${counts.removed} removed`);
  return parts.length ? parts.join(', ') : 'no change';
}

/** Badge text and accessible description of one steered item's change. */
export function describeChange(item) {
  switch (item.change) {
    case 'up': return { badge: `▲${item.delta}`, text: `moved up ${item.delta} from rank ${item.previousRank}` };
    case 'down': return { badge: `▼${-item.delta}`, text: `moved down ${-item.delta} from rank ${item.previousRank}` };
    case 'new': return { badge: 'new', text: 'new in the steered list' };
    case 'removed': return { badge: 'removed', text: 'not in the steered list' };
    default: return { badge: '=', text: 'same rank' };
  }
}
