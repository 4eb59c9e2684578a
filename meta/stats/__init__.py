"""The numerical core: effect sizes, estimators, intervals, bias, meta-regression, dose-response,
multilevel models, TSA and certainty rules. numpy/scipy only: no files, no plots, no click."""
