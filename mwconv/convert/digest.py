"""The source file's sha256 for the manifest, computed beside the import."""

import os

from mwconv.errors import InputRejected


class SourceDigest:
    """The source file's sha256, computed on a daemon thread beside the injection."""

    def __init__(self, src):
        import threading

        from mwconv.manifest import sha256_file
        self.value, self.error, self.path = None, None, src.path
        if not os.path.isfile(src.path):   # a SavedModel folder: no single file to hash
            self.thread = None
            return

        def run():
            try:
                self.value = sha256_file(src.path)
            except Exception as e:  # noqa: BLE001 - handed to the caller by result(), never lost
                self.error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self):
        """The sha256; an error the thread met is raised here (the manifest never lacks it silently)."""
        if self.thread is not None:
            self.thread.join()
        if self.error is not None:
            raise InputRejected(f"cannot read the source to record its sha256 ({self.error})",
                                path=self.path) from self.error
        return self.value
