"""Progress bars for long work: per tensor, counted in bytes, on stderr.

Off by default, so the library stays silent. The command line turns them on
when stderr is a terminal and ``--json`` is not given; then a bar appears only
for work above ``MIN_BYTES`` (256 MiB; the environment variable
``MWCONV_PROGRESS_MIN_BYTES`` overrides it)."""

import contextlib
import os
import sys

ENABLED = False
MIN_BYTES = 256 << 20


class _Silent:
    def update(self, n=1):
        pass

    def set_postfix_str(self, text):
        pass


def _threshold():
    try:
        return int(os.environ.get("MWCONV_PROGRESS_MIN_BYTES", MIN_BYTES))
    except ValueError:
        return MIN_BYTES


@contextlib.contextmanager
def tensor_bar(description, total_bytes):
    """Yield an object with ``update(nbytes)``: a tqdm bar, or a silent stand-in.

    >>> with tensor_bar("hashing", 1024) as bar:   # silent unless enabled
    ...     bar.update(1024)
    """
    if not ENABLED or total_bytes < _threshold():
        yield _Silent()
        return
    import shutil

    from tqdm import tqdm
    # a terminal that reports no width (0 columns) would get an empty bar: fall back to 100
    width = shutil.get_terminal_size((100, 24)).columns or 100
    with tqdm(total=total_bytes, desc=f"mwconv: {description}", unit="B", unit_scale=True, unit_divisor=1024,
              file=sys.stderr, leave=False, ncols=width) as bar:
        yield bar
