"""Analysis of A/B experiments: click-rate reports from logged events (``report``), offline replay
of held-out interactions against the arms (``simulate``), and team-draft interleaving
(``interleave``). Statistics shared by the three live in ``stats``."""
