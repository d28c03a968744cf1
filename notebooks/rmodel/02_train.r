# Databricks notebook source
# MAGIC %md
# MAGIC # R model 02 — train the ranger random forest (R)
# MAGIC
# MAGIC A price model for ggplot2's `diamonds` (53,940 rows), or for a CSV of your own (`data_path`):
# MAGIC the input columns, their types and factor levels, the held-out share and ranger's arguments
# MAGIC come from the train spec the prepare task wrote (conf/rmodel.yml and the job parameters,
# MAGIC resolved). The fitted model is saved with `saveRDS`; the held-out rows go beside it for the
# MAGIC evaluate task. Opened by hand, fill the two widgets at the top of the notebook.

# COMMAND ----------

dbutils.widgets.text("spec", "", "train spec (JSON path)")
dbutils.widgets.text("data_path", "", "CSV of your own (empty: ggplot2's diamonds)")
spec <- jsonlite::read_json(dbutils.widgets.get("spec"))
data_path <- dbutils.widgets.get("data_path")
cat("run", spec$run, "->", spec$folder, "\n")

# COMMAND ----------

# MAGIC %md
# MAGIC The data with the declared types: a factor gets exactly the levels of conf/rmodel.yml, in that
# MAGIC order (the served model builds its factors from the same list), and a value outside the
# MAGIC declared levels or ranges stops the notebook rather than train on it.

# COMMAND ----------

suppressPackageStartupMessages(library(ranger))

data <- if (nzchar(data_path)) {
  utils::read.csv(data_path, check.names = FALSE, stringsAsFactors = FALSE)
} else {
  as.data.frame(ggplot2::diamonds)
}
data_name <- if (nzchar(data_path)) data_path else "ggplot2::diamonds"
inputs <- vapply(spec$inputs, function(col) col$name, "")
missing_columns <- setdiff(c(inputs, spec$target), names(data))
if (length(missing_columns) > 0) {
  stop("the data has no column ", paste(missing_columns, collapse = ", "))
}
data <- data[c(inputs, spec$target)]
for (col in spec$inputs) {
  x <- data[[col$name]]
  if (col$type == "factor") {
    levels <- unlist(col$levels)
    unknown <- unique(as.character(x)[!as.character(x) %in% levels])
    if (length(unknown) > 0) {
      stop(sprintf("column %s: %s not among the declared levels", col$name, paste(utils::head(unknown, 5), collapse = ", ")))
    }
    data[[col$name]] <- factor(as.character(x), levels = levels, ordered = isTRUE(col$ordered))
  } else {
    x <- if (col$type == "integer") as.integer(x) else as.numeric(x)
    outside <- is.na(x) | x < col$min | x > col$max
    if (any(outside)) {
      stop(sprintf("column %s: %d value(s) missing or outside [%s, %s]", col$name, sum(outside), col$min, col$max))
    }
    data[[col$name]] <- x
  }
}
data[[spec$target]] <- as.numeric(data[[spec$target]])
str(data)

# COMMAND ----------

set.seed(spec$split$seed)
held_out <- sort(sample.int(nrow(data), round(nrow(data) * spec$split$test_share)))
train <- data[-held_out, ]
test <- data[held_out, ]

started <- proc.time()[["elapsed"]]
model <- ranger(
  dependent.variable.name = spec$target,
  data = train,
  num.trees = spec$ranger$num_trees,
  mtry = spec$ranger$mtry,
  min.node.size = spec$ranger$min_node_size,
  num.threads = spec$ranger$num_threads,
  seed = spec$split$seed
)
seconds <- proc.time()[["elapsed"]] - started
model

# COMMAND ----------

saveRDS(model, spec$model_path)
utils::write.csv(test, spec$test_path, row.names = FALSE)
packages <- unlist(spec$r_packages)
info <- list(
  data = data_name,
  rows_train = nrow(train),
  rows_test = nrow(test),
  oob_rmse = sqrt(model$prediction.error),
  seconds = seconds,
  r_version = R.version.string,
  packages = as.list(vapply(packages, function(p) as.character(utils::packageVersion(p)), ""))
)
jsonlite::write_json(info, spec$info_path, auto_unbox = TRUE, digits = NA)
display(data.frame(
  what = c("model", "held-out rows", "training rows", "out-of-bag RMSE", "seconds"),
  value = c(spec$model_path, nrow(test), nrow(train), round(info$oob_rmse, 1), round(seconds, 1))
))
