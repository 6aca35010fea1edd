from setuptools import find_packages, setup

# Compatible ranges here; the exact versions CI and scripts/venv.sh test with
# live in constraints.txt (pip install -c constraints.txt -e .). Every lower bound is a
# release that scripts/compat.sh runs (its "oldest" set, compat/oldest.txt).
setup(
    name="mwconv",
    version="0.1.0",
    description="Bring pretrained weights into Keras 3 models with frozen and trainable parts, "
                "export them, and prove the export kept the partition and the numbers.",
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["mwconv", "mwconv.*"]),
    package_data={"mwconv.maps": ["*.rules"]},   # the rules files --map hf-bert names
    install_requires=[
        "tensorflow>=2.17.1,<2.22",
        "keras>=3.10,<4",
        "tf-keras>=2.17,<2.22",
        "h5py>=3.11,<4",
        "numpy>=1.26,<3",
        "onnx>=1.17,<2",
        "onnxruntime>=1.20.1,<2",
        "tf2onnx>=1.16.1,<2",
        "click>=8.1.7,<9",
        "safetensors>=0.4.5,<1",
        "tqdm>=4.66.5,<5",
        "tomli>=2.0; python_version < '3.11'",
    ],
    extras_require={
        # jax: no-TensorFlow tests; keras-hub: its backbones as targets (its tensorflow-text
        # wheels follow TensorFlow's minor version: tested where constraints.txt pins both)
        "test": ["pytest>=8", "pytest-xdist>=3.5", "jsonschema>=4.18", "jax>=0.4.30", "hypothesis>=6.100",
                 "keras-hub>=0.20; python_version >= '3.11' and python_version < '3.13'"],
        # PyTorch-exported ONNX blocks are then exported live by the tests (CPU wheels:
        # --index-url https://download.pytorch.org/whl/cpu); without it they read committed exports
        "torch": ["torch>=2.2"],
        # CUDA builds for the device check (Linux x86-64). onnxruntime-gpu provides the same
        # 'onnxruntime' module as the CPU wheel: see the README's GPU section.
        "gpu": ["tensorflow[and-cuda]>=2.16,<2.22; sys_platform == 'linux'",
                "onnxruntime-gpu>=1.18,<2; sys_platform == 'linux' and platform_machine == 'x86_64'"],
    },
    entry_points={"console_scripts": ["mwconv=mwconv.cli:entry"]},
)
