"""Offline feature extraction: a folder of media and transcripts to a dataset decalign reads.

``decalign extract`` (:func:`~decalign.extract.pipeline.extract_folder`, the command line
:mod:`decalign.cli.extract`) and ``decalign predict --media`` run the pieces of this package:

* :mod:`~decalign.extract.inputs`: which clips there are (MMSA raw layout, transcript/label CSVs,
  one file per clip or one per video with start/end times);
* :mod:`~decalign.extract.media`: decoding with PyAV (audio resampled to one rate, frames
  sampled at one rate and streamed, within :class:`~decalign.extract.media.MediaLimits`);
* :mod:`~decalign.extract.text`, :mod:`~decalign.extract.audio`, :mod:`~decalign.extract.vision`:
  the extractors, each describing itself with a :class:`~decalign.extract.provenance.ExtractorRecord`;
* :mod:`~decalign.extract.cache`, :mod:`~decalign.extract.report`,
  :mod:`~decalign.extract.pipeline`: per-clip cache, ``extract_report.csv`` and the run itself.

Every input is treated as possibly hostile: names a CSV or an extraction record gives are resolved
under the folder the user passed (:mod:`decalign.safety.paths`), each reader declares its bounds
(:class:`~decalign.extract.inputs.CsvLimits`, :class:`~decalign.extract.media.MediaLimits`,
:data:`~decalign.extract.pipeline.RANGES`), frames are streamed, local models load from safetensors
only, and every refusal is a one-line :class:`ExtractError` (docs/security.md).

Everything heavy (PyAV, openSMILE, librosa, OpenCV, transformers) comes from the ``extract`` extra
(``pip install "decalign[extract]"``) and is imported inside the function that needs it;
importing this package costs nothing.
"""

from __future__ import annotations

from decalign.extract.errors import ExtractError, MissingExtraError

__all__ = ["ExtractError", "MissingExtraError"]
