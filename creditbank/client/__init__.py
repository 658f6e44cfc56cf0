"""The institution-side signing client: ``creditbank keys generate`` and ``creditbank post``.

It runs on the institution's machine, holds the institution's private key and talks to the
bank only over HTTP (``httpx``). It imports :mod:`creditbank.core` and :mod:`creditbank.errors`
and nothing of the bank's server side (api, service, storage).

* :mod:`creditbank.client.csvformat` — CSV/JSONL row formats and local validation;
* :mod:`creditbank.client.poster` — key files, learner resolution, signing, batched posting,
  the resume journal and the report.
"""
