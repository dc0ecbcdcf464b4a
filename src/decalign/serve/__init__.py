"""``decalign serve``: a local web app over the run directories under one folder, and an HTTP API
in front of their checkpoints (docs/serve.md).

* :mod:`decalign.serve.runs` finds runs and resolves the names requests give, never leaving the
  folder the user named;
* :mod:`decalign.serve.models` loads each checkpoint once and predicts (features, media, samples);
* :mod:`decalign.serve.app` builds the FastAPI application (:func:`~decalign.serve.app.create_app`:
  pages, API, limits, token, errors) and serves it (:func:`~decalign.serve.app.serve`);
* :mod:`decalign.cli.serve` is the command line entry (imports nothing heavy).

FastAPI, uvicorn and python-multipart are the ``serve`` extra, imported when the app is built.
"""
