"""Research on the segmentation, run from the repository root as ``python -m studies.NAME``.

Each study measures something the job's choices rest on, on the real log, using the package's
public API only (its subpackages' exports and the public functions of their modules): the
variants the job no longer offers are rebuilt in ``studies.variants``. Raw outputs go to
``studies/output/`` (not committed); the findings are in ``docs/studies/``. studies/README.md
lists the studies.
"""
