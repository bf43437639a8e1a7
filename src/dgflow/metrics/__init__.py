"""Sample-quality metrics."""

from .toy import high_quality_fraction, kde_log_likelihood, modes_covered, sliced_wasserstein

__all__ = ["high_quality_fraction", "modes_covered", "kde_log_likelihood", "sliced_wasserstein"]
