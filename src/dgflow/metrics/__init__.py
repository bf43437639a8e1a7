"""Sample-quality metrics."""

from .classifier import ClassifierFeatures, inception_score, per_class_accuracy
from .fid import compute_stats, fid_from_features, fid_from_stats, load_stats, save_stats
from .inception import InceptionFeatures, extract_features
from ..mmd import MMDEstimate, MMDReference, difference_se, kid, mmd2_unbiased
from .ngram import ngram_counts, ngram_js, text_scores
from .toy import high_quality_fraction, kde_log_likelihood, modes_covered, sliced_wasserstein, toy_scores

__all__ = ["high_quality_fraction", "modes_covered", "kde_log_likelihood", "sliced_wasserstein", "toy_scores", "ngram_js",
           "ngram_counts", "text_scores"]
__all__ += ["compute_stats", "fid_from_stats", "fid_from_features", "save_stats", "load_stats"]
__all__ += ["InceptionFeatures", "extract_features", "ClassifierFeatures", "inception_score",
            "per_class_accuracy"]
__all__ += ["mmd2_unbiased", "kid", "MMDEstimate", "MMDReference", "difference_se"]
