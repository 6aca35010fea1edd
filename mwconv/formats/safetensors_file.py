"""safetensors sources: one ``.safetensors`` file, or a sharded checkpoint
described by ``*.safetensors.index.json`` (``{"weight_map": {tensor: shard}}``).

Headers are read and checked (offsets against file sizes, shapes against byte
counts) without reading data; each tensor is read on demand from its byte range
(a plain read, not a memory map, so a verified file's pages do not pile up in the
process).
Shards must lie in the index's folder (no absolute paths, '..' or symlinks out).
"""

import json
import os

import numpy as np

from mwconv.errors import InputRejected
from mwconv.formats import safetensors_layout as st
from mwconv.formats.artifact import WeightsOnlyArtifact
from mwconv.formats.base import Source, resolve_inside
from mwconv.formats.format import Format
from mwconv.outputs import atomic_output

MANIFEST_KEY = "mwconv_manifest"
_MAX_INDEX_BYTES = 64 << 20


def _load_index(path):
    if os.path.getsize(path) > _MAX_INDEX_BYTES:
        raise InputRejected(f"index file is larger than {_MAX_INDEX_BYTES >> 20} MiB", path=path)
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except (ValueError, UnicodeDecodeError) as e:
        raise InputRejected(f"safetensors index is not valid JSON ({e})", path=path) from e
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise InputRejected("safetensors index has no 'weight_map' of tensor -> shard file", path=path)
    return weight_map, doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}


class SafetensorsSource(Source):
    format = "safetensors"

    def __init__(self, path):
        super().__init__(path)
        self._where = {}       # tensor -> (shard path, dtype, begin, end)
        with open(self.path, "rb") as f:
            sharded = not st.looks_like(f.read(16), os.path.getsize(self.path))
        if sharded:
            weight_map, index_meta = _load_index(self.path)
            shards = {}
            for name, loc in weight_map.items():
                if loc not in shards:
                    shards[loc] = resolve_inside(self.path, loc, name, "shard")
            metadata = self._scan_shards(weight_map, shards)
            self._metadata.update({"sharded": True, "shards": len(set(shards.values())),
                                   "index_metadata": index_meta})
        else:
            metadata = self._scan(self.path)
            self._metadata["sharded"] = False
        self._metadata["metadata"] = {k: v for k, v in metadata.items() if k != MANIFEST_KEY}
        self._manifest = self._parse_manifest(metadata.get(MANIFEST_KEY))
        self.default_layout = "keras" if self._manifest or metadata.get("layout") == "keras" else "torch"

    def _scan(self, shard, wanted=None):
        entries, metadata, _ = st.read_header(shard)
        for name, (dtype, shape, begin, end) in entries.items():
            if wanted is not None and wanted.get(name) != shard:
                continue
            self._add(name, shape, dtype)
            self._where[name] = (shard, dtype, begin, end)
        return metadata

    def _scan_shards(self, weight_map, shards):
        wanted = {name: shards[loc] for name, loc in weight_map.items()}
        metadata = {}
        for shard in dict.fromkeys(shards.values()):
            metadata.update(self._scan(shard, wanted))
        missing = [n for n in weight_map if n not in self._where]
        if missing:
            raise InputRejected(f"the index maps it to {weight_map[missing[0]]}, whose header does not list it",
                                path=self.path, tensor=missing[0])
        return metadata

    def _parse_manifest(self, text):
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError as e:
            raise InputRejected(f"the embedded mwconv manifest is not valid JSON ({e})", path=self.path) from e

    def _read(self, name):
        """The tensor's bytes read into memory of its own (not memory-mapped: mapped pages of a
        large file would stay in the process until the source closes)."""
        shard, dtype, begin, end = self._where[name]
        info = self._infos[name]
        with open(shard, "rb") as f:
            f.seek(begin)
            raw = np.fromfile(f, dtype=np.uint8, count=end - begin)
        if raw.size != end - begin:
            raise InputRejected(f"holds {raw.size} of its {end - begin} bytes (the file was truncated)", path=shard,
                                tensor=name)
        native = np.dtype(st.numpy_dtype(dtype))
        if native.itemsize > 1 and dtype != "bfloat16":       # safetensors is little-endian
            return raw.view(native.newbyteorder("<")).astype(native, copy=False).reshape(info.shape)
        return raw.view(native).reshape(info.shape)

    def manifest(self):
        return self._manifest

    def partition(self):
        if not self._manifest:
            return None
        flags = {w["path"]: w["trainable"] for w in self._manifest.get("weights", [])}
        return {name: flags.get(name) for name in self.keys()}

    def close(self):
        pass


# -- writing ----------------------------------------------------------------------
# -- safetensors --------------------------------------------------------------------
def write_safetensors(model, staged, manifest):
    """Every weight under its Keras path, in Keras layout, streamed one at a time;
    the manifest (with the trainable flags) in the header's ``__metadata__``."""
    from mwconv import progress
    from mwconv.formats import safetensors_layout as st
    from mwconv import modelio

    keras = modelio.keras_api()
    tensors = [(v.path, tuple(v.shape), np.dtype(st.numpy_dtype(v.dtype)).name,
                lambda v=v: keras.ops.convert_to_numpy(v.value)) for v in model.weights]
    total = sum(int(np.prod(shape, dtype=np.int64)) * st.numpy_dtype(dtype).itemsize for _, shape, dtype, _ in tensors)
    metadata = {"mwconv_manifest": json.dumps(manifest), "format": "keras", "layout": "keras"}
    with progress.tensor_bar("writing safetensors", total) as bar:
        st.write(staged, tensors, metadata, on_tensor=lambda name, n: bar.update(n))


def write(model, out, manifest, options):
    with atomic_output(out, force=options.force) as staged:
        write_safetensors(model, staged, manifest)


# -- verifying ----------------------------------------------------------------------
class SafetensorsArtifact(WeightsOnlyArtifact):
    """A safetensors file of Keras weight paths; the architecture comes from the reference model.
    Its own tensors are compared (missing and extra names show in the partition check)."""

    kind = "safetensors"

    def _read_manifest(self):
        self.source = SafetensorsSource(self.path)      # one open source: headers checked once, data mapped
        return self.source.manifest()

    def weights(self):
        flags = self._flags()
        return ((n, np.asarray(self.source.get_tensor(n)), flags.get(n)) for n in self.source.keys())

    def weight(self, path):
        return np.asarray(self.source.get_tensor(path))

    def _fill(self, model):
        present = set(self.source.keys())
        for v in model.weights:
            if v.path in present and tuple(self.source.info(v.path).shape) == tuple(v.shape):
                v.assign(self.source.get_tensor(v.path))


def _sniff(path, head):
    if st.looks_like(head, os.path.getsize(path)):
        return True
    # a sharded checkpoint's index (JSON has no magic bytes); the reader checks its weight_map
    return path.lower().endswith(st.INDEX_SUFFIX) and head.lstrip()[:1] == b"{"


FORMAT = Format("safetensors", "safetensors", (".safetensors", ".json"), _sniff,
                "mwconv.formats.safetensors_file:SafetensorsSource", f"the header's __metadata__ ({MANIFEST_KEY})",
                artifact="mwconv.formats.safetensors_file:SafetensorsArtifact", write=write)
