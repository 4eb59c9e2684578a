"""meta: a toolkit for living evidence synthesis (effect sizes, pooling, plots, living tables)."""

__version__ = "0.3.0"
