// The service's HTTP API as the page uses it. Paths are resolved against the directory above the
// page (/explorer/ -> /), so the explorer also works when the service sits behind a path prefix.

const ROOT = new URL('../', document.baseURI);

export class ApiError extends Error {
  /** status 0 means the request never got an answer. body follows the API's error shape. */
  constructor(status, body) {
    super(body?.problem || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.body = body || {};
  }

  get parameter() { return this.body.parameter ?? null; }
  get value() { return this.body.value ?? null; }
}

export function apiUrl(path, params = {}) {
  const url = new URL(path.replace(/^\//, ''), ROOT);
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === '') continue;
    for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(v));
  }
  return url;
}

export async function getJSON(path, params = {}, { signal } = {}) {
  let response;
  try {
    response = await fetch(apiUrl(path, params), { signal, headers: { accept: 'application/json' } });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, { error: 'network_error', problem: `cannot reach the service (${err.message})` });
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, body && typeof body === 'object' ? body
      : { error: 'http_error', problem: `${response.status} ${response.statusText}` });
  }
  return body;
}

export function isAbort(err) {
  return err?.name === 'AbortError';
}

/** The parts of an error worth showing: [heading, detail lines]. */
export function explainError(err) {
  if (!(err instanceof ApiError)) return [`Unexpected error: ${err?.message || err}`, []];
  const b = err.body;
  const head = err.status ? `HTTP ${err.status} · ${b.error || 'error'}` : (b.error || 'error');
  const lines = [];
  let what = b.problem || '';
  if (b.parameter) {
    const value = b.value === null || b.value === undefined ? '' : ` = ${JSON.stringify(b.value)}`;
    what = `${b.parameter}${value}: ${what}`;
  }
  if (what) lines.push(what);
  if (b.allowed) lines.push(`allowed: ${b.allowed}`);
  return [head, lines];
}

const neuronCache = new Map();

/** GET /neurons/{id or slug}, cached for the page's lifetime (a bundle's neurons do not change
 *  while it is served; an admin reload means a page reload). */
export function neuronDetail(target) {
  const key = String(target).toLowerCase();
  if (!neuronCache.has(key)) {
    const pending = getJSON(`neurons/${encodeURIComponent(target)}`);
    neuronCache.set(key, pending);
    pending.then((detail) => {
      neuronCache.set(String(detail.id), pending);
      if (detail.slug) neuronCache.set(detail.slug, pending);
    }, () => neuronCache.delete(key));
  }
  return neuronCache.get(key);
}
