"""The embedded default dataset: a seeded synthetic catalogue with planted, hierarchical concepts.

Items belong to one top-level genre (some to a second one), one sub-genre of their main genre,
a decade, and have a skewed popularity. Each user's interactions come from three tastes, mixed in
user-specific proportions (like genres, each is a taste the user has, not a nudge):

* **genres**: one to three liked genres with Dirichlet weights; in each liked genre the user is a
  *specialist* (prefers one or two of its sub-genres) or a *generalist* (all three alike), so both
  levels of the hierarchy leave their own trace in the interactions;
* **decades**: one favourite decade, any genre ("80s films");
* **blockbusters**: the most popular items of the catalogue, whatever their genre ("mainstream"
  viewers), on top of a mild preference for popular items in the other two tastes.

Every item's true concepts are in its metadata (facets ``genre``, ``subgenre``, ``decade``), and
popularity is in the interactions, so tests can check that the SAE recovers all four
(``tests/training/interpret/test_pipeline.py``). The shares and strengths were chosen so that each
planted concept is visible in 64 ALS factors (docs/interpretation.md, "Synthetic").
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
DECADE_SHARE = (0.06, 0.09, 0.15, 0.25, 0.25, 0.20)
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
    genre_floor: float = 0.3
    """Share of the catalogue spread evenly over the genres (the rest follows Dirichlet(4) sizes),
    so that the smallest genre still has three sub-genres of a few dozen items each."""
    popularity_sigma: float = 1.5
    """Spread of log-popularity: larger means a heavier head."""
    specialist_rate: float = 0.35
    """Chance that a user is a sub-genre specialist in a genre they like (else a generalist)."""
    taste_mix: tuple[float, float, float] = (3.0, 0.8, 1.2)
    """Dirichlet concentration of each user's shares of genre / decade / blockbuster interactions
    (means 0.6 / 0.16 / 0.24; users differ widely: some are decade fans, some mainstream)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_users < 10 or self.n_items < 3 * len(GENRES) * 3:
            raise ValueError("synthetic dataset needs >= 10 users and >= 72 items")
        if not 0 <= self.secondary_genre_rate < 1 or not 0 <= self.genre_floor <= 1 \
                or not 0 <= self.specialist_rate <= 1:
            raise ValueError("secondary_genre_rate must be in [0, 1), genre_floor and specialist_rate in [0, 1]")
        if len(self.taste_mix) != 3 or min(self.taste_mix) <= 0:
            raise ValueError("taste_mix needs three positive Dirichlet concentrations (genre, decade, blockbuster)")


def _item_concepts(cfg: SyntheticConfig, rng: np.random.Generator):
    genre_names = list(GENRES)
    n_genres = len(genre_names)
    # Genres differ in size (Horror big, Documentary small), like real catalogues.
    genre_share = rng.dirichlet(np.full(n_genres, 4.0))
    genre_share = (1 - cfg.genre_floor) * genre_share + cfg.genre_floor / n_genres
    genre = rng.choice(n_genres, size=cfg.n_items, p=genre_share)
    sub = rng.integers(0, 3, size=cfg.n_items)
    second = np.where(
        rng.random(cfg.n_items) < cfg.secondary_genre_rate,
        (genre + rng.integers(1, n_genres, size=cfg.n_items)) % n_genres,
        -1,
    )
    decade = rng.choice(len(DECADES), size=cfg.n_items, p=DECADE_SHARE)
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
    # Specialists concentrate on one or two sub-genres; generalists like the whole genre.
    sub_w = rng.dirichlet(np.full(3, 0.7), size=(cfg.n_users, n_genres))
    specialist = rng.random((cfg.n_users, n_genres)) < cfg.specialist_rate
    sub_w = np.where(specialist[..., None], sub_w, 1.0 / 3)
    # One favourite decade, drawn in proportion to the catalogue's decades.
    favourite_decade = rng.choice(len(DECADES), size=cfg.n_users, p=DECADE_SHARE)
    mainstream = rng.normal(1.0, 0.35, size=cfg.n_users).clip(0.0, None)
    return genre_w, sub_w, favourite_decade, mainstream


def _sample(logits: np.ndarray, n: int, taken: np.ndarray, rng: np.random.Generator) -> None:
    """Marks ``n`` more items in ``taken``, drawn without replacement in proportion to
    exp(logits) among the items not taken yet (Gumbel top-k)."""
    keys = np.where(taken, -np.inf, logits + rng.gumbel(size=len(logits)))
    taken[np.argpartition(-keys, n)[:n]] = True


def generate(cfg: SyntheticConfig | None = None) -> InteractionData:
    cfg = cfg or SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    genre_names = list(GENRES)
    n_genres = len(genre_names)
    genre, sub, second, decade, year, log_pop = _item_concepts(cfg, rng)
    genre_w, sub_w, favourite_decade, mainstream = _user_tastes(cfg, rng, n_genres)

    # Genre taste [users, items]: weight of the item's main genre times the sub-genre preference,
    # plus a smaller share through its second genre, sharpened (cubed) so that unliked genres are
    # rare. Decade taste: items of the favourite decade (any other is a million times less likely).
    # Both prefer popular items as much as the user is mainstream; the blockbuster taste draws from
    # popularity alone.
    taste = genre_w[:, genre] * (0.4 + 1.8 * sub_w[:, genre, sub])
    has_second = second >= 0
    taste[:, has_second] += 0.5 * genre_w[:, second[has_second]]
    pop_term = mainstream[:, None] * log_pop[None, :]
    genre_logits = 3.0 * np.log(taste + 1e-3) + pop_term
    decade_logits = np.where(decade[None, :] == favourite_decade[:, None], 0.0, np.log(1e-6)) + pop_term
    counts = np.maximum(
        cfg.min_interactions,
        rng.lognormal(np.log(cfg.mean_interactions) - 0.3, 0.75, size=cfg.n_users).astype(int),
    ).clip(max=cfg.n_items // 3)
    shares = rng.dirichlet(np.asarray(cfg.taste_mix, dtype=float), size=cfg.n_users)

    users, items = [], []
    for u in range(cfg.n_users):
        taken = np.zeros(cfg.n_items, dtype=bool)
        for logits, n in zip((genre_logits[u], decade_logits[u], log_pop), rng.multinomial(counts[u], shares[u])):
            if n:
                _sample(logits, n, taken, rng)
        chosen = np.flatnonzero(taken)
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
        user_meta={"favourite_genre": [genre_names[int(np.argmax(w))] for w in genre_w],
                   "favourite_decade": [DECADES[d] for d in favourite_decade]},
    )
    return data.compact()


def load(**options) -> InteractionData:
    """Registry entry point: ``load_dataset("synthetic", n_users=..., seed=...)``."""
    return generate(SyntheticConfig(**options))
