"""A SavedModel is a TensorFlow program: before ``verify`` loads and runs one, its graph is
audited for the ops that reach outside the computation. Refused (exit 3, naming the op and its
function): ops that read or write files (``ReadFile``, ``WriteFile``, checkpoint saving and
restoring, file datasets, summary writers, ``PrintV2`` to a file, memory-mapped constants) and
ops that call back into Python (``PyFunc``, ``EagerPyFunc``). TensorFlow's own save and restore
functions (``__inference__traced_save_N``/``_restore_N``, which ``tf.saved_model.load`` never
runs) may hold checkpoint ops, unless another function calls them.

>>> reaching_ops([], {"__inference_serve_1": [("n", "WriteFile", [])]})
[('__inference_serve_1', 'n', 'WriteFile')]
"""

import re

FILE_OPS = {
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "Save", "SaveV2", "SaveSlices", "Restore",
    "RestoreV2", "RestoreSlice", "MergeV2Checkpoints", "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset",
    "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2", "SaveDataset", "SaveDatasetV2", "LoadDataset",
    "ExperimentalSaveDataset", "ExperimentalLoadDataset", "CreateSummaryFileWriter", "CreateSummaryDbWriter",
    "WriteSummary", "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary",
    "WriteGraphSummary", "WriteRawProtoSummary", "DebugIdentityV2", "DebugIdentityV3", "WholeFileReader",
    "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2", "ShardedFilename", "ShardedFilespec",
}
CHECKPOINT_OPS = {"Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints",
                  "ShardedFilename", "ShardedFilespec"}
PYTHON_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
TF_SAVER = re.compile(r"__inference__traced_(save|restore)_\d+$")


def _denied(op, attrs):
    if op in FILE_OPS or op in PYTHON_OPS:
        return True
    return op == "PrintV2" and not str(attrs.get("output_stream", "stderr")).startswith(("stderr", "stdout", "log"))


def reaching_ops(top_nodes, functions):
    """``[(function, node, op)]`` of the denied ops that a run can reach. ``functions`` maps a
    function name to its nodes ``(name, op, callees, attrs?)``; every function is a root except
    TensorFlow's saver functions, which count only where another function calls them."""
    roots = [f for f in functions if not TF_SAVER.match(f)]
    seen, stack, found = set(), list(roots), []
    while stack:
        fn = stack.pop()
        if fn in seen or fn not in functions:
            continue
        seen.add(fn)
        for node in functions[fn]:
            name, op, callees = node[:3]
            attrs = node[3] if len(node) > 3 else {}
            if _denied(op, attrs):
                found.append((fn, name, op))
            stack.extend(c for c in callees if c not in seen)
            if op in functions:
                stack.append(op)
    found += [("(graph)", name, op) for name, op, _, *rest in top_nodes if _denied(op, rest[0] if rest else {})
              and op not in CHECKPOINT_OPS]         # a TF1 graph's own saver
    return sorted(found)


def _node(n):
    callees = []
    for value in n.attr.values():
        if value.HasField("func"):
            callees.append(value.func.name)
        callees += [f.name for f in value.list.func]
    attrs = {"output_stream": n.attr["output_stream"].s.decode(errors="replace")} if "output_stream" in n.attr else {}
    return (n.name, n.op, callees, attrs)


def audit_saved_model(meta, path):
    """InputRejected (exit 3) when the SavedModel's graph reaches an op that touches files or
    calls Python; ``meta`` is its first MetaGraphDef."""
    from mwconv.errors import InputRejected, printable
    graph = meta.graph_def
    functions = {f.signature.name: [_node(n) for n in f.node_def] for f in graph.library.function}
    found = reaching_ops([_node(n) for n in graph.node], functions)
    if found:
        fn, node, op = found[0]
        raise InputRejected(f"its graph runs the op {op} (node '{printable(node)}' in {printable(fn)}), which "
                            f"{'calls Python' if op in PYTHON_OPS else 'reads or writes files'}: refused, since "
                            "mwconv never runs code from a file", path=path)
