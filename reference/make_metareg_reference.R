# Writes metafor reference values for the meta-regression on study-level moderators (meta/metareg.py).
#
#   Rscript reference/make_metareg_reference.R        (from the repository root)
#
# For every model below (published datasets of metadat with their moderators) x every tau^2
# estimator x {z, knha} it fits rma(yi, vi, mods = ~ ..., method, test) and writes
#   reference/metareg/<dataset>.csv              the input: study, yi, vi and the moderators
#   reference/metafor_metareg_reference.csv      one row per cell: k, p, tau2, I2, H2, R2, QM (df, p), QE (df, p)
#   reference/metafor_metareg_coefficients.csv   one row per cell and coefficient: estimate, se, z/t, p, CI
# Moderators listed in `factors` enter as R factors (dummy coding, first level the reference).
# Studies with a missing moderator are left out by metafor (na.action = "na.omit"), as by meta.
# Where metafor stops with an error the values are empty and the error message is recorded.
# The tests never call R: they read these committed files.
suppressPackageStartupMessages(library(metafor))

out_dir <- "reference"
dir.create(file.path(out_dir, "metareg"), showWarnings = FALSE)
methods <- c("FE", "DL", "REML", "ML", "PM", "SJ", "HE", "EB", "HS")
tests <- c("z", "knha")

fmt <- function(x) ifelse(is.na(x), "", trimws(formatC(x, digits = 17, format = "g")))

# The datasets: effect sizes and moderators, one row per study.
bcg <- dat.bcg
bcg_es <- escalc("RR", ai = bcg$tpos, bi = bcg$tneg, ci = bcg$cpos, di = bcg$cneg)
raud <- dat.raudenbush1985
bang <- dat.bangertdrowns2004
datasets <- list(
  # BCG vaccine trials (Colditz et al. 1994, JAMA 271:698): log RR on absolute latitude, year, allocation
  bcg = data.frame(study = paste(bcg$author, bcg$year), yi = as.numeric(bcg_es$yi), vi = as.numeric(bcg_es$vi),
                   ablat = bcg$ablat, year = bcg$year, alloc = bcg$alloc),
  # Teacher expectancy (Raudenbush 1984): SMD on weeks of prior contact and tester blindness
  raudenbush = data.frame(study = paste(raud$author, raud$year, raud$study), yi = as.numeric(raud$yi),
                          vi = as.numeric(raud$vi), weeks = raud$weeks, tester = raud$tester),
  # Writing-to-learn (Bangert-Drowns et al. 2004): SMD on grade level (a factor coded 1-4) and
  # length of the intervention in weeks (missing for 2 studies)
  bangertdrowns = data.frame(study = paste(bang$author, bang$year, bang$id), yi = as.numeric(bang$yi),
                             vi = as.numeric(bang$vi), grade = bang$grade, length = bang$length)
)

models <- list(
  list(model = "bcg_ablat_year", dataset = "bcg", mods = c("ablat", "year"), factors = character(0)),
  list(model = "bcg_alloc", dataset = "bcg", mods = "alloc", factors = "alloc"),
  list(model = "raudenbush_weeks", dataset = "raudenbush", mods = "weeks", factors = character(0)),
  list(model = "raudenbush_weeks_tester", dataset = "raudenbush", mods = c("weeks", "tester"), factors = "tester"),
  list(model = "bangertdrowns_grade_length", dataset = "bangertdrowns", mods = c("grade", "length"),
       factors = "grade")
)

for (name in names(datasets)) {
  d <- datasets[[name]]
  out <- d
  out$yi <- fmt(d$yi)
  out$vi <- fmt(d$vi)
  write.csv(out, file.path(out_dir, "metareg", paste0(name, ".csv")), row.names = FALSE, na = "")
}

rows <- list()
coefs <- list()
for (m in models) {
  d <- datasets[[m$dataset]]
  for (f in m$factors) d[[f]] <- factor(d[[f]])
  formula <- as.formula(paste("~", paste(m$mods, collapse = " + ")))
  for (method in methods) for (test in tests) {
    fit <- try(suppressWarnings(rma(yi, vi, mods = formula, data = d, method = method, test = test)), silent = TRUE)
    error <- if (inherits(fit, "try-error")) trimws(attr(fit, "condition")$message) else ""
    ok <- error == ""
    val <- function(x) if (ok && !is.null(x)) x else NA
    rows[[length(rows) + 1]] <- data.frame(
      model = m$model, dataset = m$dataset, mods = paste(m$mods, collapse = "+"),
      factors = paste(m$factors, collapse = "+"), method = method, test = test,
      k = if (ok) fit$k else NA, p = if (ok) fit$p else NA,
      tau2 = fmt(val(fit$tau2)), i2 = fmt(val(fit$I2)), h2 = fmt(val(fit$H2)), r2 = fmt(val(fit$R2)),
      qm = fmt(val(fit$QM)), qm_df1 = fmt(if (ok) fit$QMdf[1] else NA), qm_df2 = fmt(if (ok) fit$QMdf[2] else NA),
      qm_p = fmt(val(fit$QMp)), qe = fmt(val(fit$QE)), qe_df = fmt(if (ok) fit$k - fit$p else NA),
      qe_p = fmt(val(fit$QEp)), error = error)
    if (ok) {
      coefs[[length(coefs) + 1]] <- data.frame(
        model = m$model, method = method, test = test, name = rownames(fit$beta),
        estimate = fmt(as.numeric(fit$beta)), se = fmt(fit$se), statistic = fmt(fit$zval), p = fmt(fit$pval),
        ci_lower = fmt(fit$ci.lb), ci_upper = fmt(fit$ci.ub))
    }
  }
}
write.csv(do.call(rbind, rows), file.path(out_dir, "metafor_metareg_reference.csv"), row.names = FALSE)
write.csv(do.call(rbind, coefs), file.path(out_dir, "metafor_metareg_coefficients.csv"), row.names = FALSE)
