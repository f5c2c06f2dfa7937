"""Send fused series to a PACS and pull input series from one (DIMSE or DICOMweb).

* :func:`medfuse.pacs.send.send_folder` - C-ECHO then C-STORE (pynetdicom) or STOW-RS
  (dicomweb-client) of every DICOM instance under a folder, with retries and a per-instance report.
* :func:`medfuse.pacs.pull.pull_study` - C-FIND + C-GET (or C-MOVE) or QIDO-RS + WADO-RS of a
  study's series, each written atomically into its own subfolder.

Peers are :class:`medfuse.pacs.dimse.DimsePeer` (``HOST:PORT`` and AE titles) or
:class:`medfuse.pacs.dicomweb.DicomwebServer` (a base URL). Heavy imports (pynetdicom,
dicomweb-client, pydicom) happen inside the functions. Patient names and IDs are never logged.
"""

from __future__ import annotations

__all__: list[str] = []
