"""R models in production: a ranger random forest trained in an R notebook (ggplot2's diamonds), evaluated
and registered from Python as `rmodel@champion`, served by `refarch serve` with one embedded R (rpy2) per
worker process. The input columns are declared in conf/rmodel.yml, so any R model with a
`predict(model, newdata)` method is served the same way."""
