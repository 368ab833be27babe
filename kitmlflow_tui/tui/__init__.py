"""The Textual wizard. It builds the core's inputs (a run, a FilterSpec, Kitfile overrides) and shows
the core's progress; every MLflow call and download runs in a worker thread."""
