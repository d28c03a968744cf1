"""What a Databricks workspace must hold before the bundle can deploy and its jobs can run.

`refarch doctor --target <t>` (doctor.py) checks, with the deploying principal's own credentials,
everything the bundle takes for granted: the catalog and the right to create in it, the
data-scientists group, the secret scope with the Redis keys, the Unity Catalog service credential
and external location, and the Databricks Runtime. For each gap it prints the exact fix
(fixes.py); report.py renders the table CI shows before `databricks bundle deploy`.
"""
