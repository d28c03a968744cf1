"""Image classification with a torchvision ResNet: packaged in MLflow, scored in batch on Spark, served in real time.

`01_register` builds the ResNet of the configured depth with torchvision's ImageNet weights (a
file the user gives, the cached copy, or a download checked against torchvision's published
checksum; random weights on the local target) and registers it as the pyfunc `image_classifier`
with the alias `champion`. The model decodes, resizes, centre-crops and normalises exactly as the
weights' own transforms do, and answers the top-k classes with ImageNet labels. `02_score` scores a
folder of images (Spark's `binaryFile` source, an iterator pandas UDF that loads the model once per
Python worker) into a table partitioned by date, quarantining files that are not readable images.
`03_finetune` retrains the last layer on a folder of labelled images and registers the result the
same way. `refarch serve --model models:/image_classifier@champion` answers requests, with optional
dynamic batching (refarch.serving.batching).
"""
