"""The embedded default dataset: a seeded synthetic catalogue with planted, hierarchical concepts.

Items belong to one top-level genre (some to a second one), one sub-genre of their main genre,
an era, and have a skewed popularity. Users mix one to three genres, prefer some sub-genres and
an era, and differ in how mainstream they are. Interactions are drawn without replacement from
each user's preference distribution, with noise. Every item's true concepts are in its metadata
(facets ``genre``, ``subgenre``, ``decade``), so tests can check that the SAE recovers them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .schema import InteractionData, ItemCatalog

GENRES: dict[str, tuple[str, ...]] = {
    "Action": ("Martial Arts", "Heist", "War"),
    "Comedy": ("Slapstick", "Satire", "Parody"),
    "Drama": ("Courtroom", "Period", "Family"),
    "Horror": ("Slasher", "Supernatural", "Zombie"),
    "Romance": ("Tearjerker", "Romantic Comedy", "Forbidden Love"),
    "Sci-Fi": ("Space Opera", "Cyberpunk", "Time Travel"),
    "Documentary": ("Nature", "True Crime", "Music"),
    "Animation": ("Anime", "Stop Motion", "Fairy Tale"),
}
DECADES = ("1960s", "1970s", "1980s", "1990s", "2000s", "2010s")
_WORDS = ("Night", "River", "Echo", "Iron", "Glass", "Storm", "Garden", "Signal", "Shadow", "Harbor",
          "Crown", "Ember", "Atlas", "Velvet", "Orbit", "Lantern", "Frontier", "Mirror", "Winter", "Summit")


@dataclass
class SyntheticConfig:
    """Size and difficulty of the synthetic catalogue. Defaults generate in about a second."""

    n_users: int = 3000
    n_items: int = 1500
    mean_interactions: float = 45.0
    """Mean interactions per user (log-normal spread, at least ``min_interactions``)."""
    min_interactions: int = 8
    secondary_genre_rate: float = 0.15
    """Share of items that also belong to a second top-level genre."""
    popularity_sigma: float = 1.5
    """Spread of log-popularity: larger means a heavier head."""
    noise_rate: float = 0.08
    """Share of each user's interactions drawn from global popularity rather than taste."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_users < 10 or self.n_items < 3 * len(GENRES) * 3:
            raise ValueError("synthetic dataset needs >= 10 users and >= 72 items")
        if not 0 <= self.noise_rate < 1 or not 0 <= self.secondary_genre_rate < 1:
            raise ValueError("noise_rate and secondary_genre_rate must be in [0, 1)")


def _item_concepts(cfg: SyntheticConfig, rng: np.random.Generator):
    genre_names = list(GENRES)
    n_genres = len(genre_names)
    # Genres differ in size (Drama big, Documentary small), like real catalogues.
    genre_share = rng.dirichlet(np.full(n_genres, 4.0))
    genre = rng.choice(n_genres, size=cfg.n_items, p=genre_share)
    sub = rng.integers(0, 3, size=cfg.n_items)
    second = np.where(
        rng.random(cfg.n_items) < cfg.secondary_genre_rate,
        (genre + rng.integers(1, n_genres, size=cfg.n_items)) % n_genres,
        -1,
    )
    decade = rng.choice(len(DECADES), size=cfg.n_items, p=[0.06, 0.09, 0.15, 0.25, 0.25, 0.20])
    year = 1960 + 10 * decade + rng.integers(0, 10, size=cfg.n_items)
    log_pop = rng.normal(0.0, cfg.popularity_sigma, size=cfg.n_items)
    return genre, sub, second, decade, year, log_pop


def _user_tastes(cfg: SyntheticConfig, rng: np.random.Generator, n_genres: int):
    # Each user likes 1-3 genres with Dirichlet weights; within a genre, sub-genre preferences.
    n_liked = rng.choice([1, 2, 3], size=cfg.n_users, p=[0.35, 0.45, 0.20])
    genre_w = np.zeros((cfg.n_users, n_genres))
    for u in range(cfg.n_users):
        liked = rng.choice(n_genres, size=n_liked[u], replace=False)
        genre_w[u, liked] = rng.dirichlet(np.full(n_liked[u], 2.0))
    sub_w = rng.dirichlet(np.full(3, 0.7), size=(cfg.n_users, n_genres))
    era = rng.normal(3.0, 1.4, size=cfg.n_users).clip(0, len(DECADES) - 1)
    era_strength = rng.gamma(2.0, 0.25, size=cfg.n_users)
    mainstream = rng.normal(1.0, 0.35, size=cfg.n_users).clip(0.0, None)
    return genre_w, sub_w, era, era_strength, mainstream


def generate(cfg: SyntheticConfig | None = None) -> InteractionData:
    cfg = cfg or SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    genre_names = list(GENRES)
    n_genres = len(genre_names)
    genre, sub, second, decade, year, log_pop = _item_concepts(cfg, rng)
    genre_w, sub_w, era, era_strength, mainstream = _user_tastes(cfg, rng, n_genres)

    # Taste [users, items]: weight of the item's main genre times sub-genre preference, plus a
    # smaller share through its second genre; era and popularity enter as log-linear terms.
    taste = genre_w[:, genre] * (0.4 + 1.8 * sub_w[:, genre, sub])
    has_second = second >= 0
    taste[:, has_second] += 0.5 * genre_w[:, second[has_second]]
    logits = (
        3.0 * np.log(taste + 1e-3)
        - era_strength[:, None] * (decade[None, :] - era[:, None]) ** 2
        + mainstream[:, None] * log_pop[None, :]
    )
    counts = np.maximum(
        cfg.min_interactions,
        rng.lognormal(np.log(cfg.mean_interactions) - 0.3, 0.75, size=cfg.n_users).astype(int),
    ).clip(max=cfg.n_items // 3)

    users, items = [], []
    pop_p = np.exp(log_pop) / np.exp(log_pop).sum()
    for u in range(cfg.n_users):
        n_noise = rng.binomial(counts[u], cfg.noise_rate)
        # Gumbel top-k samples without replacement in proportion to exp(logits).
        keys = logits[u] + rng.gumbel(size=cfg.n_items)
        chosen = np.argpartition(-keys, counts[u] - n_noise)[: counts[u] - n_noise]
        if n_noise:
            noise = rng.choice(cfg.n_items, size=n_noise, replace=False, p=pop_p)
            chosen = np.union1d(chosen, noise)
        users.append(np.full(len(chosen), u))
        items.append(chosen)
    user = np.concatenate(users)
    item = np.concatenate(items)
    # Timestamps: each user's interactions spread over a year in random order (for leave-last-out).
    timestamp = (1_600_000_000 + rng.integers(0, 365 * 86400, size=len(user))).astype(np.int64)

    titles, genre_facet, sub_facet = [], [], []
    for i in range(cfg.n_items):
        g = genre_names[genre[i]]
        s = GENRES[g][sub[i]]
        titles.append(f"{s}: {_WORDS[i % len(_WORDS)]} {i} ({year[i]})")
        genre_facet.append((g,) if second[i] < 0 else (g, genre_names[second[i]]))
        sub_facet.append((f"{g}/{s}",))
    catalog = ItemCatalog(
        titles=titles,
        facets={"genre": genre_facet, "subgenre": sub_facet, "decade": [(DECADES[d],) for d in decade]},
        year=year.astype(np.float32),
    )
    data = InteractionData(
        name="synthetic",
        user_ids=[f"u{u}" for u in range(cfg.n_users)],
        item_ids=[f"i{i}" for i in range(cfg.n_items)],
        user=user,
        item=item,
        weight=np.ones(len(user), dtype=np.float32),
        timestamp=timestamp,
        items=catalog,
        user_meta={"favourite_genre": [genre_names[int(np.argmax(w))] for w in genre_w]},
    )
    return data.compact()


def load(**options) -> InteractionData:
    """Registry entry point: ``load_dataset("synthetic", n_users=..., seed=...)``."""
    return generate(SyntheticConfig(**options))
