"""OPD Lab core: on-policy distillation of tokenized-action VLA policies (plain library, no web/queue/db)."""

__version__ = "0.1.0"
