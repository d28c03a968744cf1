"""Predictive maintenance: ingest the five raw files, build features and labels, train an
MLlib classifier of the component that fails next, and score date ranges on a schedule.

`params` declares each notebook's parameters, `settings` types conf/maintenance.yml, `steps`
holds what the notebooks call; `ingest`, `features`, `labels`, `train`, `registry` and
`score` hold the logic.
"""
