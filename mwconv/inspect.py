"""``mwconv inspect``: what a weight source holds, as a JSON-able report."""

from mwconv import progress
from mwconv.errors import printable
from mwconv.formats import open_source


def _row(src, name, partition, with_hash):
    info = src.info(name)
    row = {"name": name, "shape": list(info.shape), "dtype": info.dtype, "bytes": info.nbytes}
    if partition is not None:
        row["trainable"] = partition.get(name)
    if with_hash:
        row["sha256"] = src.sha256(name)
    return row


def inspect_source(path, with_hash=False):
    """Describe a source: format, tensors, totals, architecture, partition, manifest.

    >>> report = inspect_source("weights.h5", with_hash=True)   # doctest: +SKIP
    >>> report["totals"]["tensors"], report["tensors"][0]["sha256"][:8]
    """
    with open_source(path) as src:
        partition = src.partition()
        tensors = []
        total = sum(src.info(n).nbytes for n in src.keys()) if with_hash else 0
        with progress.tensor_bar(f"hashing {len(src.keys())} tensors", total) as bar:
            for name in src.keys():
                tensors.append(_row(src, name, partition, with_hash))
                bar.update(src.info(name).nbytes if with_hash else 0)
        report = {
            "path": src.path,
            "format": src.format,
            "architecture": bool(src.has_architecture),
            "model": src.describe_architecture(),
            "tensors": tensors,
            "totals": {"tensors": len(tensors), "bytes": sum(t["bytes"] for t in tensors)},
            "partition": None,
            "metadata": src.metadata(),
            "manifest": src.manifest(),
        }
        if partition is not None:
            trainable = [t for t in tensors if t.get("trainable")]
            report["partition"] = {
                "trainable": len(trainable),
                "frozen": len(tensors) - len(trainable),
                "trainable_bytes": sum(t["bytes"] for t in trainable),
                "frozen_bytes": sum(t["bytes"] for t in tensors if not t.get("trainable")),
            }
        return report


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def format_inspect(report):
    """The human table for an inspect report."""
    lines = [f"{printable(report['path'])}: {report['format']}"
             + (f" ({report['metadata']['kind']})" if report["metadata"].get("kind") else "")
             + f", architecture {'present' if report['architecture'] else 'absent'}"]
    model = report.get("model")
    if model:
        top = ", ".join(f"{c} {n}" for c, n in sorted(model["classes"].items(), key=lambda kv: -kv[1])[:8])
        lines.append(f"model: {model['class']}, {model['layers']} layers ({top}"
                     f"{', ...' if len(model['classes']) > 8 else ''})")
        lines += [f"  import translates: {note}" for note in model.get("translation", [])]
        if model.get("refused"):
            lines.append(f"  import refuses it: {printable(model['refused'])}")
    rows = [("name", "shape", "dtype", "bytes") + (("trainable",) if report["partition"] else ())
            + (("sha256",) if report["tensors"] and "sha256" in report["tensors"][0] else ())]
    for t in report["tensors"]:
        row = (printable(t["name"]), str(tuple(t["shape"])), t["dtype"], str(t["bytes"]))
        if report["partition"]:
            row += ("trainable" if t["trainable"] else "frozen",)
        if "sha256" in t:
            row += (t["sha256"],)
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    total = report["totals"]
    lines.append(f"{total['tensors']} tensors, {_size(total['bytes'])}")
    if report["partition"]:
        p = report["partition"]
        lines.append(f"partition: {p['frozen']} frozen ({_size(p['frozen_bytes'])}), "
                     f"{p['trainable']} trainable ({_size(p['trainable_bytes'])})")
    if report["manifest"]:
        m = report["manifest"]
        lines.append(f"manifest: schema {m.get('schema_version')}, {len(m.get('weights', []))} weights, "
                     f"written by mwconv {m.get('tool', {}).get('mwconv', '?')}")
    return "\n".join(lines)
