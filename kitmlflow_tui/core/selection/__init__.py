"""Step 3: which files of a run's tree go in. ``plan``: globs, the filter spec and the plan it gives;
``profiles``: saved filter specs."""
