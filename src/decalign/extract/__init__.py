"""Offline feature extraction: a folder of media and transcripts to a dataset decalign reads.

``decalign extract`` (:mod:`decalign.extract.command`) and ``decalign predict --media`` run the
pieces of this package:

* :mod:`~decalign.extract.inputs`: which clips there are (MMSA raw layout, transcript/label CSVs,
  one file per clip or one per video with start/end times);
* :mod:`~decalign.extract.media`: decoding with PyAV (audio resampled to one rate, frames
  sampled at one rate);
* :mod:`~decalign.extract.text`, :mod:`~decalign.extract.audio`, :mod:`~decalign.extract.vision`:
  the extractors, each describing itself with a :class:`~decalign.extract.provenance.ExtractorRecord`;
* :mod:`~decalign.extract.cache`, :mod:`~decalign.extract.report`,
  :mod:`~decalign.extract.pipeline`: per-clip cache, ``extract_report.csv`` and the run itself.

Everything heavy (PyAV, openSMILE, librosa, OpenCV, transformers) comes from the ``extract`` extra
(``pip install "decalign[extract]"``) and is imported inside the function that needs it;
importing this package costs nothing.
"""

from __future__ import annotations

from decalign.extract.errors import ExtractError, MissingExtraError

__all__ = ["ExtractError", "MissingExtraError"]
