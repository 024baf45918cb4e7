"""Layer-wise analyses that guide per-group pruning ratios."""

from keras_neuronprune.analysis.max_redundancy import max_redundancy
from keras_neuronprune.analysis.sensitivity import sensitivity_analysis
from keras_neuronprune.analysis.sensitivity_report import SensitivityReport

__all__ = ["SensitivityReport", "max_redundancy", "sensitivity_analysis"]
