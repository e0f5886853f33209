"""Progress for long work: a tqdm bar on a terminal, a log line at a bounded rate elsewhere.

tqdm alone goes silent when stderr is not a terminal (``disable=None``), so a job under nohup, a
scheduler or CI looked hung. There the same bar is rendered as a plain line (step, rate, ETA) into
the ``llmrec`` logger at most every ``LOG_EVERY_S`` seconds, plus once at the end.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Iterable

from tqdm.auto import tqdm

LOG_EVERY_S = 30.0
log = logging.getLogger("llmrec")


class _LogLines:
    """A file-like target for tqdm that turns each refresh into one log record."""

    def __init__(self) -> None:
        self.last = ""

    def write(self, text: str) -> None:
        text = text.strip("\r\n ")
        if not text or text == self.last:  # close() redraws the final state once more
            return
        self.last = text
        if log.isEnabledFor(logging.INFO) and log.hasHandlers():
            log.info(text)
        else:  # library use without logging set up: still visible
            print(text, file=sys.stderr, flush=True)

    def flush(self) -> None:
        pass


class _LogBar(tqdm):
    """A bar whose postfix and description updates wait for the next timed line (tqdm redraws on
    each ``set_postfix`` otherwise: one log line per training step)."""

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_description(self, desc=None, refresh: bool = True) -> None:
        super().set_description(desc, refresh=False)


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, interactive: bool | None = None,
                 every_s: float = LOG_EVERY_S, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)`` on a terminal; a rate-bounded log line otherwise; silent if not
    ``enabled``. ``interactive`` overrides the terminal check (tests)."""
    if not enabled:
        return tqdm(iterable, disable=True, **kwargs)
    if interactive is None:  # a Jupyter kernel is not a tty but shows tqdm.auto's widget
        interactive = sys.stderr.isatty() or "ipykernel" in sys.modules
    if interactive:
        return tqdm(iterable, **kwargs)
    kwargs.pop("leave", None)  # a log line cannot be erased: every bar leaves its last line
    return _LogBar(iterable, file=_LogLines(), mininterval=every_s, maxinterval=every_s, ascii=True,
                   dynamic_ncols=False, ncols=100, **kwargs)
