# Writes reference boundaries for the Lan-DeMets alpha-spending of the trial sequential analysis (meta/tsa.py).
#
#   Rscript reference/make_tsa_reference.R        (from the repository root; needs Debian's r-cran-rpact)
#
# rpact's getDesignGroupSequential(typeOfDesign = "asOF") gives the group sequential boundaries of
# the O'Brien-Fleming-type spending function alpha*(t) = 2 - 2 Phi(z_{alpha/2} / sqrt(t)) (Lan &
# DeMets 1983), computed by recursive numerical integration: two-sided symmetric (sided = 2, alpha
# the total two-sided level) and one-sided (sided = 1). For every set of information fractions
# below it writes one row per look to reference/rpact_tsa_bounds.csv, and the fixed sample sizes of
# a few mean differences to reference/rpact_tsa_sample_size.csv. (Neither ldbounds nor gsDesign
# is packaged by Debian; rpact is.) rpact's integration is accurate to about 1e-5 and less where an
# earlier boundary is very high, so the same boundaries are also solved independently to about
# 1e-10: exit probabilities of the multivariate normal of (Z_1..Z_k), corr sqrt(t_j / t_k), by
# mvtnorm's deterministic Miwa algorithm, and uniroot (column boundary_mvtnorm; up to 5 looks, as
# Miwa is slow beyond). The tests never call R: they read the committed file.
suppressPackageStartupMessages({
  library(rpact)
  library(mvtnorm)
})

out_dir <- "reference"
fmt <- function(x) trimws(formatC(x, digits = 17, format = "g"))

fractions <- list(
  "equal2" = (1:2) / 2, "equal3" = (1:3) / 3, "equal4" = (1:4) / 4, "equal5" = (1:5) / 5, "equal10" = (1:10) / 10,
  "uneven_a" = c(0.1, 0.3, 0.45, 0.8, 1),
  "uneven_b" = c(0.05, 0.5, 1),
  "uneven_c" = c(0.2, 0.25, 0.9, 1),
  "uneven_d" = c(0.33, 0.67, 1),
  "late" = c(0.6, 0.8, 0.95, 1)
)
# Boundaries by the definition: look k spends alpha*(t_k) - alpha*(t_(k-1)) in each tail (two-sided:
# the function at level alpha/2 for each boundary, as ldbounds, gsDesign and rpact).
bounds_mvtnorm <- function(t, alpha, sides) {
  spend <- function(tt, a) 2 * pnorm(-qnorm(1 - a / 2) / sqrt(tt))
  increment <- diff(c(0, if (sides == 1) spend(t, alpha) else spend(t, alpha / 2)))
  b <- qnorm(increment[1], lower.tail = FALSE)
  for (k in seq_along(t)[-1]) {
    corr <- outer(t[1:k], t[1:k], function(a, c) sqrt(pmin(a, c) / pmax(a, c)))
    lower <- c(if (sides == 2) -b else rep(-Inf, k - 1), NA)
    exit <- function(x) {
      lower[k] <- x
      p <- suppressWarnings(pmvnorm(lower = lower, upper = c(b, Inf), corr = corr, algorithm = Miwa(steps = 4096)))
      as.numeric(p) - increment[k]
    }
    b <- c(b, uniroot(exit, c(0.5, 15), tol = 1e-13)$root)
  }
  b
}

# split "per-boundary": each of the two boundaries spends alpha/2 by the function at level alpha/2
# (rpact's asOF, as ldbounds and gsDesign); "shared": the function at the two-sided level alpha,
# spent over both boundaries (rpact's asUser with those cumulative levels).
levels <- list(list(sided = 2, alpha = 0.05, split = "per-boundary"), list(sided = 2, alpha = 0.01, split = "per-boundary"),
               list(sided = 1, alpha = 0.025, split = ""), list(sided = 2, alpha = 0.05, split = "shared"))

rows <- list()
for (name in names(fractions)) for (lv in levels) {
  t <- fractions[[name]]
  if (lv$split == "shared") {
    design <- getDesignGroupSequential(kMax = length(t), informationRates = t, alpha = lv$alpha, sided = 2,
                                       typeOfDesign = "asUser", tolerance = 1e-10,
                                       userAlphaSpending = pmin(lv$alpha, 2 * pnorm(-qnorm(1 - lv$alpha / 2) / sqrt(t))))
  } else {
    design <- getDesignGroupSequential(kMax = length(t), informationRates = t, alpha = lv$alpha, sided = lv$sided,
                                       typeOfDesign = "asOF", tolerance = 1e-10)
  }
  rows[[length(rows) + 1]] <- data.frame(
    set = name, sides = lv$sided, split = lv$split, alpha = fmt(lv$alpha), look = seq_along(t), fraction = fmt(t),
    boundary = fmt(design$criticalValues), alpha_spent = fmt(design$alphaSpent),
    boundary_mvtnorm = if (length(t) <= 5 && lv$split != "shared") fmt(bounds_mvtnorm(t, lv$alpha, lv$sided)) else "",
    rpact = as.character(packageVersion("rpact")))
}
write.csv(do.call(rbind, rows), file.path(out_dir, "rpact_tsa_bounds.csv"), row.names = FALSE)

# Required sample size of a two-arm trial for a mean difference (normal approximation, equal arms):
# 4 (z_{1-alpha/2} + z_{1-beta})^2 sd^2 / delta^2, the RIS before the heterogeneity adjustment.
ris <- list()
for (case in list(c(0.5, 1, 0.05, 0.1), c(0.2, 1, 0.05, 0.2), c(2, 5, 0.01, 0.1), c(0.3, 1, 0.05, 0.1))) {
  s <- getSampleSizeMeans(alternative = case[1], stDev = case[2], alpha = case[3], beta = case[4], sided = 2,
                          normalApproximation = TRUE)
  ris[[length(ris) + 1]] <- data.frame(difference = fmt(case[1]), sd = fmt(case[2]), alpha = fmt(case[3]),
                                       power = fmt(1 - case[4]), n = fmt(s$nFixed))
}
write.csv(do.call(rbind, ris), file.path(out_dir, "rpact_tsa_sample_size.csv"), row.names = FALSE)
