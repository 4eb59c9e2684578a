# Writes reference values for the small-study test family of R meta's metabias (meta/stats/smallstudy.py).
#
#   Rscript reference/make_smallstudy_reference.R        (from the repository root)
#
# R's `meta` package is not installed here, so its tests are written out below from its source
# (GitHub guido-s/meta, R/metabias.R, function metabias.meta, section "(4) Conduct test of funnel plot
# asymmetry", part "(b) Linear regression tests"; and its internal linregcore()). Every metabias
# regression test calls
#
#   linregcore <- function(TE, seTE, covar = NULL, model = "lm", method.tau = "DL", ...) {
#     if (is.null(covar)) predictor <- "sei" else predictor <- "ni"
#     rma1 <- rma.uni(TE, sei = seTE, ni = covar, method = method.tau, test = "t", ...)
#     reg <- regtest(rma1, predictor = predictor, model = model)
#     ...  statistic = slope / se.slope; df = reg$dfs; pval = 2 * pt(abs(statistic), df, lower.tail = FALSE)
#
# so each test below is one metafor regtest() call on the response, standard error and predictor that
# metabias.meta builds:
#   Egger     lreg <- linregcore(TE, seTE)                                      (model "lm")
#   Thompson  lreg <- linregcore(TE, seTE, model = "rma", method.tau = x$method.tau)
#   Harbord   OR:  Z <- event.e - (event.e + event.c) * n.e / (n.e + n.c)
#                  V <- n.e * n.c * (event.e + event.c) * (n.e - event.e + n.c - event.c) /
#                       ((n.e + n.c)^2 * ((n.e + n.c) - 1))
#             RR:  Z <- (event.e * (n.e + n.c) - (event.e + event.c) * n.e) / (n.e - event.e + n.c - event.c)
#                  V <- (n.e + n.c) / 4 * (event.e + event.c) / (n.e - event.e + n.c - event.c)
#                  (metabias first assigns V <- n.e * n.c * (event.e + event.c) /
#                   ((n.e + n.c) * (n.e - event.e + n.c - event.c)) and then overwrites it with this line)
#             other measures: the OR score, with a warning
#             lreg <- linregcore(Z / V, 1 / sqrt(V))
#   Peters    seTE.Peters <- sqrt(1 / (event.e + event.c) + 1 / (n.e - event.e + n.c - event.c))
#             lreg <- linregcore(TE, seTE.Peters, covar = 1 / (n.e + n.c))     (predictor "ni" = 1/N)
#   default   "Harbord" for metabin() with sm = "OR", "Egger" otherwise.
#
# One deliberate difference from R meta: the counts are those the effect sizes used, i.e. 0.5 added
# to every cell of a table with a zero cell (escalc's add = 1/2, to = "only0"), where metabin passes
# the raw counts (docs/METHODS.md). Egger's classical test is also checked against metafor directly:
# regtest(model = "lm") of the fitted rma() object.
#
# Writes reference/metafor_smallstudy_reference.csv (one row per dataset x test x tau^2 method) and
# reference/datasets/smallstudy/egger2001_or.csv (dat.egger2001 in the sheet vocabulary). The tests
# never call R: they read these committed files.
suppressPackageStartupMessages(library(metafor))

out_dir <- "reference"
fmt <- function(x) ifelse(is.na(x), "", trimws(formatC(x, digits = 17, format = "g")))

# dat.egger2001 is not among reference/datasets yet: write it as a sheet.
d <- dat.egger2001
dir.create(file.path(out_dir, "datasets", "smallstudy"), showWarnings = FALSE)
write.csv(data.frame(study = paste(d$study, d$year, d$id), year = d$year, events_treat = d$ai, n_treat = d$n1i,
                     events_ctrl = d$ci, n_ctrl = d$n2i),
          file.path(out_dir, "datasets", "smallstudy", "egger2001_or.csv"), row.names = FALSE)

# 2x2 tables as the sheets give them; 0.5 added to every cell of a table with a zero cell.
corrected_cells <- function(ai, n1i, ci, n2i) {
  cells <- cbind(a = ai, b = n1i - ai, c = ci, d = n2i - ci)
  zero <- apply(cells, 1, min) == 0
  cells[zero, ] <- cells[zero, ] + 0.5
  as.data.frame(cells)
}

# Each case: the sheet, the measure and (binary sheets) the cells.
binary_case <- function(sheet, measure, ai, n1i, ci, n2i) {
  cells <- corrected_cells(ai, n1i, ci, n2i)
  es <- escalc(measure, ai = cells$a, bi = cells$b, ci = cells$c, di = cells$d)
  list(sheet = sheet, measure = measure, yi = es$yi, vi = es$vi, cells = cells)
}
cases <- list(
  binary_case("smallstudy/egger2001_or", "OR", d$ai, d$n1i, d$ci, d$n2i),
  binary_case("smallstudy/egger2001_or", "RR", d$ai, d$n1i, d$ci, d$n2i),
  binary_case("bcg_rr", "RR", dat.bcg$tpos, dat.bcg$tpos + dat.bcg$tneg, dat.bcg$cpos, dat.bcg$cpos + dat.bcg$cneg),
  binary_case("bcg_rr", "OR", dat.bcg$tpos, dat.bcg$tpos + dat.bcg$tneg, dat.bcg$cpos, dat.bcg$cpos + dat.bcg$cneg),
  binary_case("bcg_rr", "RD", dat.bcg$tpos, dat.bcg$tpos + dat.bcg$tneg, dat.bcg$cpos, dat.bcg$cpos + dat.bcg$cneg),
  binary_case("nielweise_or", "OR", dat.nielweise2007$ai, dat.nielweise2007$n1i, dat.nielweise2007$ci,
              dat.nielweise2007$n2i),
  binary_case("nielweise_rr", "RR", dat.nielweise2007$ai, dat.nielweise2007$n1i, dat.nielweise2007$ci,
              dat.nielweise2007$n2i),
  list(sheet = "hackshaw_or_ci", measure = "OR", yi = log(dat.hackshaw1998$or),
       vi = ((log(dat.hackshaw1998$or.ub) - log(dat.hackshaw1998$or.lb)) / (2 * qnorm(0.975)))^2, cells = NULL)
)

# One metabias regression test: metafor's regtest() as linregcore() calls it.
linregcore <- function(TE, seTE, covar = NULL, model = "lm", method.tau = "DL") {
  predictor <- if (is.null(covar)) "sei" else "ni"
  args <- list(yi = TE, sei = seTE, method = method.tau, test = "t")
  args$ni <- covar  # left out when NULL, as meta's runNN() does
  fit <- suppressWarnings(do.call(rma.uni, args))
  reg <- suppressWarnings(regtest(fit, predictor = predictor, model = model))
  c(statistic = unname(reg$zval), df = unname(reg$dfs), p = unname(reg$pval))
}

harbord <- function(cells, measure) {
  a <- cells$a; b <- cells$b; c <- cells$c; d <- cells$d
  n.e <- a + b; n.c <- c + d
  if (measure == "RR") {
    Z <- (a * (n.e + n.c) - (a + c) * n.e) / (b + d)
    V <- (n.e + n.c) / 4 * (a + c) / (b + d)
  } else {
    Z <- a - (a + c) * n.e / (n.e + n.c)
    V <- n.e * n.c * (a + c) * (b + d) / ((n.e + n.c)^2 * ((n.e + n.c) - 1))
  }
  linregcore(Z / V, 1 / sqrt(V))
}

peters <- function(yi, cells) {
  se_peters <- sqrt(1 / (cells$a + cells$c) + 1 / (cells$b + cells$d))
  linregcore(yi, se_peters, covar = 1 / (cells$a + cells$b + cells$c + cells$d))
}

rows <- list()
add <- function(case, test, method, values) {
  rows[[length(rows) + 1]] <<- data.frame(
    dataset = case$sheet, measure = case$measure, test = test, method = method, k = length(case$yi),
    statistic = fmt(values[["statistic"]]), df = fmt(values[["df"]]), p = fmt(values[["p"]]))
}
for (case in cases) {
  sei <- sqrt(case$vi)
  # Egger (classical): metafor's regtest(model = "lm"); the same t as linregcore(TE, seTE)
  reg <- regtest(rma(case$yi, case$vi), model = "lm")
  stopifnot(isTRUE(all.equal(unname(linregcore(case$yi, sei)), c(reg$zval, reg$dfs, reg$pval))))
  add(case, "egger", "", c(statistic = unname(reg$zval), df = unname(reg$dfs), p = unname(reg$pval)))
  for (method in c("REML", "DL")) {
    add(case, "thompson_sharp", method, linregcore(case$yi, sei, model = "rma", method.tau = method))
    # today's test: metafor's default regtest of the analysis' model (Knapp-Hartung, as meta's default ci)
    rma_reg <- regtest(rma(case$yi, case$vi, method = method, test = "knha"))
    add(case, "egger_rma", method, c(statistic = unname(rma_reg$zval), df = unname(rma_reg$dfs), p = unname(rma_reg$pval)))
  }
  rank <- ranktest(rma(case$yi, case$vi))
  add(case, "begg", "", c(statistic = unname(rank$tau), df = NA, p = unname(rank$pval)))
  if (!is.null(case$cells)) {
    add(case, "harbord", "", harbord(case$cells, case$measure))
    add(case, "peters", "", peters(case$yi, case$cells))
  }
}
out <- do.call(rbind, rows)
write.csv(out, file.path(out_dir, "metafor_smallstudy_reference.csv"), row.names = FALSE)
cat("wrote", nrow(out), "rows to", file.path(out_dir, "metafor_smallstudy_reference.csv"), "\n")
eg <- out[out$dataset == "smallstudy/egger2001_or" & out$measure == "OR" & out$test == "egger", ]
cat("dat.egger2001 classical Egger: t =", eg$statistic, "on", eg$df, "df\n")
