# Writes the R reference values for the dose-response engine (meta/stats/doseresponse.py, splines.py).
#
#   .venv/bin/python reference/doseresponse/make_inputs.py   (first: the second-stage inputs, from the repo root)
#   Rscript reference/make_doseresponse_reference.R            (from the repository root)
#   Rscript reference/make_doseresponse_reference.R --time     (only times the 19 Garcia second stages)
#
# dosresmeta and mvmeta are not installable here; metafor and Hmisc are. So:
# 1. Second stage. For each case in reference/doseresponse/inputs/ (per-study first-stage GLS coefficients b_i and
#    covariances V_i written by the engine), fit mvmeta's two-stage model b_i ~ N(beta, Psi + V_i), Psi unstructured,
#    with metafor::rma.mv(yi, V, mods = ~ factor(coef) - 1, random = ~ factor(coef) | study, struct = "UN") by REML
#    and ML, and the fixed-effect model (no random part). Written to reference/doseresponse/metafor_secondstage.csv,
#    long format (case, method, quantity, i, j, value): beta, vcov, psi, loglik (REML: metafor's restricted
#    log-likelihood, which has no constant term for the fixed effects), QE, QE_df, QE_p (the Q test of the
#    fixed-effect model, as mvmeta's qtest) and the Wald test of the spline/quadratic terms (anova(btt = 2:p)).
# 2. Spline basis. Hmisc::rcspline.eval(x, knots, inclx = TRUE) (default norm = 2, as rms::rcs uses it) for knots at
#    R's quantile() of the alcohol_crc doses and the Garcia bladder-cancer knots, on a grid of doses: written to
#    reference/doseresponse/hmisc_rcspline.csv (knotset, x, col, value), and the knots with their quantile
#    probabilities to reference/doseresponse/r_quantiles.csv.
# The tests never call R: they read these committed files.
suppressPackageStartupMessages({
  library(metafor)
  library(Hmisc)
})

dir <- "reference/doseresponse"
fmt <- function(x) ifelse(is.na(x), "", trimws(formatC(x, digits = 17, format = "g")))
cases <- read.csv(file.path(dir, "inputs", "cases.csv"), stringsAsFactors = FALSE)

read_case <- function(case) {
  d <- read.csv(file.path(dir, "inputs", paste0(case, ".csv")), stringsAsFactors = FALSE)
  p <- max(d$coef)
  vcols <- paste0("v", seq_len(p))
  blocks <- lapply(split(d, factor(d$study, levels = unique(d$study))), function(s) as.matrix(s[, vcols]))
  list(d = d, p = p, V = bldiag(blocks))
}

fit_case <- function(x, method) {
  # nlminb with a tight relative tolerance; where it reports non-convergence, metafor's default settings
  fits <- list(list(rel.tol = 1e-12, iter.max = 10000, eval.max = 10000), list())
  for (ctrl in fits) {
    fit <- tryCatch(fit_once(x, method, ctrl), error = function(e) e)
    if (!inherits(fit, "error")) return(fit)
  }
  stop(conditionMessage(fit))
}

fit_once <- function(x, method, ctrl) {
  if (method == "FE") {
    if (x$p == 1) rma.mv(yi, x$V, mods = ~ 1, data = x$d) else rma.mv(yi, x$V, mods = ~ factor(coef) - 1, data = x$d)
  } else if (x$p == 1) {
    rma.mv(yi, x$V, mods = ~ 1, random = ~ 1 | study, data = x$d, method = method, control = ctrl)
  } else {
    rma.mv(yi, x$V, mods = ~ factor(coef) - 1, random = ~ factor(coef) | study, struct = "UN",
           data = x$d, method = method, control = ctrl)
  }
}

psi_of <- function(fit, p) {
  if (p == 1) return(matrix(fit$sigma2, 1, 1))
  fit$G
}

rows <- list()
add <- function(case, method, quantity, i, j, value) {
  rows[[length(rows) + 1]] <<- data.frame(case = case, method = method, quantity = quantity, i = i, j = j,
                                          value = fmt(value), stringsAsFactors = FALSE)
}

if ("--time" %in% commandArgs(trailingOnly = TRUE)) {
  garcia <- cases$case[grepl("^garcia_", cases$case)]
  inputs <- lapply(garcia, read_case)
  t <- system.time(for (x in inputs) fit_case(x, "REML"))
  cat(sprintf("R metafor rma.mv REML, 19 Garcia second stages: %.3f s elapsed\n", t[["elapsed"]]))
  quit(save = "no")
}

for (case in cases$case) {
  x <- read_case(case)
  for (method in c("REML", "ML", "FE")) {
    fit <- tryCatch(fit_case(x, method), error = function(e) e)
    if (inherits(fit, "error")) {
      add(case, method, paste("error:", conditionMessage(fit)), 0, 0, NA)
      next
    }
    b <- as.numeric(coef(fit))
    for (i in seq_len(x$p)) {
      add(case, method, "beta", i, 0, b[i])
      for (j in seq_len(x$p)) add(case, method, "vcov", i, j, vcov(fit)[i, j])
    }
    if (method != "FE") {
      psi <- psi_of(fit, x$p)
      for (i in seq_len(x$p)) for (j in seq_len(x$p)) add(case, method, "psi", i, j, psi[i, j])
    }
    add(case, method, "loglik", 0, 0, as.numeric(logLik(fit)))
    add(case, method, "QE", 0, 0, fit$QE)
    add(case, method, "QE_df", 0, 0, fit$k - fit$p)
    add(case, method, "QE_p", 0, 0, fit$QEp)
    if (x$p > 1) {
      w <- anova(fit, btt = 2:x$p)
      add(case, method, "wald_chi2", 0, 0, w$QM)
      add(case, method, "wald_df", 0, 0, w$QMdf[1])
      add(case, method, "wald_p", 0, 0, w$QMp)
    }
  }
}
write.csv(do.call(rbind, rows), file.path(dir, "metafor_secondstage.csv"), row.names = FALSE)

# Spline bases and quantiles
crc <- read.csv("../shared/reference-data/dose-response/dosresmeta-examples/alcohol_crc.csv")
bladder <- read.csv("../shared/reference-data/dose-response/garcia2023/main-bladder-cancer-fatal-and-non-fatal.csv")
probs <- list(crc_10_50_90 = c(.1, .5, .9), crc_05_35_65_95 = c(.05, .35, .65, .95),
              bladder_garcia = c(0, 0.6875 / 2, 0.6875))
doses <- list(crc_10_50_90 = crc$dose, crc_05_35_65_95 = crc$dose, bladder_garcia = bladder$dose)
q_rows <- list()
b_rows <- list()
grid <- sort(unique(c(seq(0, 70, by = 0.25), crc$dose, bladder$dose)))
for (name in names(probs)) {
  k <- as.numeric(quantile(doses[[name]], probs[[name]]))
  q_rows[[name]] <- data.frame(knotset = name, prob = fmt(probs[[name]]), knot = fmt(k))
  basis <- rcspline.eval(grid, knots = k, inclx = TRUE)
  for (col in seq_len(ncol(basis))) {
    b_rows[[paste(name, col)]] <- data.frame(knotset = name, x = fmt(grid), col = col, value = fmt(basis[, col]))
  }
}
write.csv(do.call(rbind, q_rows), file.path(dir, "r_quantiles.csv"), row.names = FALSE)
write.csv(do.call(rbind, b_rows), file.path(dir, "hmisc_rcspline.csv"), row.names = FALSE)
writeLines(c(paste("R", paste(R.version$major, R.version$minor, sep = ".")),
             paste("metafor", packageVersion("metafor")), paste("Hmisc", packageVersion("Hmisc"))),
           file.path(dir, "VERSIONS"))
cat("wrote", file.path(dir, "metafor_secondstage.csv"), "hmisc_rcspline.csv r_quantiles.csv\n")
