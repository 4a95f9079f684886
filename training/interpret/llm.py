"""Optional neuron labeller that asks an OpenAI-compatible chat-completions endpoint.

Off by default: it runs only when a URL is configured (``--llm-url`` or ``STEERREC_LLM_URL``).
The model sees a neuron's top items with their metadata and the metadata-based label, and answers
with a short name. Its answer is a suggestion: it is stored as ``llm_label``, and it becomes the
display label only of neurons that metadata could not name (low confidence); slugs never come from
it, so an unverified name cannot become a steer target.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

ENV_URL, ENV_MODEL, ENV_KEY = "STEERREC_LLM_URL", "STEERREC_LLM_MODEL", "STEERREC_LLM_API_KEY"

SYSTEM_PROMPT = (
    "You name the features of a recommender system. A feature is described by the items that "
    "activate it most, with their metadata. Answer with a JSON object {\"label\": \"...\"} whose label "
    "is at most five words naming what the items have in common (a genre, an era, a style, an audience). "
    "If they share nothing clear, answer {\"label\": \"mixed\"}."
)


class LLMError(RuntimeError):
    """The endpoint failed or answered in an unusable form; the message names the URL."""


@dataclass
class LLMConfig:
    url: str
    """Base URL (``http://host:port/v1``) or the full ``.../chat/completions`` address."""
    model: str
    api_key: str | None = None
    """Sent as ``Authorization: Bearer``; omitted when None (local servers)."""
    timeout: float = 30.0
    max_neurons: int = 64
    """Neurons asked about, earliest prefix and highest activation rate first."""
    top_items: int = 10

    def __post_init__(self) -> None:
        if not re.match(r"^https?://", self.url or ""):
            raise ValueError(f"LLM url must start with http:// or https://, got {self.url!r}")
        if not self.model:
            raise ValueError(f"an LLM model name is required (--llm-model or {ENV_MODEL})")

    @property
    def endpoint(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/chat/completions") else f"{url}/chat/completions"

    @classmethod
    def resolve(cls, url: str | None = None, model: str | None = None, api_key: str | None = None,
                **options: Any) -> LLMConfig | None:
        """Arguments first, then the environment; None (labeller off) when no URL is configured."""
        url = url or os.environ.get(ENV_URL)
        if not url:
            return None
        return cls(url=url, model=model or os.environ.get(ENV_MODEL, ""),
                   api_key=api_key or os.environ.get(ENV_KEY), **options)


def neuron_prompt(record: dict[str, Any], item_facets: list[dict[str, list[str]]], top: int) -> str:
    lines = [(f"Feature {record['id']}. Metadata-based label: {record['label']} "
              f"(confidence {record['confidence']:.2f})."), "Top items, strongest first:"]
    for t in record.get("top_items", [])[:top]:
        facets = "; ".join(f"{k}: {', '.join(v)}" for k, v in item_facets[t["index"]].items() if v)
        lines.append(f"- {t['title']}" + (f" [{facets}]" if facets else ""))
    shares = ", ".join(f"{c['concept']} {c['share']:.0%}" for c in record.get("concepts", [])[:6])
    if shares:
        lines.append(f"Concept shares among the top items: {shares}.")
    return "\n".join(lines)


def parse_label(content: str) -> str:
    """``{"label": "80s slashers"}`` or a bare line -> ``80s slashers`` (quotes and dots stripped)."""
    text = content.strip()
    match = re.search(r"\{.*\}", text, flags=re.DOTALL)
    if match:
        try:
            value = json.loads(match.group(0)).get("label")
            if isinstance(value, str):
                text = value
        except json.JSONDecodeError:
            pass
    text = text.strip().splitlines()[0] if text.strip() else ""
    text = text.strip().strip("\"'`").rstrip(".").strip()
    if not text:
        raise LLMError("empty label in the model's answer")
    return text[:80]


def ask(cfg: LLMConfig, prompt: str) -> str:
    body = json.dumps({"model": cfg.model, "temperature": 0, "max_tokens": 40,
                       "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                                    {"role": "user", "content": prompt}]}).encode()
    headers = {"Content-Type": "application/json"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    request = urllib.request.Request(cfg.endpoint, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=cfg.timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode(errors="replace")
        raise LLMError(f"{cfg.endpoint}: HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise LLMError(f"{cfg.endpoint}: unreachable: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise LLMError(f"{cfg.endpoint}: answer is not JSON: {exc}") from exc
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"{cfg.endpoint}: no choices[0].message.content in the answer") from exc
    return parse_label(str(content))


def llm_label(records: list[dict[str, Any]], item_facets: list[dict[str, list[str]]], cfg: LLMConfig,
              progress: bool = False) -> int:
    """Adds ``llm_label`` to up to ``max_neurons`` live neurons (in place); returns how many."""
    live = [r for r in records if r["status"] != "dead" and r.get("top_items")]
    live.sort(key=lambda r: (r["prefix"], -r.get("activation_rate_items", 0.0), r["id"]))
    chosen = live[: cfg.max_neurons]
    for rec in tqdm(chosen, desc="LLM labels", disable=not progress):
        rec["llm_label"] = ask(cfg, neuron_prompt(rec, item_facets, cfg.top_items))
        rec["llm_model"] = cfg.model
        if rec["status"] == "low_confidence" and rec["llm_label"].lower() != "mixed":
            rec["label"] = f"{rec['llm_label']} (LLM)"
            rec["label_source"] = "llm"
    return len(chosen)
