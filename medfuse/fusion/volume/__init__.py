"""The stages of the volume job that differ from the 2D-folder job (see medfuse.fusion.pipeline).

* :func:`~.load.load_stage` -> :class:`~.load.Inputs`
* :func:`~.register.register_stage` -> :class:`~.register.Registered`
* :func:`~.prepare.prepare_stage` -> :class:`~.prepare.Prepared`
* :func:`~.write.write_stage` -> the written files
"""

from __future__ import annotations

from .load import Inputs, load_stage
from .prepare import Prepared, prepare_stage
from .register import Registered, register_stage
from .write import write_stage

__all__ = [
    "Inputs",
    "Registered",
    "Prepared",
    "load_stage",
    "register_stage",
    "prepare_stage",
    "write_stage",
]
