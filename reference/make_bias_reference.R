# Writes metafor reference values for the small-study tests and sensitivity (meta/bias.py).
#
#   Rscript reference/make_bias_reference.R        (from the repository root, after make_reference.R)
#
# For every dataset of reference/make_reference.R (same escalc() settings; the effect sizes are
# checked against reference/metafor_escalc.csv) x every tau^2 estimator x {z, knha} it fits
# rma(yi, vi, method, test) and writes
#   reference/metafor_bias_reference.csv   regtest(), ranktest(), trimfill() (one row per cell)
#   reference/metafor_bias_reference.json  leave1out() and influence() per study (one entry per cell)
# Also the first 2 and 3 studies of bcg_rr, where metafor stops for some tests (too few studies).
# Where metafor stops with an error the values are empty and the error message is recorded.
# The tests never call R: they read these committed files.
suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

out_dir <- "reference"
methods <- c("FE", "DL", "REML", "ML", "PM", "SJ", "HE", "EB", "HS")
tests <- c("z", "knha")

fmt <- function(x) ifelse(is.na(x), "", trimws(formatC(x, digits = 17, format = "g")))

# The effect sizes of make_reference.R, dataset by dataset (keep the two scripts in step).
es_of <- list(
  bcg_rr = function() {
    d <- dat.bcg
    list(measure = "RR", args = list(), es = escalc("RR", ai = d$tpos, bi = d$tneg, ci = d$cpos, di = d$cneg))
  },
  nielweise_or = function() {
    d <- dat.nielweise2007
    list(measure = "OR", args = list(), es = escalc("OR", ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i))
  },
  nielweise_rr = function() {
    d <- dat.nielweise2007
    list(measure = "RR", args = list(), es = escalc("RR", ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i))
  },
  nielweise_rr_drop00 = function() {
    d <- dat.nielweise2007
    list(measure = "RR", args = list(zero_cells = "drop"),
         es = escalc("RR", ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i, drop00 = TRUE))
  },
  nielweise_or2dl = function() {
    d <- dat.nielweise2007
    list(measure = "SMD", args = list(), es = escalc("OR2DL", ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i))
  },
  hine_rd = function() {
    d <- dat.hine1989
    list(measure = "RD", args = list(), es = escalc("RD", ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i))
  },
  normand_smd = function() {
    d <- dat.normand1999
    list(measure = "SMD", args = list(),
         es = escalc("SMD", m1i = d$m1i, sd1i = d$sd1i, n1i = d$n1i, m2i = d$m2i, sd2i = d$sd2i, n2i = d$n2i))
  },
  normand_smd_from_d = function() {
    d <- dat.normand1999
    sd_pooled <- sqrt(((d$n1i - 1) * d$sd1i^2 + (d$n2i - 1) * d$sd2i^2) / (d$n1i + d$n2i - 2))
    list(measure = "SMD", args = list(),
         es = escalc("SMD", di = signif((d$m1i - d$m2i) / sd_pooled, 3), n1i = d$n1i, n2i = d$n2i))
  },
  normand_md = function() {
    d <- dat.normand1999
    list(measure = "MD", args = list(),
         es = escalc("MD", m1i = d$m1i, sd1i = d$sd1i, n1i = d$n1i, m2i = d$m2i, sd2i = d$sd2i, n2i = d$n2i))
  },
  normand_md_pooled = function() {
    d <- dat.normand1999
    list(measure = "MD", args = list(md_variance = "pooled"),
         es = escalc("MD", m1i = d$m1i, sd1i = d$sd1i, n1i = d$n1i, m2i = d$m2i, sd2i = d$sd2i, n2i = d$n2i,
                     vtype = "HO"))
  },
  hackshaw_or_ci = function() {
    d <- dat.hackshaw1998
    list(measure = "OR", args = list(),
         es = data.frame(yi = log(d$or), vi = ((log(d$or.ub) - log(d$or.lb)) / (2 * qnorm(0.975)))^2))
  },
  raudenbush_gen = function() {
    d <- dat.raudenbush1985
    list(measure = "GEN", args = list(), es = data.frame(yi = d$yi, vi = d$vi))
  },
  bangertdrowns_gen = function() {
    d <- dat.bangertdrowns2004
    list(measure = "GEN", args = list(), es = data.frame(yi = d$yi, vi = d$vi))
  }
)
es_of$normand_md_ci <- function() {
  d <- dat.normand1999
  md <- escalc("MD", m1i = d$m1i, sd1i = d$sd1i, n1i = d$n1i, m2i = d$m2i, sd2i = d$sd2i, n2i = d$n2i)
  lo <- round(md$yi - qnorm(0.975) * sqrt(md$vi), 2)
  hi <- round(md$yi + qnorm(0.975) * sqrt(md$vi), 2)
  list(measure = "MD", args = list(), es = data.frame(yi = round(md$yi, 2), vi = ((hi - lo) / (2 * qnorm(0.975)))^2))
}
# The BCG trials again, as dat.bcg prints them (cases and non-cases, no totals): the same escalc call
es_of$bcg_rr_cells <- es_of$bcg_rr

# Run f(); return list(value, error message or "").
attempt <- function(f) {
  res <- try(suppressWarnings(f()), silent = TRUE)
  if (inherits(res, "try-error")) return(list(value = NULL, error = trimws(attr(res, "condition")$message)))
  list(value = res, error = "")
}

escalc_ref <- read.csv(file.path(out_dir, "metafor_escalc.csv"), colClasses = "character")
stopifnot(setequal(names(es_of), unique(escalc_ref$dataset)))

# The first few studies of a dataset: small k, where metafor stops for some of the methods.
subsets <- list(list(dataset = "bcg_rr", rows = 2L), list(dataset = "bcg_rr", rows = 3L))

rows <- list()
cells <- list()
run_cell <- function(name, ds, yi, vi, studies, subset_rows) {
  opts <- paste(names(ds$args), unlist(ds$args), sep = "=", collapse = ";")
  for (m in methods) for (t in tests) {
    fit <- suppressWarnings(rma(yi, vi, method = m, test = t, slab = studies))
    reg <- attempt(function() regtest(fit))
    rank_warnings <- character(0)
    rank <- attempt(function() withCallingHandlers(ranktest(fit), warning = function(w) {
      rank_warnings <<- c(rank_warnings, conditionMessage(w)); invokeRestart("muffleWarning")
    }))
    tf <- attempt(function() trimfill(fit))
    l1o <- attempt(function() leave1out(fit))
    inf <- attempt(function() influence(fit))
    val <- function(x, field) if (is.null(x$value)) NA else x$value[[field]]
    rows[[length(rows) + 1]] <<- data.frame(
      dataset = name, rows = if (is.na(subset_rows)) "" else as.character(subset_rows), measure = ds$measure,
      options = opts, method = m, ci = t, k = fit$k,
      egger_z = fmt(val(reg, "zval")), egger_p = fmt(val(reg, "pval")), egger_df = fmt(val(reg, "dfs")),
      egger_limit = fmt(val(reg, "est")), egger_error = reg$error,
      begg_tau = fmt(val(rank, "tau")), begg_p = fmt(val(rank, "pval")),
      begg_exact = if (is.null(rank$value)) "" else tolower(!any(grepl("ties", rank_warnings))),
      begg_error = rank$error,
      trimfill_k0 = fmt(val(tf, "k0")), trimfill_side = if (is.null(tf$value)) "" else tf$value$side,
      trimfill_estimate = fmt(if (is.null(tf$value)) NA else tf$value$beta[1]), trimfill_error = tf$error,
      leave1out_error = l1o$error, influence_error = inf$error)
    cell <- list(dataset = unbox(name), rows = unbox(subset_rows), method = unbox(m), ci = unbox(t),
                 studies = studies)
    if (!is.null(l1o$value)) {
      cell$leave1out <- list(estimate = l1o$value$estimate, tau2 = l1o$value$tau2)
    }
    if (!is.null(inf$value)) {
      ii <- inf$value$inf
      cell$influence <- list(rstudent = ii$rstudent, dffits = ii$dffits, cook_d = ii$cook.d, cov_r = ii$cov.r,
                             tau2_del = ii$tau2.del, qe_del = ii$QE.del, hat = ii$hat, weight = ii$weight,
                             dfbetas = inf$value$dfbs[[1]], influential = inf$value$is.infl)
    }
    if (!is.null(tf$value) && tf$value$k0 > 0) {
      filled <- tf$value$fill
      cell$trimfill <- list(filled_yi = as.numeric(tf$value$yi[filled]), filled_vi = as.numeric(tf$value$vi[filled]))
    }
    cells[[length(cells) + 1]] <<- cell
  }
}

prepared <- list()
for (name in names(es_of)) {
  ds <- es_of[[name]]()
  es <- as.data.frame(ds$es)
  ref <- escalc_ref[escalc_ref$dataset == name, ]
  stopifnot(isTRUE(all.equal(as.numeric(es$yi), as.numeric(ifelse(ref$yi == "", NA, ref$yi)), tolerance = 1e-12)),
            isTRUE(all.equal(as.numeric(es$vi), as.numeric(ifelse(ref$vi == "", NA, ref$vi)), tolerance = 1e-12)))
  keep <- !is.na(es$yi)
  studies <- read.csv(file.path(out_dir, "datasets", paste0(name, ".csv")), colClasses = "character")$study[keep]
  prepared[[name]] <- list(ds = ds, yi = es$yi[keep], vi = es$vi[keep], studies = studies)
  run_cell(name, ds, es$yi[keep], es$vi[keep], studies, NA)
}
for (s in subsets) {
  p <- prepared[[s$dataset]]
  first <- seq_len(s$rows)
  run_cell(s$dataset, p$ds, p$yi[first], p$vi[first], p$studies[first], s$rows)
}
write.csv(do.call(rbind, rows), file.path(out_dir, "metafor_bias_reference.csv"), row.names = FALSE)
writeLines(toJSON(cells, digits = NA, na = "null", null = "null"),
           file.path(out_dir, "metafor_bias_reference.json"))
