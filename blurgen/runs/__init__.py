"""Running a dataset: the run folder, executors that make blocks, sinks that store them."""
