# Writes metafor reference values for the Python engine's tests.
#
#   Rscript reference/make_reference.R        (from the repository root; `make reference`)
#
# For each published dataset below it writes the input sheet in the toolkit's vocabulary
# (reference/datasets/<name>.csv), metafor's escalc() effect sizes (reference/metafor_escalc.csv)
# and rma() + confint() results for every tau^2 estimator x {z, knha}
# (reference/metafor_reference.csv). Versions used are written to reference/VERSIONS.
# The tests never call R: they read these committed files.
suppressPackageStartupMessages(library(metafor))

out_dir <- "reference"
methods <- c("FE", "DL", "REML", "ML", "PM", "SJ", "HE", "EB", "HS")
tests <- c("z", "knha")

fmt <- function(x) ifelse(is.na(x), "", trimws(formatC(x, digits = 17, format = "g")))

write_sheet <- function(df, name) {
  write.csv(df, file.path(out_dir, "datasets", paste0(name, ".csv")), row.names = FALSE, quote = TRUE, na = "")
}

datasets <- list()

# 1. BCG vaccine trials (Colditz et al. 1994, JAMA 271:698), binary -> RR
d <- dat.bcg
datasets$bcg_rr <- list(
  sheet = data.frame(study = paste(d$author, d$year), year = d$year, events_treat = d$tpos,
                     n_treat = d$tpos + d$tneg, events_ctrl = d$cpos, n_ctrl = d$cpos + d$cneg),
  measure = "RR", es = escalc("RR", ai = d$tpos, bi = d$tneg, ci = d$cpos, di = d$cneg), args = list())

# ... and the same trials as dat.bcg prints them: cases and non-cases per arm (escalc's ai, bi, ci, di),
#     with no total given
datasets$bcg_rr_cells <- list(
  sheet = data.frame(study = paste(d$author, d$year), year = d$year, events_treat = d$tpos,
                     nonevents_treat = d$tneg, events_ctrl = d$cpos, nonevents_ctrl = d$cneg),
  measure = "RR", es = escalc("RR", ai = d$tpos, bi = d$tneg, ci = d$cpos, di = d$cneg), args = list())

# 2./3. Antimicrobial catheters (Niel-Weise et al. 2007, J Antimicrob Chemother 60:711):
#       binary with zero cells and one double-zero study -> OR and RR (0.5 added, double zero kept)
d <- dat.nielweise2007
sheet <- data.frame(study = paste(d$author, d$year), year = d$year, events_treat = d$ai,
                    n_treat = d$n1i, events_ctrl = d$ci, n_ctrl = d$n2i)
datasets$nielweise_or <- list(sheet = sheet, measure = "OR",
  es = escalc("OR", ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i), args = list())
datasets$nielweise_rr <- list(sheet = sheet, measure = "RR",
  es = escalc("RR", ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i), args = list())
# ... and the Cochrane convention: double-zero studies dropped
datasets$nielweise_rr_drop00 <- list(sheet = sheet, measure = "RR",
  es = escalc("RR", ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i, drop00 = TRUE),
  args = list(zero_cells = "drop"))

# ... and their odds ratios re-expressed as SMDs (Chinn 2000; the sheet marks the rows smd_basis = odds_ratio)
datasets$nielweise_or2dl <- list(sheet = cbind(sheet, smd_basis = "odds_ratio"), measure = "SMD",
  es = escalc("OR2DL", ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i), args = list())

# 4. Prophylactic lidocaine (Hine et al. 1989, Arch Intern Med 149:2694), binary -> RD
d <- dat.hine1989
datasets$hine_rd <- list(
  sheet = data.frame(study = d$source, year = NA, events_treat = d$ai, n_treat = d$n1i,
                     events_ctrl = d$ci, n_ctrl = d$n2i),
  measure = "RD", es = escalc("RD", ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i), args = list())

# 5./6. Length of stay (Normand 1999, Stat Med 18:321), continuous -> SMD, MD, MD (pooled SD)
d <- dat.normand1999
sheet <- data.frame(study = d$source, year = NA, mean_treat = d$m1i, sd_treat = d$sd1i, n_treat = d$n1i,
                    mean_ctrl = d$m2i, sd_ctrl = d$sd2i, n_ctrl = d$n2i)
datasets$normand_smd <- list(sheet = sheet, measure = "SMD",
  es = escalc("SMD", m1i = d$m1i, sd1i = d$sd1i, n1i = d$n1i, m2i = d$m2i, sd2i = d$sd2i, n2i = d$n2i), args = list())
datasets$normand_md <- list(sheet = sheet, measure = "MD",
  es = escalc("MD", m1i = d$m1i, sd1i = d$sd1i, n1i = d$n1i, m2i = d$m2i, sd2i = d$sd2i, n2i = d$n2i), args = list())
datasets$normand_md_pooled <- list(sheet = sheet, measure = "MD",
  es = escalc("MD", m1i = d$m1i, sd1i = d$sd1i, n1i = d$n1i, m2i = d$m2i, sd2i = d$sd2i, n2i = d$n2i, vtype = "HO"),
  args = list(md_variance = "pooled"))

# ... and the same trials given as printed standardised differences d with the arms' n (escalc's di):
#     d = (m1 - m2) / pooled SD, so Hedges' g must equal normand_smd's
sd_pooled <- sqrt(((d$n1i - 1) * d$sd1i^2 + (d$n2i - 1) * d$sd2i^2) / (d$n1i + d$n2i - 2))
d_printed <- signif((d$m1i - d$m2i) / sd_pooled, 3)  # as a paper prints it (3 significant digits)
datasets$normand_smd_from_d <- list(
  sheet = data.frame(study = d$source, year = NA, d = d_printed, n_treat = d$n1i, n_ctrl = d$n2i),
  measure = "SMD", es = escalc("SMD", di = d_printed, n1i = d$n1i, n2i = d$n2i), args = list())

# 7. Environmental tobacco smoke and lung cancer (Hackshaw et al. 1998, BMJ 315:980):
#    odds ratios with 95% CIs -> log OR, SE from the CI width
d <- dat.hackshaw1998
es <- data.frame(yi = log(d$or), vi = ((log(d$or.ub) - log(d$or.lb)) / (2 * qnorm(0.975)))^2)
datasets$hackshaw_or_ci <- list(
  sheet = data.frame(study = paste(d$author, d$year, d$study), year = d$year, estimate = d$or,
                     ci_lower = d$or.lb, ci_upper = d$or.ub),
  measure = "OR", es = es, args = list())

# ... and the Normand (1999) mean differences as a trial report prints them: MD with its 95% CI,
#     two decimals -> MD, SE from the CI width (Cochrane Handbook 6.5.2.3)
d <- dat.normand1999
md <- escalc("MD", m1i = d$m1i, sd1i = d$sd1i, n1i = d$n1i, m2i = d$m2i, sd2i = d$sd2i, n2i = d$n2i)
md_ci <- data.frame(estimate = round(md$yi, 2), ci_lower = round(md$yi - qnorm(0.975) * sqrt(md$vi), 2),
                    ci_upper = round(md$yi + qnorm(0.975) * sqrt(md$vi), 2))
datasets$normand_md_ci <- list(
  sheet = data.frame(study = d$source, year = NA, md_ci),
  measure = "MD", es = data.frame(yi = md_ci$estimate, vi = ((md_ci$ci_upper - md_ci$ci_lower) / (2 * qnorm(0.975)))^2),
  args = list())

# 8. Teacher expectancy (Raudenbush 1984/1985), precomputed SMDs
d <- dat.raudenbush1985
datasets$raudenbush_gen <- list(
  sheet = data.frame(study = paste(d$author, d$year, d$study), year = d$year, yi = d$yi, vi = d$vi),
  measure = "GEN", es = data.frame(yi = d$yi, vi = d$vi), args = list())

# 9. Writing-to-learn interventions (Bangert-Drowns et al. 2004, Rev Educ Res 74:29), precomputed, k = 48
d <- dat.bangertdrowns2004
datasets$bangertdrowns_gen <- list(
  sheet = data.frame(study = paste(d$author, d$year, d$id), year = d$year, yi = d$yi, vi = d$vi),
  measure = "GEN", es = data.frame(yi = d$yi, vi = d$vi), args = list())

ref_rows <- list()
es_rows <- list()
for (name in names(datasets)) {
  ds <- datasets[[name]]
  write_sheet(ds$sheet, name)
  es <- as.data.frame(ds$es)
  keep <- !is.na(es$yi)
  es_rows[[name]] <- data.frame(dataset = name, row = seq_len(nrow(es)), yi = fmt(es$yi), vi = fmt(es$vi))
  yi <- es$yi[keep]; vi <- es$vi[keep]
  opts <- paste(names(ds$args), unlist(ds$args), sep = "=", collapse = ";")
  for (m in methods) for (t in tests) {
    fit <- suppressWarnings(rma(yi, vi, method = m, test = t))
    pr <- predict(fit)
    if (is.null(pr$pi.lb)) { pr$pi.lb <- pr$ci.lb; pr$pi.ub <- pr$ci.ub }  # FE: PI = CI
    tau2_ci <- c(NA, NA); i2_ci <- c(NA, NA); h2_ci <- c(NA, NA)
    if (m != "FE") {
      ci <- confint(fit)$random
      tau2_ci <- ci["tau^2", 2:3]; i2_ci <- ci["I^2(%)", 2:3]; h2_ci <- ci["H^2", 2:3]
    }
    ref_rows[[length(ref_rows) + 1]] <- data.frame(
      dataset = name, measure = ds$measure, options = opts, method = m, ci = t, k = fit$k,
      estimate = fmt(fit$b[1]), se = fmt(fit$se), ci_lower = fmt(fit$ci.lb), ci_upper = fmt(fit$ci.ub),
      p = fmt(fit$pval), pi_lower = fmt(pr$pi.lb), pi_upper = fmt(pr$pi.ub), tau2 = fmt(fit$tau2),
      tau2_se = fmt(fit$se.tau2), tau2_ci_lower = fmt(tau2_ci[1]), tau2_ci_upper = fmt(tau2_ci[2]),
      i2 = fmt(fit$I2), i2_ci_lower = fmt(i2_ci[1]), i2_ci_upper = fmt(i2_ci[2]), h2 = fmt(fit$H2),
      h2_ci_lower = fmt(h2_ci[1]), h2_ci_upper = fmt(h2_ci[2]), q = fmt(fit$QE), q_p = fmt(fit$QEp))
  }
}
write.csv(do.call(rbind, ref_rows), file.path(out_dir, "metafor_reference.csv"), row.names = FALSE)
write.csv(do.call(rbind, es_rows), file.path(out_dir, "metafor_escalc.csv"), row.names = FALSE)
writeLines(c(paste("R", paste(R.version$major, R.version$minor, sep = ".")),
             paste("metafor", as.character(packageVersion("metafor"))),
             paste("metadat", as.character(packageVersion("metadat")))),
           file.path(out_dir, "VERSIONS"))
