"""Running the method on a dataset: the stage spec, the staged session, its tables and cache."""
