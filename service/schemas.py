"""Pydantic models of every response and request body, for the published OpenAPI schema.

The hot routes build plain dicts and serialise them with orjson (validating a model per response
would cost more than the recommendation itself); these models document exactly those dicts, and
the tests validate real responses against them so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FEEDBACK_KIND_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Model):
    error: str = Field(description="Machine-readable kind: invalid_parameter, unknown_user, unknown_item, "
                                   "unknown_neuron, not_found, feedback_disabled, internal_error")
    parameter: str | None = Field(None, description="The request parameter at fault, when one is")
    value: Any = Field(None, description="What was received for it")
    problem: str = Field(description="What was wrong")
    allowed: str | None = Field(None, description="The allowed form or range")
    request_id: str | None = None


class RecommendedItem(_Model):
    id: str = Field(description="Raw item id")
    title: str
    score: float = Field(description="u'.v_i + b_i, plus any promote boost")
    rank: int = Field(ge=1)


class SteerUnderstood(_Model):
    target: str = Field(description="The target as written")
    neuron: int
    slug: str | None
    label: str
    op: Literal["+", "-", "=", "*"]
    value: float
    activation_scale: float = Field(description="The neuron's unit: its mean positive activation")
    activation_before: float = Field(description="The user's raw activation before any steer")
    activation_after: float = Field(description="After all steers on this neuron")


class FilterUnderstood(_Model):
    target: str
    neuron: int
    slug: str | None
    label: str
    threshold: float = Field(description="In activation-scale units; items above it are dropped")
    items_removed: int
    concept_items: int | None = Field(description="Items whose metadata carry the concept the neuron's label names "
                                                  "(with its qualifier, e.g. comedies of the 1980s); null when the "
                                                  "label names none (mixed, popularity)")
    concept_items_removed: int | None = Field(description="How many of those this filter removes; fewer than "
                                                          "concept_items means some of the concept can still be "
                                                          "recommended")


class PromoteUnderstood(_Model):
    target: str
    neuron: int
    slug: str | None
    label: str
    item: str | None = Field(description="The promoted item, or null for every item active on the neuron")
    value: float = Field(description="Signed, in activation-scale units")
    items_affected: int


class ExcludeUnderstood(_Model):
    facet: str
    value: str = Field(description="As the item metadata spells it")
    items_removed: int


class RecommendResponse(_Model):
    request_id: str
    user: str
    k: int
    exclude_seen: bool
    items: list[RecommendedItem]
    steers: list[SteerUnderstood]
    filters: list[FilterUnderstood]
    promotes: list[PromoteUnderstood]
    excludes: list[ExcludeUnderstood] = Field(description="Items ruled out by metadata (exclude=FACET:VALUE)")
    experiment: str | None = Field(description="A/B experiment serving this request, if any")
    arm: str | None
    fallback: Literal["popularity"] | None = Field(description="Set when an unknown user got the popularity fallback")


class NeuronSummary(_Model):
    id: int
    label: str
    slug: str | None
    aliases: list[str] = Field(description="More steer targets for this neuron: plain concept slugs no other "
                                           "neuron owns that its two-concept label names")
    confidence: float | None
    prefix: int | None = Field(description="Matryoshka level")
    status: str
    parent: int | None
    activation_scale: float = Field(description="Mean positive activation over all users and items: the unit "
                                                "of steer, filter and promote values")
    user_active_fraction: float
    item_active_fraction: float
    dead: bool


class NeuronList(_Model):
    total: int = Field(description="Neurons matching the query")
    offset: int
    limit: int
    query: str | None
    neurons: list[NeuronSummary]


class TopItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    index: int
    item: str
    title: str
    activation: float


class Concept(BaseModel):
    model_config = ConfigDict(extra="allow")
    facet: str
    concept: str
    share: float


class NeuronDetail(NeuronSummary):
    top_items: list[TopItem]
    concepts: list[Concept]
    concepts_source: Literal["neurons.json", "item metadata"]
    extra: dict[str, Any] = Field(description="Fields of neurons.json beyond the contract, passed through")


class NeuronContribution(_Model):
    neuron: int
    slug: str | None
    label: str
    activation: float
    contribution: float = Field(description="activation * (W_dec[j] * scale) . v_item")


class ExplainParts(_Model):
    decoder_constant: float = Field(description="dec(0) . v_item (decoder bias and de-normalisation)")
    error_term: float = Field(description="(u - dec(enc(u))) . v_item: what the SAE does not reconstruct")
    item_bias: float


class ExplainResponse(_Model):
    request_id: str
    user: str
    item: str
    title: str
    score: float
    steers: list[dict[str, Any]]
    neurons: list[NeuronContribution] = Field(description="Active neurons, largest |contribution| first")
    parts: ExplainParts
    sum_of_parts: float = Field(description="Sum of contributions and parts; equals score")


class Health(_Model):
    status: Literal["ok"]
    engine: dict[str, Any]
    runtime: dict[str, Any]
    experiments: list[str]
    events: bool
    bundle: dict[str, Any] | None = Field(None, description="With admin routes on: the bundle path, what it "
                                          "resolved to, its manifest hash and the last reload error (reload.py)")


class FeedbackIn(_Model):
    request_id: str = Field(min_length=1, max_length=100, description="request_id of the /recommend response")
    user: str = Field(min_length=1, max_length=200)
    item: str = Field(min_length=1, max_length=200)
    kind: str = Field(pattern=FEEDBACK_KIND_PATTERN, description="click, like, purchase, ... (lower case)")


class FeedbackOut(_Model):
    stored: bool = Field(description="False when this (request_id, kind, item) was already stored")
    duplicate: bool
    experiment: str | None
    arm: str | None


class TreeNode(BaseModel):
    model_config = ConfigDict(extra="allow")  # concept_tree.json adds link strengths (score, coactivation, ...)
    id: int
    slug: str | None
    label: str
    prefix: int | None = Field(description="Matryoshka level")
    status: str
    confidence: float | None
    parent: int | None = Field(description="Parent neuron in an earlier prefix; null for a root")
    children: list[int]


class ConceptTree(_Model):
    source: Literal["concept_tree.json", "neurons.json", "computed"] = Field(
        description="concept_tree.json of the bundle; else the parent fields of neurons.json; else prefix levels only")
    prefixes: list[int] = Field(description="Matryoshka prefix sizes")
    method: dict[str, Any] | None = Field(description="How parents were linked (concept_tree.json only)")
    roots: list[int]
    nodes: list[TreeNode] = Field(description="Live neurons (dead ones are left out)")


class ArmInfo(_Model):
    name: str
    weight: float
    control: bool
    override: str = Field(description="The ab= value that forces this arm: EXPERIMENT:ARM")
    steer: list[str]
    filter: list[str]
    promote: list[str]


class ExperimentInfo(_Model):
    name: str
    enabled: bool
    traffic: float
    control: str
    arms: list[ArmInfo]


class ArmAssignment(_Model):
    experiment: str
    arm: str


class ExperimentList(_Model):
    experiments: list[ExperimentInfo] = Field(description="Empty when the server runs no experiments")
    user: str | None
    assignment: ArmAssignment | None = Field(description="The arm the user gets by hash (null: no experiment)")


class UserList(_Model):
    total: int
    offset: int
    limit: int
    query: str | None
    users: list[str]


class SeenItem(_Model):
    id: str
    title: str


class UserNeuron(_Model):
    neuron: int
    slug: str | None
    label: str
    activation: float
    activation_units: float = Field(description="activation / the neuron's activation scale")


class UserProfile(_Model):
    user: str
    n_seen: int = Field(description="Training items of the user (excluded from recommendations by default)")
    seen: list[SeenItem] = Field(description="The first of them")
    neurons: list[UserNeuron] = Field(description="Active neurons, strongest (in scale units) first")
